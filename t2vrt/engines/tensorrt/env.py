"""The TensorRT installed and the GPU visible here: the flavour import, a logger that keeps messages, the GPU's
compute capability.

Two flavours, one API: ``tensorrt`` (TensorRT >= 10.12, builds and runs on the GPU it targets) and
``tensorrt_rtx`` (TensorRT for RTX: builds on any machine, CPU included, for the compute capabilities named,
and compiles its kernels for the GPU at load time).
"""

from __future__ import annotations

import logging
from collections import deque

from t2vrt.errors import EngineError

log = logging.getLogger(__name__)
FLAVOURS = ("auto", "tensorrt", "tensorrt-rtx")
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
MIN_TENSORRT = (10, 12)
INSTALL_HINT = ("pip install 't2vrt[tensorrt-rtx]' (RTX GPUs; builds without a GPU) or 't2vrt[tensorrt]' "
                "(TensorRT >= 10.12)")


def try_import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU (the runner's buffers are torch CUDA tensors)."""
    torch = try_import("torch")
    return bool(torch is not None and torch.cuda.is_available())


def import_tensorrt(flavour: str = "auto"):
    """The TensorRT module of ``flavour`` and that flavour's name; EngineError naming the extra if missing.

    ``auto`` takes the one installed; with both, ``tensorrt`` where a GPU is visible, else ``tensorrt-rtx``."""
    if flavour not in FLAVOURS:
        raise EngineError(f"unknown TensorRT flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    if flavour == "auto":
        found = {f: m for f, m in ((f, try_import(MODULES[f])) for f in ("tensorrt", "tensorrt-rtx")) if m is not None}
        if not found:
            raise EngineError(f"TensorRT is not installed; {INSTALL_HINT}")
        flavour = "tensorrt" if "tensorrt" in found and (len(found) == 1 or cuda_available()) else "tensorrt-rtx"
        return found[flavour], flavour
    trt = try_import(MODULES[flavour])
    if trt is None:
        raise EngineError(f"{MODULES[flavour]} is not installed; pip install 't2vrt[{flavour}]'")
    if flavour == "tensorrt" and tuple(int(x) for x in trt.__version__.split(".")[:2]) < MIN_TENSORRT:
        raise EngineError(f"TensorRT {trt.__version__} is too old; t2vrt needs >= 10.12: pip install -U "
                          "'t2vrt[tensorrt]'")
    return trt, flavour


KEEP_MESSAGES = 200  # a runner lives as long as a service: its logger keeps only the latest messages


def make_logger(trt, level: str = "WARNING", keep: int = KEEP_MESSAGES):
    """A trt.ILogger that forwards to ``logging`` and keeps the latest ``keep`` (severity, message) pairs in
    ``.messages`` (for the one-line errors)."""
    sev = trt.ILogger.Severity
    py_level = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING,
                sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG}
    threshold = getattr(sev, level)

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: deque[tuple[str, str]] = deque(maxlen=keep)

        def log(self, severity, msg):
            if severity <= threshold:
                self.messages.append((severity.name, msg))
                log.log(py_level.get(severity, logging.DEBUG), "TensorRT: %s", msg)

    return Logger()


def gpu_compute_capability() -> str | None:
    """``"sm89"`` for the visible GPU (via torch), or None without one."""
    if not cuda_available():
        return None
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"sm{major}{minor}"


def gpu_name() -> str | None:
    """The visible GPU's name (e.g. "NVIDIA H100 80GB HBM3"), or None without one."""
    if not cuda_available():
        return None
    import torch

    return torch.cuda.get_device_name()
