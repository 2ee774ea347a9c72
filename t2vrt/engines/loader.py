"""Choose a backend (``auto`` says which and why) and open a component's runner from an engine directory."""

from __future__ import annotations

import logging
from pathlib import Path

from t2vrt.engines.backends import AUTO, Backend, LoadOptions, auto_order, get_backend
from t2vrt.engines.base import Runner
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)


def resolve(backend: str | Backend, manifest: Manifest | None, options: LoadOptions | None = None) -> Backend:
    """The Backend to run ``manifest``'s directory: the one named, or for ``auto`` the first of ``auto_order()``
    that can run it here (TensorRT engines built for this GPU, else ONNX Runtime on CUDA or the CPU); the choice
    and the reasons the others were passed over are logged in one INFO line."""
    if isinstance(backend, Backend):
        return backend
    if backend != AUTO:
        return get_backend(backend)
    skipped = []
    for candidate in auto_order():
        why = candidate.unusable(manifest, options)
        if not why:
            passed = "; ".join(f"{name} not used: {reason}" for name, reason in skipped)
            options = options or LoadOptions()
            line = candidate.explain(options) + (f" ({passed})" if passed else "")
            if _machine_has_gpu():
                # a GPU is there and the choice cannot use it (CPU speed): said where a GPU user sees it (stderr)
                log.log(logging.WARNING if candidate.gpu_unused(options) else logging.INFO, "backend: %s", line)
            else:  # the CPU is no news there: why not CUDA or TensorRT only with -v
                log.info("backend: %s", line.split(";")[0].split(" (")[0])
                log.debug("backend: %s", line)
            return candidate
        skipped.append((candidate.name, why))
    raise EngineError("no backend can run this engine directory here: " + "; ".join(f"{n}: {w}" for n, w in skipped))


def _machine_has_gpu() -> bool:
    """An NVIDIA GPU is visible to torch or its driver is loaded (a CPU-only torch on a GPU machine counts)."""
    from t2vrt.engines.tensorrt.env import cuda_available

    return cuda_available() or Path("/dev/nvidiactl").exists()


def resolve_backend(backend: str, manifest: Manifest | None) -> str:
    """The name of the backend ``resolve`` picks."""
    return resolve(backend, manifest).name


def open_runner(root: Path, manifest: Manifest, name: str, backend: str | Backend, precision: str | None = None,
                providers: list[str] | None = None, threads: int | None = None, cuda_graphs: bool = False,
                stream=None) -> Runner:
    """A Runner for component ``name`` on a resolved backend (a Backend or its name). ``precision`` None: the
    backend's default (fp32 ONNX on the CPU, fp16 on CUDA where exported; the best engine built for this GPU).
    GPU runners run on ``stream`` (a pipeline's, ``Backend.stream``; None: one of their own)."""
    impl = resolve(backend, manifest)
    options = LoadOptions(backend=impl.name, precision=precision, providers=providers, threads=threads)
    on_gpu = {"stream": stream} if stream is not None else {}  # backends without a GPU take no stream
    return impl.open(Path(root), manifest, name, options, cuda_graphs=cuda_graphs, **on_gpu)
