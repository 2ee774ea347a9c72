"""The onnxruntime backend: the CPU execution provider everywhere, the CUDA one where onnxruntime-gpu and a GPU are."""

from __future__ import annotations

import logging
from pathlib import Path

from t2vrt.engines.backends import Backend, LoadOptions
from t2vrt.engines.base import Runner
from t2vrt.engines.onnxruntime import check_providers
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)
CPU_EP = "CPUExecutionProvider"


def ort_device(providers) -> str:
    """Where the onnxruntime backend runs: "cuda" when asked for (CUDAExecutionProvider first) or, by default, when
    onnxruntime-gpu and a CUDA GPU are there; else "cpu". Asking for CUDA where it cannot run is a one-line error."""
    from t2vrt.engines import onnxruntime_cuda

    if providers and providers[0] != onnxruntime_cuda.CUDA_EP:
        return "cpu"
    why = onnxruntime_cuda.ort_cuda_unusable()
    if providers and why:
        raise EngineError(f"{onnxruntime_cuda.CUDA_EP} was asked for but cannot run here: {why}; "
                          f"or use providers=['{CPU_EP}']")
    return "cpu" if why else "cuda"


def default_precision(manifest: Manifest, name: str, device: str) -> str:
    """fp16 graphs on a GPU where the export made one, fp32 on the CPU."""
    return "fp16" if device == "cuda" and "fp16" in manifest.components[name]["onnx"] else "fp32"


def open_cpu_runner(root: Path, manifest: Manifest, name: str, precision: str, providers=None,
                    threads: int | None = None) -> Runner:
    """ONNX Runtime on the CPU: the attention-fused graph where the export wrote one (``Manifest.cpu_onnx_path``),
    else, or if this ONNX Runtime cannot load it, the portable graph (a WARNING says so)."""
    from t2vrt.engines.onnxruntime import OrtRunner

    spec, providers = manifest.spec(name), list(providers or [CPU_EP])
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


class OnnxRuntime(Backend):
    """The exported ONNX graphs on ONNX Runtime; the fallback of ``auto`` (it runs wherever ONNX Runtime does).

    ``InferenceSession.run`` is thread-safe, so one runner serves concurrent calls (``shares_runners``)."""

    name = "onnxruntime"
    shares_runners = True

    def explain(self, options: LoadOptions) -> str:
        from t2vrt.engines import onnxruntime_cuda

        no_cuda = onnxruntime_cuda.ort_cuda_unusable()
        return f"onnxruntime on CPU; CUDA not used: {no_cuda}" if no_cuda else "onnxruntime on CUDA"

    def check_options(self, options: LoadOptions) -> None:
        if options.precision == "bf16":
            raise EngineError("ONNX Runtime has no bf16 kernels for these operators on x86: bf16 runs on the openvino "
                              "backend (--backend openvino, pip install 't2vrt[openvino]'); or use --precision fp32")
        check_providers(options.providers)

    def stream(self, options: LoadOptions):
        if ort_device(options.providers) != "cuda":
            return None
        from t2vrt.engines.streams import CudaStream

        return CudaStream()

    def gpu_unused(self, options: LoadOptions) -> bool:
        from t2vrt.engines import onnxruntime_cuda
        from t2vrt.engines.tensorrt.env import cuda_available

        return bool(onnxruntime_cuda.ort_cuda_unusable()) and cuda_available()

    def open(self, root: Path, manifest: Manifest, name: str, options: LoadOptions,
             cuda_graphs: bool = False, stream=None) -> Runner:
        """precision None: fp32 ONNX on the CPU, fp16 on CUDA where exported; on CUDA it runs on ``stream``."""
        device = ort_device(options.providers)
        precision = options.precision or default_precision(manifest, name, device)
        if device == "cuda":
            from t2vrt.engines import onnxruntime_cuda

            return onnxruntime_cuda.OrtBoundRunner(manifest.onnx_path(root, name, precision), manifest.spec(name),
                                                   "cuda", cuda_graphs=cuda_graphs, stream=stream)
        return open_cpu_runner(root, manifest, name, precision, options.providers, options.threads)
