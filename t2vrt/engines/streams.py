"""The one CUDA stream a pipeline owns: its GPU runners enqueue on it and its own tensor math runs on it.

Why one non-default stream: TensorRT's ``enqueueV3`` documentation (NvInferRuntime.h) warns that the legacy default
stream adds device-wide synchronizations (and TensorRT logs a warning on every such call); ONNX Runtime's CUDA
provider runs on the stream given as ``user_compute_stream``. With TensorRT, ONNX Runtime and torch's own kernels
ordered on one stream, nothing between them needs a host synchronization: the host waits once per denoising step, for
the NaN guard's one scalar (runtime/guard.py).

Tests stand in for ``CudaStream`` with an object of the same members (``device``, ``handle``, ``active``,
``serving``, ``synchronize``, ``capture``, ``empty_cache``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable


class CudaStream:
    """A ``torch.cuda.Stream`` of its own (never the legacy default stream) and the calls runners make on it."""

    def __init__(self, torch: Any = None, device: Any = "cuda"):
        if torch is None:
            import torch
        self.torch = torch
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(device=self.device)

    @property
    def handle(self) -> int:
        """The ``cudaStream_t`` as an integer, what TensorRT's ``execute_async_v3`` and ONNX Runtime take."""
        return self.stream.cuda_stream

    def active(self):
        """Make this stream torch's current one: tensors allocated and kernels queued inside are ordered on it."""
        return self.torch.cuda.stream(self.stream)

    @contextlib.contextmanager
    def serving(self):
        """A runner's call on this stream for a caller on torch's current stream: where that is another stream (a
        runner used outside a pipeline), this stream first waits for the caller's queued work and the caller's later
        work waits for this call's (device-side waits, no host synchronization); inside a pipeline, nothing to do."""
        caller = self.torch.cuda.current_stream(self.device)
        if caller == self.stream:
            yield
            return
        self.stream.wait_stream(caller)
        with self.torch.cuda.stream(self.stream):
            yield
        caller.wait_stream(self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[], None]) -> Any:
        """A CUDA graph of what ``enqueue`` queues on this stream (``replay()`` runs it again)."""
        graph = self.torch.cuda.CUDAGraph()
        with self.torch.cuda.graph(graph, stream=self.stream):
            enqueue()
        return graph

    def empty_cache(self) -> None:
        self.torch.cuda.empty_cache()


def on_stream(stream: Any):
    """``stream.active()``, or nothing to enter where there is no stream (runners on the CPU)."""
    return stream.active() if stream is not None else contextlib.nullcontext()
