"""One wording for a full disk, shared by the export (engine directories) and the runtime (videos)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**28 else f"{n / 2**20:.1f} MB"


def is_disk_full(e: BaseException) -> bool:
    """An OSError with ENOSPC/EDQUOT, or a C++ writer's RuntimeError saying so."""
    if isinstance(e, OSError) and e.errno in DISK_FULL:
        return True
    return isinstance(e, (OSError, RuntimeError)) and "No space left on device" in str(e)


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the filesystem of ``folder`` (or of its nearest existing ancestor)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def no_space(where: str | os.PathLike, needed: int, folder: str | Path) -> str:
    """The one line: "no space left on device while writing X; N MB needed, M MB free"."""
    return f"no space left on device while writing {where}; {gib(needed)} needed, {gib(free_bytes(folder))} free"
