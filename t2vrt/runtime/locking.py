"""Thread safety of a Pipeline: one lock over its runner table, and whole calls serialized where runners are shared
state.

- a backend whose runners may be shared (``Backend.shares_runners``: onnxruntime), runners kept (the default): calls
  run concurrently. ``InferenceSession.run`` is thread-safe, and the
  runner table is only changed under ``Pipeline._lock`` (two threads never open the same component twice).
- low_memory=True: each stage opens and closes runners, so one call would close the runner another is using;
  calls are serialized (a second thread waits for the first call to end).
- other backends (tensorrt: an execution context and its bound buffers serve one call at a time): calls are
  serialized.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from t2vrt.engines.streams import on_stream


def serialized(call):
    """Decorate ``__call__`` and the public stage methods: hold the pipeline's call lock where concurrent calls would
    share state, and make the pipeline's CUDA stream (if it has one) torch's current stream for the call, so the
    pipeline's own tensor math is ordered with its runners' work on that one stream (engines/streams.py)."""

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        shared = self.low_memory or not self.backend_impl.shares_runners
        guard = self._call_lock if shared else contextlib.nullcontext()
        with guard, on_stream(getattr(self, "stream", None)):
            return call(self, *args, **kwargs)

    return wrapper


def new_locks() -> tuple[threading.RLock, threading.RLock]:
    """(runner-table lock, call lock); both re-entrant, as a call opens runners under the call lock."""
    return threading.RLock(), threading.RLock()
