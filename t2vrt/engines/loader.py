"""Choose a backend and open a component's runner from an engine directory."""

from __future__ import annotations

import logging
from pathlib import Path

from t2vrt.components import TEXT_TO_VIDEO
from t2vrt.engines.base import Runner
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnxruntime", "tensorrt")


def _tensorrt_unusable(manifest: Manifest) -> str:
    """Why the tensorrt backend cannot run this directory here ("" when it can)."""
    from t2vrt.engines.tensorrt_env import cuda_available
    from t2vrt.engines.tensorrt_records import find_engine

    if not manifest.engines:
        return "no TensorRT engines are built (t2vrt build DIR)"
    if not cuda_available():
        return "no CUDA GPU is visible to torch"
    for name in (c for c in TEXT_TO_VIDEO if c in manifest.components):
        record, why = find_engine(manifest.engines, name)
        if record is None:
            return why
    return ""


def resolve_backend(backend: str, manifest: Manifest) -> str:
    """``auto`` -> tensorrt when every pipeline component has an engine for this GPU and TensorRT version
    and CUDA is available, else onnxruntime; the choice and its reason are logged."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    why = _tensorrt_unusable(manifest)
    if why:
        log.info("backend: onnxruntime (tensorrt not used: %s)", why)
        return "onnxruntime"
    log.info("backend: tensorrt (engines built for this GPU)")
    return "tensorrt"


def open_runner(root: Path, manifest: Manifest, name: str, backend: str, precision: str | None = None,
                providers: list[str] | None = None, threads: int | None = None) -> Runner:
    """A Runner for component ``name`` on a resolved backend. ``precision`` None: fp32 ONNX for onnxruntime,
    the engine built for this GPU (fp16 first) for tensorrt."""
    spec = manifest.spec(name)
    if backend == "onnxruntime":
        from t2vrt.engines.onnxruntime import OrtRunner

        return OrtRunner(manifest.onnx_path(root, name, precision or "fp32"), spec, providers=providers, threads=threads)
    if backend == "tensorrt":
        from t2vrt.engines.tensorrt_records import find_engine
        from t2vrt.engines.tensorrt_runner import TrtRunner

        record, why = find_engine(manifest.engines, name, precision, root=str(root))
        if record is None:
            raise EngineError(f"{name}: no TensorRT engine can run here: {why}")
        return TrtRunner(Path(root) / record["path"], spec, record, root=str(root))
    raise EngineError(f"backend {backend!r} cannot run {name} here; choose onnxruntime or tensorrt")
