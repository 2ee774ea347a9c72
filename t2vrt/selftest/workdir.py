"""Where the selftest builds: a private copy of the engine directory, so the user's directory is never changed.

Files are hard-linked where the file system allows (no bytes copied; nothing here writes into a file in place: the
build writes new plans and renames the manifest over its own copy), else copied. Without DIR the tiny preset is
exported into the same temporary folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def private_copy(src: Path, parent: Path) -> Path:
    """A copy of engine directory ``src`` under ``parent``: hard links, the manifest a real copy."""
    dst = parent / src.name
    shutil.copytree(src, dst, copy_function=_link_or_copy)
    manifest = dst / "manifest.json"
    manifest.unlink()
    shutil.copy2(src / "manifest.json", manifest)
    return dst


def temp_parent(near: Path | None) -> Path:
    """A new temporary folder: beside ``near`` where that folder is writable (hard links need one file system),
    else in the system's temporary folder."""
    if near is not None:
        try:
            return Path(tempfile.mkdtemp(prefix=".t2vrt-selftest-", dir=near.resolve().parent))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="t2vrt-selftest-"))


def export_tiny(parent: Path) -> Path:
    """The tiny random-weight preset, exported in fp32 and fp16 (needs the export extra: torch, diffusers), without
    the CPU-fused graph, as a real-size model is exported (its weights are external data, which the fusion leaves
    alone: export/ort_fusion.py), so the CPU checks run the graph a real model's CPU runs; and 11 s sooner."""
    from t2vrt.components import Profile
    from t2vrt.errors import InputError

    try:
        from t2vrt.export import ExportOptions, export_model
        from t2vrt.export.random_model import build_model
    except ImportError as e:
        raise InputError(f"selftest without DIR exports a tiny model and needs the export extra ({e.name} is missing): "
                         "pip install 't2vrt[export]', or give an engine directory: t2vrt selftest DIR") from None
    model = build_model(parent / "model", "tiny", seed=0)
    profile = Profile(batch=(1, 1, 1), frames=(1, 8, 16), height=(32, 64, 128), width=(32, 64, 128),
                      decode_chunk=(1, 4, 8))
    options = ExportOptions(profile=profile, precisions=("fp32", "fp16"), validate=False, ort_fusion=False)
    return export_model(str(model), parent / "engines", options)
