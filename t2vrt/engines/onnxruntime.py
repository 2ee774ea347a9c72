"""ONNX Runtime runner: the CPU provider everywhere, CUDA when onnxruntime-gpu is installed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from t2vrt.components import ComponentSpec
from t2vrt.engines.base import Array, check_feed
from t2vrt.errors import EngineError
from t2vrt.host import return_freed_heap

log = logging.getLogger(__name__)
INSTALL = "pip install 't2vrt[cpu]' (onnxruntime, CPU) or pip install 't2vrt[gpu]' (onnxruntime-gpu, NVIDIA GPUs)"


def import_onnxruntime():
    """The onnxruntime module; a one-line EngineError naming both install commands where neither package is there."""
    try:
        import onnxruntime
    except ImportError:
        raise EngineError(f"ONNX Runtime is not installed: {INSTALL}") from None
    return onnxruntime


def session_options(threads: int | None = None):
    """``threads``: intra-op threads; None: ``$T2VRT_THREADS`` where set (host.env_threads), else ONNX Runtime's."""
    from t2vrt.host import env_threads

    ort = import_onnxruntime()  # neither onnxruntime nor onnxruntime-gpu: one line naming both

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Off: the memory pattern allocates each run's planned peak as one block beside the arena's chunks of the run
    # before, raising the resident peak from the second call with the same shapes on (every VAE chunk, every UNet
    # step), where the arena alone reuses its chunks. Measured off against on (benchmarks/RESULTS.md): the small
    # preset's UNet working memory 985 MB instead of 1674, an 8-frame VAE chunk's 535 instead of 967, same time.
    so.enable_mem_pattern = False
    threads = threads or env_threads()
    if threads:
        so.intra_op_num_threads = threads
    return so


def check_providers(providers) -> None:
    """Unknown ONNX Runtime providers, refused in one line naming the available ones."""
    ort = import_onnxruntime()  # neither onnxruntime nor onnxruntime-gpu: one line naming both

    available = ort.get_available_providers()
    unknown = [p for p in providers or () if p not in available]
    if unknown:
        raise EngineError(f"ONNX Runtime providers {unknown} are not available; available providers are: {available}")


class OrtRunner:
    """Runs one ONNX graph; ``providers`` defaults to CUDA where available, else CPU."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, spec: ComponentSpec, providers: list[str] | None = None,
                 threads: int | None = None):
        ort = import_onnxruntime()  # neither onnxruntime nor onnxruntime-gpu: one line naming both

        available = ort.get_available_providers()
        providers = list(providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available])
        check_providers(providers)
        if not os.path.isfile(path):
            raise EngineError(f"{spec.name}: ONNX file {path} is missing; re-export the model")
        self.spec = spec
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
        self.providers = self.session.get_providers()
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(t.name for t in spec.inputs):
            raise EngineError(f"{path} has inputs {names}; the manifest says {[t.name for t in spec.inputs]}")
        self.output_names = [t.name for t in spec.outputs]

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.session is None:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        outs = self.session.run(self.output_names, {k: np.ascontiguousarray(v) for k, v in feed.items()})
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        """Drop the session (its weights, arena and thread pools go with it) and give the freed heap back."""
        self.session = None
        return_freed_heap()

