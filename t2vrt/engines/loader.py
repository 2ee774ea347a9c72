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
    from t2vrt.engines.tensorrt.env import cuda_available
    from t2vrt.engines.tensorrt.records import find_engine

    if not manifest.engines:
        return "no TensorRT engines are built (t2vrt build DIR)"
    if not cuda_available():
        return "no CUDA GPU is visible to torch"
    for name in (c for c in TEXT_TO_VIDEO if c in manifest.components):
        record, why = find_engine(manifest.engines, name)
        if record is None:
            return why
    return ""


def _machine_has_gpu() -> bool:
    """An NVIDIA GPU is visible to torch or its driver is loaded (a CPU-only torch on a GPU machine counts)."""
    from t2vrt.engines.tensorrt.env import cuda_available

    return cuda_available() or Path("/dev/nvidiactl").exists()


def resolve_backend(backend: str, manifest: Manifest) -> str:
    """``auto`` -> tensorrt when every pipeline component has an engine for this GPU and TensorRT version and CUDA
    is available, else onnxruntime (on CUDA where onnxruntime-gpu and a GPU are there, else on the CPU); the choice
    and its reason are logged in one INFO line."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    why = _tensorrt_unusable(manifest)
    if not why:
        log.info("backend: tensorrt (engines built for this GPU)")
        return "tensorrt"
    from t2vrt.engines.onnxruntime_cuda import ort_cuda_unusable

    no_cuda = ort_cuda_unusable()
    if no_cuda and not _machine_has_gpu():  # the CPU is no news there: why not CUDA or TensorRT only with -v
        log.info("backend: onnxruntime on CPU")
        log.debug("backend: CUDA not used: %s (tensorrt not used: %s)", no_cuda, why)
        return "onnxruntime"
    where = f"CPU; CUDA not used: {no_cuda}" if no_cuda else "CUDA"
    log.info("backend: onnxruntime on %s (tensorrt not used: %s)", where, why)
    return "onnxruntime"


def ort_device(providers: list[str] | None) -> str:
    """Where the onnxruntime backend runs: "cuda" when asked for (CUDAExecutionProvider first) or, by default, when
    onnxruntime-gpu and a CUDA GPU are there; else "cpu". Asking for CUDA where it cannot run is a one-line error."""
    from t2vrt.engines.onnxruntime_cuda import CUDA_EP, ort_cuda_unusable

    if providers and providers[0] != CUDA_EP:
        return "cpu"
    why = ort_cuda_unusable()
    if providers and why:
        raise EngineError(f"{CUDA_EP} was asked for but cannot run here: {why}; or use providers=['CPUExecutionProvider']")
    return "cpu" if why else "cuda"


def _default_precision(manifest: Manifest, name: str, device: str) -> str:
    """fp16 graphs on a GPU where the export made one, fp32 on the CPU."""
    return "fp16" if device == "cuda" and "fp16" in manifest.components[name]["onnx"] else "fp32"


def open_cpu_runner(root: Path, manifest: Manifest, name: str, precision: str, providers: list[str] | None = None,
                    threads: int | None = None) -> Runner:
    """ONNX Runtime on the CPU: the attention-fused graph where the export wrote one (``Manifest.cpu_onnx_path``),
    else, or if this ONNX Runtime cannot load it, the portable graph (a WARNING says so)."""
    from t2vrt.engines.onnxruntime import OrtRunner

    spec, providers = manifest.spec(name), providers or ["CPUExecutionProvider"]
    path = manifest.cpu_onnx_path(root, name, precision)
    portable = manifest.onnx_path(root, name, precision)
    if path != portable:
        try:
            runner = OrtRunner(path, spec, providers=providers, threads=threads)
            log.info("%s: the CPU-fused graph %s (ONNX Runtime's attention fusion)", name, path.name)
            return runner
        except Exception as e:  # e.g. an ONNX Runtime without the fused operators' kernels
            log.warning("%s: the CPU-fused graph does not load here (%s); running the portable graph", name,
                        str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
    return OrtRunner(portable, spec, providers=providers, threads=threads)


def open_runner(root: Path, manifest: Manifest, name: str, backend: str, precision: str | None = None,
                providers: list[str] | None = None, threads: int | None = None, cuda_graphs: bool = False) -> Runner:
    """A Runner for component ``name`` on a resolved backend. ``precision`` None: fp32 ONNX for onnxruntime on the
    CPU, fp16 on CUDA where exported; the engine built for this GPU (fp16 first) for tensorrt."""
    spec = manifest.spec(name)
    if backend == "onnxruntime":
        device = ort_device(providers)
        precision = precision or _default_precision(manifest, name, device)
        if device == "cuda":
            from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner

            return OrtBoundRunner(manifest.onnx_path(root, name, precision), spec, "cuda", cuda_graphs=cuda_graphs)
        return open_cpu_runner(root, manifest, name, precision, providers, threads)
    if backend == "tensorrt":
        from t2vrt.engines.tensorrt.records import find_engines
        from t2vrt.engines.tensorrt.runner import TrtRunner

        records, why = find_engines(manifest.engines, name, precision, root=str(root))
        if not records:
            raise EngineError(f"{name}: no TensorRT engine can run here: {why}")
        if len(records) > 1:  # one plan per size bucket: the plan that holds each call is opened for it
            from t2vrt.engines.tensorrt.plans import PlanSetRunner

            return PlanSetRunner(root, spec, records, cuda_graphs=cuda_graphs)
        return TrtRunner(Path(root) / records[0]["path"], spec, records[0], cuda_graphs=cuda_graphs, root=str(root))
    raise EngineError(f"backend {backend!r} cannot run {name} here; choose onnxruntime or tensorrt")
