"""What t2vrt asks of the machine it runs on: give freed memory back, resident memory, installed library versions.

Standard library only, so the runtime, the export and the benchmarks share it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import platform
import sys

log = logging.getLogger(__name__)
# The packages whose versions an engine directory and a benchmark record.
PACKAGES = ("t2vrt", "numpy", "torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu",
            "tokenizers", "tensorrt", "tensorrt-rtx")


THREADS_ENV = "T2VRT_THREADS"


def env_threads() -> int | None:
    """``$T2VRT_THREADS``: intra-op threads per session where the caller gives none; None when unset.

    For several t2vrt processes on one machine (batch workers, test workers) or a container whose CPU quota is below
    the cores ONNX Runtime counts: each session's pool otherwise takes a thread per core and spins while waiting, so
    two processes on two cores spent twice the CPU of one thread each (benchmarks/RESULTS.md, "Test suite time")."""
    from t2vrt.errors import InputError

    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{THREADS_ENV}={raw!r} must be a whole number of at least 1 (threads per session); unset "
                         "it for the backend's own choice")
    return int(raw)


def return_freed_heap() -> None:
    """Hand memory the C allocator keeps after a free back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    Torch tensors and ONNX Runtime's weights and arena chunks are mostly blocks under malloc's mmap threshold,
    which glibc keeps for reuse: closing the real-size UNet's session left 2.0 GB resident, 0.08 GB after the trim
    (benchmarks/RESULTS.md)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        log.debug("malloc_trim is not available")


def release_memory() -> None:
    """Collect garbage, then return the freed heap (else a freed 5 GB torch module can stay in RSS)."""
    gc.collect()
    return_freed_heap()


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux and macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def available_memory_bytes() -> int | None:
    """Memory the system can give without swapping (MemAvailable on Linux, psutil elsewhere); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def rss_bytes() -> int:
    """This process's resident set size now: /proc on Linux, psutil elsewhere (the `bench` extra)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        from t2vrt.errors import T2VError

        raise T2VError("measuring memory on this system needs psutil: pip install 't2vrt[bench]'") from None
    return psutil.Process().memory_info().rss


def library_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's and each installed package's version (packages not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
