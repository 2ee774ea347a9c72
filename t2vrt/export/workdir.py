"""Where an export writes before its output is complete, and what a full disk or a killed export leaves.

An export writes into ``.NAME.partial-PID`` beside the output and renames it into place at the end. An
exception removes it; a SIGKILL cannot, so the next export into the same parent removes the partial
directories of processes that are gone. ``load_manifest`` refuses a partial directory by its name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2vrt.diskspace import DISK_FULL, gib, is_disk_full, no_space  # noqa: F401 (DISK_FULL, gib: re-exported)
from t2vrt.errors import ExportError
from t2vrt.manifest import PARTIAL_MARK

log = logging.getLogger(__name__)
REPLACED_MARK = "replaced"  # an --overwrite moves the old directory to ".NAME.replaced-PID" before deleting it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove ``.NAME.partial-PID`` (and ``.NAME.replaced-PID``) beside ``out`` whose process is gone."""
    removed, prefix = [], f".{out.name}."
    for p in out.parent.iterdir() if out.parent.is_dir() else ():
        if not p.name.startswith(prefix):
            continue
        kind, _, pid = p.name[len(prefix) :].partition("-")
        if kind not in (PARTIAL_MARK, REPLACED_MARK) or not pid.isdigit() or not p.is_dir():
            continue
        if int(pid) != os.getpid() and _pid_alive(int(pid)):
            log.warning("%s belongs to a running export (pid %s); left alone", p, pid)
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


def replace_dir(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is first renamed aside, so no moment has a half-deleted one."""
    old = out.parent / f".{out.name}.{REPLACED_MARK}-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
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
