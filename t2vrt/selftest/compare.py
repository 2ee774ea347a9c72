"""Outputs of a backend against ONNX Runtime CPU fp32, with Polygraphy's comparator; frames by PSNR, NaN and black.

Polygraphy (NVIDIA's build-run-compare tool) does the tensor comparisons: each run is a Polygraphy
``IterationResult``, and its ``SimpleCompareFunc`` (``CompareFunc.simple`` before 0.53) checks every element
against a per-output absolute and relative tolerance, the tolerance of the graph's precision. The errors it
measures (max / mean / median, absolute and relative) are recorded beside the tolerance it checked against.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Mapping

import numpy as np

# Per graph precision: Polygraphy's elementwise check (an element fails where it is off by more than atol AND by more
# than rtol of the reference) and the least PSNR of a whole generation's frames against the CPU fp32 frames.
# fp32 as the export's validation (t2vrt/export/validate.py). fp16 and bf16 keep 10 and 7 mantissa bits; measured
# on the tiny preset's seeded feeds, the largest element off: fp16 on ONNX Runtime CPU 0.013 (VAE), bf16 on OpenVINO
# 0.091 (UNet; mean 0.012), so the bars are about 1.5x those. 30 dB is issue 12's bar for fp16 frames.
TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-3, "psnr_db": 40.0},
    "fp16": {"atol": 2e-2, "rtol": 2e-2, "psnr_db": 30.0},
    "bf16": {"atol": 1.5e-1, "rtol": 5e-2, "psnr_db": 25.0},
}
BLACK = 1 / 255  # a frame whose every value is at most this is black (as t2vrt.bench.quality)


def tolerance(precision: str) -> dict:
    """The tolerances of ``precision`` (KeyError names the known ones)."""
    if precision not in TOLERANCES:
        raise KeyError(f"no tolerance for precision {precision!r}; known: {', '.join(TOLERANCES)}")
    return dict(TOLERANCES[precision])


def to_numpy(a) -> np.ndarray:
    """A host NumPy array from a NumPy array or a torch tensor (CUDA included): the edge between runners."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach"):  # torch.Tensor, on any device
        return a.detach().float().cpu().numpy() if str(a.dtype) == "torch.bfloat16" else a.detach().cpu().numpy()
    return np.asarray(a)


def _quiet():
    """Polygraphy's logger at ERROR for one comparison (it logs every output's histogram at INFO)."""
    from polygraphy.logger import G_LOGGER

    verbosity = getattr(G_LOGGER, "verbosity", None)
    return verbosity(G_LOGGER.CRITICAL) if verbosity else nullcontext()


def _compare_func(atol: float, rtol: float):
    from polygraphy import comparator

    make = getattr(comparator, "SimpleCompareFunc", None)
    if make is None:  # Polygraphy < 0.53
        make = comparator.CompareFunc.simple
    return make(atol={"": atol}, rtol={"": rtol}, check_error_stat={"": "elemwise"})


def _number(v) -> float | None:
    return None if v is None else float(v)


def compare_outputs(reference: Mapping, candidate: Mapping, precision: str, names: tuple[str, str]) -> dict:
    """Every output of ``candidate`` against ``reference`` at ``precision``'s tolerance, with Polygraphy.

    ``names``: the runners' names (reference, candidate). Returns {"passed", "atol", "rtol", "outputs": {name:
    {"passed", "max_abs", "max_rel", "mean_abs", "median_abs", "nan"}}}; a NaN or a shape mismatch fails."""
    from polygraphy.comparator import IterationResult

    tol = tolerance(precision)
    ref = IterationResult({k: to_numpy(v) for k, v in reference.items()}, runner_name=names[0])
    out = IterationResult({k: to_numpy(v) for k, v in candidate.items()}, runner_name=names[1])
    with _quiet():
        results = _compare_func(tol["atol"], tol["rtol"])(ref, out)
    outputs = {}
    for name in reference:
        r = results.get(name)
        stats = getattr(r, "__dict__", {})  # an OutputCompareResult; a bare False where the shapes differ
        nan = bool(np.isnan(out[name]).any()) if name in out.keys() else True
        outputs[name] = {"passed": bool(r) and not nan, "max_abs": _number(stats.get("max_absdiff")),
                         "max_rel": _number(stats.get("max_reldiff")), "mean_abs": _number(stats.get("mean_absdiff")),
                         "median_abs": _number(stats.get("median_absdiff")), "nan": nan}
        if not stats:
            shapes = (np.shape(ref[name]), np.shape(out[name]) if name in out.keys() else None)
            outputs[name]["error"] = f"not compared: shapes {shapes[0]} and {shapes[1]}"
    return {"passed": all(o["passed"] for o in outputs.values()), "atol": tol["atol"], "rtol": tol["rtol"],
            "outputs": outputs}


def frame_checks(frames, reference, precision: str) -> dict:
    """A generation's frames [..., H, W, 3] in [0, 1] against the CPU fp32 frames: PSNR at least the precision's
    bar, no NaN, no black frame (where the reference has none)."""
    a, b = np.asarray(to_numpy(frames), np.float64), np.asarray(to_numpy(reference), np.float64)
    bar = tolerance(precision)["psnr_db"]
    nan = int(np.isnan(a).sum())
    if a.shape != b.shape:
        return {"passed": False, "error": f"frames {a.shape}, the CPU's {b.shape}", "nan": nan, "psnr_min_db": bar}
    per_frame = a.reshape(-1, *a.shape[-3:])
    black = int(sum(float(np.nanmax(f)) <= BLACK for f in per_frame))
    ref_black = int(sum(float(f.max()) <= BLACK for f in b.reshape(-1, *b.shape[-3:])))
    mse = float(np.mean((np.nan_to_num(a, nan=1e3) - b) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
    passed = nan == 0 and psnr >= bar and black <= ref_black
    return {"passed": passed, "psnr_db": psnr if math.isfinite(psnr) else "inf", "psnr_min_db": bar, "nan": nan,
            "black_frames": black, "frames": len(per_frame)}
