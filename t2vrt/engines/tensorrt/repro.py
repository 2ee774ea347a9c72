"""The command that reproduces one engine build outside t2vrt: `polygraphy convert` with the same ONNX file,
optimization profiles and builder flags, for a failed build's one-line error (and a TensorRT bug report).

Polygraphy's flags (polygraphy/tools/args/backend/trt/config.py): ``--trt-min-shapes``/``--trt-opt-shapes``/
``--trt-max-shapes`` once per profile, in order; ``--strongly-typed``; ``--builder-optimization-level``;
``--pool-limit workspace:BYTES``; with ``POLYGRAPHY_USE_TENSORRT_RTX=1`` it drives TensorRT-RTX and takes
``--compute-capabilities 8.9`` (or ``--use-gpu`` for this machine's GPU).

Why `t2vrt build` keeps its own builder rather than Polygraphy's loaders (``EngineBytesFromNetwork(
NetworkFromOnnxPath(..., strongly_typed=True), CreateConfig(profiles=..., load_timing_cache=...))``): they would
replace about 40 lines (network, config, profiles) and none of what matters more: Polygraphy picks TensorRT or
TensorRT-RTX once per process from ``POLYGRAPHY_USE_TENSORRT_RTX`` read at import, where ``--flavour`` chooses per
build; its build failure is one generic exception, where ours keeps TensorRT's own messages for the one-line hints
(Myelin, no GPU) and the per-bucket fallback; the cache keys, manifest records and atomic writes stay ours either
way. The CLI form of the same build is what Polygraphy gives best: this command.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Mapping, Sequence


def _shape(name: str, dims: Sequence[int]) -> str:
    return shlex.quote(f"{name}:[{','.join(map(str, dims))}]")


def _capabilities(targets: Sequence[str]) -> str:
    """("sm89", "sm120") -> "--compute-capabilities 8.9 12.0"; "current" -> "--use-gpu"."""
    if "current" in targets:
        return "--use-gpu"
    caps = [f"{t[2:-1]}.{t[-1]}" for t in targets if t.startswith("sm") and t[2:].isdigit()]
    return f"--compute-capabilities {' '.join(caps)}" if caps else ""


def convert_command(onnx_path: str | Path, shapes: Mapping | Sequence[Mapping], flavour: str, targets: Sequence[str],
                    opt_level: int, strongly_typed: bool = True, workspace_mb: int | None = None,
                    out: str = "engine.plan") -> str:
    """One shell line: ``shapes`` is one {input: [min, opt, max]} per optimization profile (a lone dict: one)."""
    words = ["POLYGRAPHY_USE_TENSORRT_RTX=1"] if flavour == "tensorrt-rtx" else []
    words += ["polygraphy", "convert", shlex.quote(str(onnx_path)), "-o", shlex.quote(out)]
    for profile in [shapes] if isinstance(shapes, Mapping) else shapes:
        for i, flag in enumerate(("--trt-min-shapes", "--trt-opt-shapes", "--trt-max-shapes")):
            words += [flag] + [_shape(name, dims[i]) for name, dims in profile.items()]
    if strongly_typed:
        words.append("--strongly-typed")
    words += ["--builder-optimization-level", str(opt_level)]
    if workspace_mb:
        words += ["--pool-limit", f"workspace:{workspace_mb << 20}"]
    if flavour == "tensorrt-rtx":
        words.append(_capabilities(targets))
    return " ".join(w for w in words if w)
