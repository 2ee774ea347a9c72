"""What can run here: one Target per backend the selftest knows, available or with the reason and install command.

ONNX Runtime on the CPU is always there (a runtime dependency); the rest are found by importing their packages
and asking for a GPU, never by assuming one. Without a GPU, TensorRT-RTX (which builds on any machine for the
compute capabilities named) gets a build-only pass for sm89.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from t2vrt.manifest import Manifest

BUILD_ONLY_TARGET = "sm89"  # an RTX 40xx: what the build-only pass compiles for without a GPU
TRT_INSTALL = "pip install 't2vrt[tensorrt]' (data-center GPUs) or 't2vrt[tensorrt-rtx]' (RTX GPUs)"


@dataclass(frozen=True)
class Target:
    """One backend as the selftest runs it. ``mode``: "run" (every check) or "build" (TensorRT-RTX without a GPU:
    the engines are built, nothing runs). ``reason`` non-empty: unavailable here, ``install`` says how to fix it."""

    name: str
    backend: str  # the runtime's backend name (t2vrt.engines.loader.open_runner)
    precisions: tuple[str, ...] = ()
    providers: tuple[str, ...] | None = None
    mode: str = "run"
    gpu: bool = False
    cuda_graphs: bool = False
    engines: bool = False  # it runs engines built for this machine: a build step first, and profiles to switch
    flavour: str = ""
    reason: str = ""
    install: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return not self.reason


def exported_precisions(manifest: Manifest, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The precisions of ``wanted`` that every text-to-video component was exported in."""
    from t2vrt.components import TEXT_TO_VIDEO

    names = [c for c in TEXT_TO_VIDEO if c in manifest.components]
    return tuple(p for p in wanted if all(p in manifest.components[c]["onnx"] for c in names))


def _ort_cpu(manifest: Manifest) -> Target:
    return Target("onnxruntime-cpu", "onnxruntime", exported_precisions(manifest, ("fp32", "fp16")),
                  providers=("CPUExecutionProvider",))


def _ort_cuda(manifest: Manifest) -> Target:
    from t2vrt.engines.onnxruntime_cuda import GPU_HINT, ort_cuda_unusable

    why = ort_cuda_unusable()
    return Target("onnxruntime-cuda", "onnxruntime", exported_precisions(manifest, ("fp16", "fp32")),
                  providers=("CUDAExecutionProvider",), gpu=True, cuda_graphs=True, reason=why,
                  install=GPU_HINT if why else "")


def no_nvidia_driver() -> bool:
    """True where Linux shows no NVIDIA driver (no /proc/driver/nvidia, no /dev/nvidia0): no CUDA GPU, known
    without importing torch (seconds, and not needed on a CPU machine). False where unsure (other systems)."""
    import os
    import sys

    return sys.platform.startswith("linux") and not (os.path.exists("/proc/driver/nvidia/version")
                                                     or os.path.exists("/dev/nvidia0"))


def _tensorrt(manifest: Manifest) -> Target:
    """TensorRT (or TensorRT-RTX) on this GPU; without a GPU, a TensorRT-RTX build-only pass for sm89."""
    from t2vrt.engines.tensorrt.env import cuda_available, import_tensorrt
    from t2vrt.errors import EngineError

    precisions = exported_precisions(manifest, ("fp16",)) or exported_precisions(manifest, ("fp32",))
    gpu = not no_nvidia_driver() and cuda_available()
    try:
        trt, flavour = import_tensorrt("auto" if gpu else "tensorrt-rtx")
    except EngineError as e:
        return Target("tensorrt", "tensorrt", precisions, engines=True, reason=str(e).split(";")[0],
                      install=TRT_INSTALL)
    version = {"version": trt.__version__}
    if gpu:
        return Target(flavour, "tensorrt", precisions, engines=True, mode="run", gpu=True, cuda_graphs=True,
                      flavour=flavour, notes=version)
    return Target(f"{flavour} (build only)", "tensorrt", precisions, engines=True, mode="build", flavour=flavour,
                  notes={**version, "compute_capability": BUILD_ONLY_TARGET})


def _other(manifest: Manifest, name: str) -> Target:
    """A backend of the registry the selftest has no special knowledge of (OpenVINO, and any added later), at every
    precision its ``check_options`` accepts here; unavailable, with the first refusal as the reason, where it
    accepts none. (``unusable`` is not asked: it answers whether ``auto`` should prefer the backend, not whether it
    runs.)"""
    from t2vrt.engines.backends import LoadOptions, get_backend

    try:
        backend = get_backend(name)
    except Exception as e:  # its module does not import: the package missing or broken
        return Target(name, name, reason=f"{type(e).__name__}: {str(e)[:200]}", install=f"pip install 't2vrt[{name}]'")
    precisions, refusals = [], []
    for p in _precisions():
        try:
            backend.check_options(LoadOptions(backend=name, precision=p))
            precisions.append(p)
        except Exception as e:  # its one-line refusal: this precision cannot run here
            refusals.append(str(e))
    if not precisions:
        return Target(name, name, reason=refusals[0] if refusals else "no precision runs here",
                      install=f"pip install 't2vrt[{name}]'")
    return Target(name, name, tuple(precisions), notes={"refused": refusals} if refusals else {})


def _precisions() -> tuple[str, ...]:
    from t2vrt.engines import backends

    return tuple(getattr(backends, "PRECISIONS", ("fp32", "fp16")))


# Registry names the selftest splits into several targets: where each runs (ONNX Runtime: CPU and CUDA) or what it
# can do here (TensorRT: run on this GPU, or build for sm89 without one).
KNOWN = {"onnxruntime": (_ort_cpu, _ort_cuda), "tensorrt": (_tensorrt,)}
REFERENCE = "onnxruntime"  # the backend whose CPU fp32 run every other is compared with; listed first


def known_names() -> tuple[str, ...]:
    """The target names ``--only`` may name (by prefix): ONNX Runtime's two, TensorRT's two, the other backends."""
    from t2vrt.engines.backends import backend_names

    split = {"onnxruntime": ("onnxruntime-cpu", "onnxruntime-cuda"), "tensorrt": ("tensorrt", "tensorrt-rtx")}
    return tuple(t for n in backend_names(auto=False) for t in split.get(n, (n,)))


def check_only(only: tuple[str, ...]) -> None:
    """InputError for an ``--only`` name that is the start of no target's name."""
    from t2vrt.errors import InputError

    known = known_names()
    bad = [n for n in only if not any(k.startswith(n) for k in known)]
    if bad:
        raise InputError(f"--only {','.join(bad)}: no such backend; choose from {', '.join(known)}")


def detect(manifest: Manifest, only: tuple[str, ...] = ()) -> list[Target]:
    """Every backend of the registry (t2vrt.engines.backends), available or not, ONNX Runtime CPU first (it holds
    the reference). ``only``: keep the targets whose name starts with one of these (the reference is computed
    either way: ONNX Runtime CPU on the portable fp32 graphs)."""
    from t2vrt.engines.backends import backend_names

    names = sorted(backend_names(auto=False), key=lambda n: n != REFERENCE)
    found = [make(manifest) for n in names for make in KNOWN.get(n, (lambda m, n=n: _other(m, n),))]
    if only:
        found = [t for t in found if t.name.startswith(only)]
    return found
