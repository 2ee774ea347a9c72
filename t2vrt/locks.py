"""Exclusive writers: an export, a build or a batch (and the service) holds an advisory lock on what it writes.

The lock is ``flock`` on a small file, beside a directory target (``PARENT/.NAME.lock``) or inside an output folder
(``OUT/.t2vrt.lock``). The operating system releases it when the process ends, however it ends (kill -9 included),
so a lock is never stale. The holder writes its PID, command and what it writes into the file; a second writer
reads that and is refused at once in one line naming them, or waits where waiting makes sense (a ``build`` of other
components). The holder removes the file when done; an acquirer checks that the file it locked is still the one at
the path, so removal cannot let two writers in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Iterator

from t2vrt.errors import BusyError, OutputError

log = logging.getLogger(__name__)
FOLDER_LOCK = ".t2vrt.lock"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's live process counts): what a leftover's PID is checked with."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def command_line() -> str:
    """This process's command as a user typed it (``t2vrt build DIR ...``), at most 200 characters."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    argv = ["t2vrt" if name == "__main__.py" else name, *sys.argv[1:]]  # `python -m t2vrt` is `t2vrt`
    text = shlex.join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def dir_lock_path(target: str | Path) -> Path:
    """The lock of a directory target (an engine directory): ``PARENT/.NAME.lock``; inside it when its parent is
    not writable (then no export can replace it either, since an export writes beside it)."""
    target = Path(target).absolute()
    beside = target.parent / f".{target.name}.lock"
    if target.is_dir() and not os.access(target.parent, os.W_OK):
        return target / FOLDER_LOCK
    return beside


def read_holder(path: Path) -> dict:
    """What the holder of ``path`` wrote ({} when it is not written yet or unreadable)."""
    from t2vrt.jsonio import JSONError, loads

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            d = loads(f.read(1 << 16), str(path))
        return d if isinstance(d, dict) else {}
    except (OSError, JSONError):
        return {}


def describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"process {holder.get('pid', '?')} ({holder.get('command', '?')})"


def _open_locked(path: Path, blocking: bool) -> int | None:
    """An fd holding the flock of the file now at ``path``, or None when another process holds it (non-blocking)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            raise OutputError(f"cannot create the lock file {path}: {e.strerror or e}; "
                              f"{path.parent} must be writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed it between our open and lock: lock the new one


@contextlib.contextmanager
def exclusive(path: str | Path, what: str, info: dict | None = None,
              wait: Callable[[dict], bool] | None = None) -> Iterator[dict]:
    """Hold the lock ``path`` while writing ``what``. Held by another process: BusyError at once (one line naming
    its PID and command), unless ``wait(holder)`` says to wait, which is logged and then blocks until it ends."""
    path = Path(path)
    mine = {"pid": os.getpid(), "command": command_line(), "what": what, **(info or {})}
    fd = _open_locked(path, blocking=False)
    if fd is None:
        holder = read_holder(path)
        if wait is None or not wait(holder):
            raise BusyError(f"{what} is being written by {describe(holder)}; wait for it to finish (or stop it) "
                            "and run this again")
        log.warning("waiting for %s to finish writing %s", describe(holder), what)
        fd = _open_locked(path, blocking=True)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(mine).encode())
        yield mine
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still locked: a waiter that locked this file sees it gone and retries
        os.close(fd)


def folder_lock(folder: str | Path, what: str, info: dict | None = None):
    """The lock of an output folder (``OUT/.t2vrt.lock``): a batch, or the service, writing into it."""
    return exclusive(Path(folder) / FOLDER_LOCK, what, info)
