"""Compare an exported graph with its torch module at shapes unlike the export shapes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from t2vrt.components import ComponentSpec
from t2vrt.errors import ExportError
from t2vrt.export.onnx import sample_inputs

log = logging.getLogger(__name__)

# Tolerance on the relative L2 error of each output, by graph precision.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def reference_outputs(module, spec: ComponentSpec, shapes: list[dict[str, int]], vocab: int = 1000) -> list[tuple]:
    """PyTorch's outputs at each shape, as (sizes, numpy inputs, numpy outputs): kept so the module can be freed
    before ONNX Runtime loads the graph (a 1.4 B-parameter UNet in both at once would need twice the memory)."""
    import torch

    refs = []
    for k, sizes in enumerate(shapes):
        args = sample_inputs(spec, sizes, seed=100 + k, vocab=vocab)
        with torch.no_grad():
            out = module(*args)
        out = out if isinstance(out, tuple) else (out,)
        refs.append((sizes, [a.numpy() for a in args], [o.float().numpy() for o in out]))
    return refs


def compare(spec: ComponentSpec, onnx_path: Path, refs: list[tuple], precision: str = "fp32",
            tolerance: float | None = None) -> dict:
    """Run the graph in ONNX Runtime on each reference's inputs; raise ExportError naming the worst output if over
    tolerance.

    Returns the manifest's validation record: the tolerance and, per shape, each output's errors.
    """
    from t2vrt.engines.onnxruntime import OrtRunner

    tol = TOLERANCE[precision] if tolerance is None else tolerance
    runner = OrtRunner(onnx_path, spec, providers=["CPUExecutionProvider"])
    records = []
    try:
        for sizes, inputs, ref in refs:
            got = runner.infer({t.name: a for t, a in zip(spec.inputs, inputs)})
            records.append(_check_outputs(spec, sizes, got, ref, precision, tol))
    finally:
        runner.close()
    return {"precision": precision, "tolerance": tol, "metric": "relative L2", "shapes": records}


def _check_outputs(spec: ComponentSpec, sizes: dict, got: dict, ref: list, precision: str, tol: float) -> dict:
    rec = {"sizes": sizes, "outputs": {}}
    for t, r in zip(spec.outputs, ref):
        g = got[t.name].astype(np.float32)
        if g.shape != r.shape:
            raise ExportError(f"{spec.name}: output {t.name!r} has shape {g.shape} at {sizes}; torch gives {r.shape} "
                              "(an axis became static?)")
        err = rel_l2(g, r)
        rec["outputs"][t.name] = {"rel_l2": err, "max_abs": float(np.max(np.abs(g - r)))}
        if not err <= tol:
            raise ExportError(
                f"{spec.name} ({precision}): output {t.name!r} differs from PyTorch by {err:.3g} relative L2 at "
                f"{sizes}; tolerance {tol:g}"
            )
    log.info("%s %s at %s: %s", spec.name, precision, sizes,
             {n: f"{o['rel_l2']:.2e}" for n, o in rec["outputs"].items()})
    return rec

