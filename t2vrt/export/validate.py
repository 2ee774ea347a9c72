"""Compare an exported graph with its torch module at shapes unlike the export shapes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from t2vrt.errors import ExportError
from t2vrt.export.onnx import sample_inputs
from t2vrt.specs import ComponentSpec

log = logging.getLogger(__name__)

# Tolerance on the relative L2 error of each output, by graph precision.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}


def rel_l2(a: np.ndarray, ref: np.ndarray) -> float:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-30))


def validate(module, spec: ComponentSpec, onnx_path: Path, shapes: list[dict[str, int]], precision: str = "fp32",
             tolerance: float | None = None, vocab: int = 1000) -> dict:
    """Run torch and ONNX Runtime at each shape; raise ExportError naming the worst output if over tolerance.

    Returns the manifest's validation record: the tolerance and, per shape, each output's errors.
    """
    import torch

    from t2vrt.engines.onnxruntime import OrtRunner

    tol = TOLERANCE[precision] if tolerance is None else tolerance
    runner = OrtRunner(onnx_path, spec, providers=["CPUExecutionProvider"])
    records = []
    for k, sizes in enumerate(shapes):
        args = sample_inputs(spec, sizes, seed=100 + k, vocab=vocab)
        with torch.no_grad():
            ref = module(*args)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = runner.infer({t.name: a.numpy() for t, a in zip(spec.inputs, args)})
        rec = {"sizes": sizes, "outputs": {}}
        for t, r in zip(spec.outputs, ref):
            r = r.float().numpy()
            g = got[t.name].astype(np.float32)
            if g.shape != r.shape:
                raise ExportError(f"{spec.name}: output {t.name!r} has shape {g.shape} at {sizes}; torch gives {r.shape} (an axis became static?)")
            err = rel_l2(g, r)
            rec["outputs"][t.name] = {"rel_l2": err, "max_abs": float(np.max(np.abs(g - r)))}
            if not err <= tol:
                raise ExportError(
                    f"{spec.name} ({precision}): output {t.name!r} differs from PyTorch by {err:.3g} relative L2 at {sizes}; tolerance {tol:g}"
                )
        log.info("%s %s at %s: %s", spec.name, precision, sizes, {n: f"{o['rel_l2']:.2e}" for n, o in rec["outputs"].items()})
        records.append(rec)
    runner.close()
    return {"precision": precision, "tolerance": tol, "metric": "relative L2", "shapes": records}
