"""Where an export writes before its output is complete, and what a full disk or a killed export leaves.

An export writes into ``.NAME.partial-PID`` beside the output and renames it into place at the end (``place``):
into a target that still does not exist, or, with --overwrite, over the one it checked at the start if its identity
(inode and manifest hash) is unchanged; never over anything else, so no directory it did not create is deleted. A
refused placement leaves the finished export at its partial path and says so. An exception removes the partial
directory; a SIGKILL cannot, so the next export into the same parent removes the partial directories of processes
that are gone (a complete one, refused its placement, is kept). ``load_manifest`` refuses a partial directory by
its name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2vrt.diskspace import DISK_FULL, gib, is_disk_full, no_space  # noqa: F401 (DISK_FULL, gib: re-exported)
from t2vrt.errors import ExportError
from t2vrt.locks import pid_alive
from t2vrt.manifest import MANIFEST, PARTIAL_MARK

log = logging.getLogger(__name__)
REPLACED_MARK = "replaced"  # an --overwrite moves the old directory to ".NAME.replaced-PID" before deleting it


def clean_stale(out: Path) -> list[Path]:
    """Remove ``.NAME.partial-PID`` (and ``.NAME.replaced-PID``) beside ``out`` whose process is gone. A complete
    partial export (its manifest written: its placement was refused) is kept; a replaced directory whose export
    died before its replacement arrived is moved back to ``out``."""
    removed, prefix = [], f".{out.name}."
    for p in out.parent.iterdir() if out.parent.is_dir() else ():
        if not p.name.startswith(prefix):
            continue
        kind, _, pid = p.name[len(prefix) :].partition("-")
        if kind not in (PARTIAL_MARK, REPLACED_MARK) or not pid.isdigit() or not p.is_dir() or p.is_symlink():
            continue
        if int(pid) != os.getpid() and pid_alive(int(pid)):
            log.warning("%s belongs to a running export (pid %s); left alone", p, pid)
            continue
        if kind == PARTIAL_MARK and (p / MANIFEST).is_file():
            log.warning("%s is a complete export that could not be moved to %s; left alone (move it yourself)", p, out)
            continue
        if kind == REPLACED_MARK and rename_noreplace(p, out):
            log.warning("moved %s back to %s: the export replacing it did not finish", p, out)
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
        log.info("removed %s, left by an export that did not finish", p)
    return removed


def temp_dir(out: Path) -> Path:
    """A fresh ``.NAME.partial-PID`` beside ``out``, after clearing stale ones."""
    clean_stale(out)
    tmp = out.parent / f".{out.name}.{PARTIAL_MARK}-{os.getpid()}"
    tmp.mkdir(parents=True)
    return tmp


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist (Linux renameat2 RENAME_NOREPLACE: atomic); False
    when it exists. Elsewhere: a check then a rename (a directory created between the two could only be empty)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        fn = None
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if os.path.lexists(dst):
        return False
    os.rename(src, dst)
    return True


def identity(out: Path) -> tuple | None:
    """What ``out`` is: (device, inode, sha256 of its manifest.json or None), or None when it does not exist."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return None
    try:
        digest = hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        digest = None
    return st.st_dev, st.st_ino, digest


class NotPlaced(ExportError):
    """The export is complete but its target changed meanwhile; it stays at its partial path (not removed)."""


def place(tmp: Path, out: Path, expected: tuple | None) -> None:
    """Move the finished ``tmp`` to ``out``. ``expected``: ``out``'s identity when the export started (None: it did
    not exist). Replaces only that same directory (an --overwrite); anything else is refused with NotPlaced."""
    keep = f"the finished export is left at {tmp}: move it into place yourself (`mv {tmp} NEWNAME`)"
    if expected is None:
        if not rename_noreplace(tmp, out):
            raise NotPlaced(f"{out} was created by someone else during the export, so it is left untouched; {keep}")
        return
    old = out.parent / f".{out.name}.{REPLACED_MARK}-{os.getpid()}"
    try:
        os.rename(out, old)
    except FileNotFoundError:
        return place(tmp, out, None)
    if identity(old) != expected:
        back = rename_noreplace(old, out)
        where = "" if back else f" (it is now at {old}: `mv {old} {out}` restores it)"
        raise NotPlaced(f"{out} changed during the export (not the directory --overwrite was given), so it is not "
                        f"replaced{where}; {keep}")
    if not rename_noreplace(tmp, out):
        raise NotPlaced(f"{out} was created by someone else while the old one was moved aside (the old one is at "
                        f"{old}); {keep}")
    shutil.rmtree(old, ignore_errors=True)


def check_space(folder: Path, needed: int, what: str) -> None:
    """Fail before writing anything when the filesystem of ``folder`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ExportError(f"not enough space on {folder} for {what}: {gib(needed)} needed, {gib(free)} free; free some "
                          "or choose another -o")


@dataclass
class Writing:
    """What an export is writing now (a path in the engine directory), for the disk-full message."""

    what: str = "the engine directory"


@contextlib.contextmanager
def disk_errors(tmp: Path, needed: int):
    """Turn a full disk anywhere inside into one ExportError line, naming the ``Writing.what`` it yields.

    The partial output is removed first, so the free space reported is what the next try would have.
    """
    writing = Writing()
    try:
        yield writing
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        where = _relative(getattr(e, "filename", None), tmp) or writing.what
        raise ExportError(no_space(where, needed, tmp.parent)) from None


def _relative(filename, tmp: Path) -> str | None:
    if not filename:
        return None
    try:
        return str(Path(filename).resolve().relative_to(tmp.resolve()))
    except ValueError:
        return str(filename)
