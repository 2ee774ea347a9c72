"""Choose a backend and open a component's runner from an engine directory."""

from __future__ import annotations

import logging
from pathlib import Path

from t2vrt.engines.base import Runner
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)
BACKENDS = ("auto", "onnxruntime", "tensorrt")


def resolve_backend(backend: str, manifest: Manifest) -> str:
    """``auto`` -> the best backend that is installed and built for this directory."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return "onnxruntime"


def open_runner(root: Path, manifest: Manifest, name: str, backend: str, precision: str = "fp32",
                providers: list[str] | None = None) -> Runner:
    """A Runner for component ``name`` on a resolved backend."""
    spec = manifest.spec(name)
    if backend == "onnxruntime":
        from t2vrt.engines.onnxruntime import OrtRunner

        return OrtRunner(manifest.onnx_path(root, name, precision), spec, providers=providers)
    raise EngineError(f"backend {backend!r} cannot run {name} here")
