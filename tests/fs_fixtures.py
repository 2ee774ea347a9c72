"""A filesystem of a few hundred KB of our own, to fill: the disk-full tests of export and runtime share it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def small_fs(tmp_path):
    """``small_fs(kib)`` mounts a tmpfs of that size (needs root); skipped where mounting is not permitted."""
    mounted = []

    def mount(kib: int) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command here; the disk-full tests need a tmpfs of their own")
        d = tmp_path / f"fs{kib}k"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(d)], capture_output=True,
                           text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): the disk-full tests need "
                        "root or CAP_SYS_ADMIN")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of ``folder`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
        except OSError:
            pass
