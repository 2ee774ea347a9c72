"""CPU latency against diffusers: the "small" preset, 256x256, 16 frames, 25 DDIM steps.

    python -m benchmarks.cpu_small --json /tmp/cpu_small.json

builds the random-weight "small" model (t2vrt.presets PRESETS["small"], seed 0) and its engine directory
once under --workdir, then runs ``t2vrt bench ENGINES --diffusers MODEL`` with the other arguments passed on
(--runs, --warmup, --frames, --steps, --json, ...). Run it on a quiet machine: print ``uptime`` first.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("cpu-small")
# Frames up to 64 and sizes up to 512 so the frame-scaling benchmark uses the same engines.
PROFILE = dict(
    batch=(1, 1, 2), frames=(1, 16, 64), height=(64, 256, 512), width=(64, 256, 512), decode_chunk=(1, 8, 16)
)


def small_engines(workdir: str | Path, preset: str = "small") -> tuple[Path, Path]:
    """The model folder and the engine directory exported from it, built on first use."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.random_model import build_model
    from t2vrt.manifest import load_manifest

    work = Path(workdir)
    model, engines = work / f"{preset}-model", work / f"{preset}-engines"
    if not (model / "model_index.json").is_file():
        build_model(model, preset, seed=0)
    if not (engines / "manifest.json").is_file() or load_manifest(engines).source != str(model):
        export_model(str(model), engines, ExportOptions(profile=Profile(**PROFILE), overwrite=True))
    return model, engines


def main(argv: list[str] | None = None) -> int:
    from t2vrt.cli import main as t2vrt_main

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/t2vrt-bench", help="where the model and engines are built (reused)")
    p.add_argument("--preset", default="small")
    args, rest = p.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model, engines = small_engines(args.workdir, args.preset)
    return t2vrt_main(["bench", str(engines), "--diffusers", str(model), *rest])


if __name__ == "__main__":
    sys.exit(main())
