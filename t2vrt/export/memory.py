"""Give freed memory back to the system between components of a large export."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

log = logging.getLogger(__name__)


def release_memory() -> None:
    """Collect garbage, then ask glibc to return freed heap pages (else a freed 5 GB module can stay in RSS)."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        log.debug("malloc_trim is not available")


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux and macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
