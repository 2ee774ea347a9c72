"""Output paths: checked before any model runs, written beside the target, synced, verified, renamed.

Nothing the call did not create is deleted or replaced, except an earlier file at the very path asked for
(renamed over only once the new one is complete and verified) and, with ``overwrite``, a png-frame folder
this tool wrote (it holds ``FRAMES_MARK``). On any failure the previous file is untouched.
"""

from __future__ import annotations

import errno
import math
import numbers
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

from t2vrt.diskspace import free_bytes, is_disk_full, no_space
from t2vrt.errors import InputError, OutputError
from t2vrt.locks import pid_alive

VIDEO_SUFFIXES = (".mp4", ".gif", "")
FORMATS = (".mp4", ".gif", "a folder (no suffix) of png frames")
FRAMES_MARK = ".t2vrt-frames"  # written into every png-frame folder; only such folders are ever replaced
_FRAME = re.compile(r"^frame_\d{4,}\.png$")


def check_fps(fps) -> float:
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise InputError(f"fps={fps!r} must be a finite number > 0 (frames per second of the written video)")
    return float(fps)


def is_frame_folder(p: Path) -> bool:
    """A folder of png frames this tool wrote: its mark, and nothing but frame_NNNN.png beside it."""
    return (p / FRAMES_MARK).is_file() and all(c.name == FRAMES_MARK or _FRAME.match(c.name) for c in p.iterdir())


def check_output(path: str | os.PathLike, fps=None, overwrite: bool = False, suffixes=VIDEO_SUFFIXES) -> Path:
    """Raise (InputError / OutputError, one line) unless ``path`` can be written without losing anything.

    Call it before any model runs. ``suffixes`` are the allowed ones ("" is a png-frame folder for videos).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in suffixes:
        allowed = ", ".join(FORMATS) if suffixes == VIDEO_SUFFIXES else ", ".join(s or "no suffix" for s in suffixes)
        raise InputError(f"cannot write {p.name!r}: supported outputs are {allowed}")
    if fps is not None:
        check_fps(fps)
    if p.is_dir():
        if suffix or not is_frame_folder(p):
            raise OutputError(f"{str(p)!r} is an existing directory that t2vrt did not write; it is never replaced: "
                              "choose another -o")
        if not overwrite:
            raise OutputError(f"{str(p)!r} holds png frames of an earlier run; pass --overwrite to replace them, or "
                              "choose another -o")
    elif p.exists() or p.is_symlink():
        if not p.is_file():
            raise OutputError(f"{str(p)!r} exists and is not a regular file; choose another -o")
        if not suffix:
            raise OutputError(f"{str(p)!r} is an existing file; png frames need a new folder (or give a .mp4 or .gif "
                              "path)")
    _check_parent(p)
    return p


def _check_parent(p: Path) -> None:
    """The nearest existing ancestor must be a writable directory (missing folders are created on write)."""
    anc = p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"cannot write {str(p)!r}: {str(anc)!r} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {str(p)!r}: no write permission in {str(anc)!r}")
    probe = anc / f".t2vrt-probe-{os.getpid()}-{threading.get_ident()}"
    try:  # what the filesystem says, not what the mode bits say (root, a read-only mount, sysfs)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write {str(p)!r}: {cannot_create(e, anc)}; choose another -o") from None


def cannot_create(e: OSError, folder: Path) -> str:
    """The real cause of a file that cannot be created in ``folder``: permission, read-only filesystem, full disk."""
    if is_disk_full(e):
        return f"no space left on device in {str(folder)!r}"
    why = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only filesystem"}
    return f"cannot create files in {str(folder)!r} ({why.get(e.errno, (e.strerror or str(e)).lower())})"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(path: Path) -> None:
    """fsync a file, or every file of a folder and the folder itself."""
    if path.is_dir():
        for child in path.iterdir():
            _fsync(child)
    _fsync(path)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], None], verify: Callable[[Path], None], needed: int) -> Path:
    """``write(tmp)`` beside ``path``, sync, ``verify(tmp)`` (raises on a bad result), rename into place.

    ``path`` must have passed check_output. ``needed`` (bytes, an estimate) goes into the disk-full line. A png-frame
    folder being replaced is renamed aside and removed only after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    _remove(tmp)
    try:
        write(tmp)
        sync_tree(tmp)
        verify(tmp)
    except Exception as e:
        other = isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        full = is_disk_full(e) or not other and free_bytes(path.parent) < max(needed, 1 << 20)
        _remove(tmp)
        if other:
            raise OutputError(f"cannot write {str(path)!r}: {cannot_create(e, path.parent)}; the previous file is "
                              "untouched") from None
        if full:
            raise OutputError(no_space(path, needed, path.parent) + "; the previous file is untouched") from None
        cause = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:200]
        raise OutputError(f"writing {str(path)!r} failed ({cause}); the previous file is untouched") from None
    except BaseException:
        _remove(tmp)
        raise
    _commit(tmp, path)
    return path


def _commit(tmp: Path, path: Path) -> None:
    old = None
    if path.is_dir():  # a frame folder check_output let through (overwrite): aside first, removed last
        old = path.with_name(f".{path.name}.replaced-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """A text file (e.g. JSON results), written beside ``path`` and renamed into place."""
    data = text.encode()

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    def verify(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise OutputError(f"{str(path)!r}: short write")

    return write_atomic(Path(path), write, verify, len(data))


_LEFTOVER = re.compile(r"^\..+\.partial-(\d+)(-\d+)?(\.[A-Za-z0-9]+)?$|^\.t2vrt-probe-(\d+)-\d+$")


def clean_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove what killed writers left in ``folder`` and below (symlinks not followed): ``.NAME.partial-PID[-TID].EXT``
    files (videos, results, manifests) and png-frame folders whose process is gone. Returns what it removed. Call it
    once when a run starts in an output folder (``t2vrt batch`` does; the service does at start-up)."""
    removed = []
    for top, dirs, files in os.walk(folder):
        for name in [*files, *dirs]:
            m = _LEFTOVER.match(name)
            pid = m and int(m.group(1) or m.group(4))
            if not m or pid == os.getpid() or pid_alive(pid):
                continue
            p = Path(top) / name
            if (p / "manifest.json").exists():  # a complete export refused its placement: t2vrt.export.workdir's
                continue
            _remove(p)
            removed.append(p)
        dirs[:] = [d for d in dirs if not _LEFTOVER.match(d)]
    return removed
