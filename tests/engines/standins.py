"""Stand-ins for the CUDA stream and for TensorRT's engine and execution context, over CPU memory, so the runners'
GPU logic runs without a GPU. Each copies behaviour documented by the real API; where, is said at the member.

Sources: TensorRT's ``include/NvInferRuntime.h`` (IExecutionContext, ICudaEngine) and the docstrings of its Python
bindings (``python/src/infer/pyCore.cpp``, the same text ``help(tensorrt_rtx.IExecutionContext)`` prints); CUDA's
runtime API on graphs (a replay launches the work captured, with the parameters captured).
"""

from __future__ import annotations

import contextlib
import ctypes
import types

import numpy as np
import torch


class RecordingStream:
    """engines.streams.CudaStream's members on the CPU: counts host synchronizations, records captures."""

    def __init__(self, handle: int = 0x5EED):
        self.device, self.handle = torch.device("cpu"), handle
        self.syncs = 0
        self.entered = 0
        self.capturing: list | None = None  # the kernels queued while a capture is open

    @contextlib.contextmanager
    def active(self):
        self.entered += 1
        yield

    serving = active  # a caller on another stream would add device-side waits, which a CPU cannot show

    def synchronize(self) -> None:
        self.syncs += 1

    def capture(self, enqueue):
        """A graph of the kernels ``enqueue`` queues (CUDA stream capture: the work is recorded, not run)."""
        self.capturing = []
        try:
            enqueue()
            kernels = self.capturing
        finally:
            self.capturing = None
        return types.SimpleNamespace(replay=lambda: [k() for k in kernels])

    def empty_cache(self) -> None:
        pass


def cpu_view(address: int, shape: tuple) -> np.ndarray:
    """float32 array at ``address`` (CPU memory bound by address, as TensorRT reads device memory)."""
    n = int(np.prod(shape))
    return np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctypes.c_float)), (n,)).reshape(shape)


Strategy = types.SimpleNamespace(STATIC="STATIC", ON_PROFILE_CHANGE="ON_PROFILE_CHANGE", USER_MANAGED="USER_MANAGED")
FLOAT = types.SimpleNamespace(name="FLOAT")


class FakeContext:
    """IExecutionContext computing y = 2x + 1 at the bound addresses."""

    def __init__(self, engine, strategy):
        self.engine, self.strategy = engine, strategy
        self.profile, self.pending_update = 0, False
        self.shapes, self.addresses, self.memory = {}, {}, None
        self.streams: list[int] = []

    def set_device_memory(self, address, size):
        self.memory = (address, size)

    def set_optimization_profile_async(self, index, stream):
        # NvInferRuntime.h, setOptimizationProfileAsync: the switch "may also trigger layer resource updates on the
        # next call of enqueueV3()"
        self.streams.append(stream)
        self.profile, self.pending_update = index, True
        return True

    def set_input_shape(self, name, shape):
        lo, hi = self.engine.ranges[self.profile]
        if not lo <= shape[0] <= hi:  # setInputShape returns false for a shape outside the profile
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["x"]

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream):
        self.streams.append(stream)
        need = self.engine.get_device_memory_size_for_profile_v2(self.profile)
        if self.strategy == Strategy.USER_MANAGED and (self.memory is None or self.memory[1] < need):
            # pyCore.cpp set_device_memory: the memory "must be at least as large as" the engine's requirement;
            # a USER_MANAGED context without it cannot run
            return False
        kernel = self._kernel()
        if self.engine.stream.capturing is not None:
            if self.pending_update:  # the resource update is not captured work: capturing it is an error
                return False
            self.engine.stream.capturing.append(kernel)
        else:
            self.pending_update = False
            kernel()
        return True

    def _kernel(self):
        state = (self.profile, dict(self.shapes), dict(self.addresses))

        def run():
            # a graph replays the captured launches; the context they were captured from must still be as it was
            # (TensorRT developer guide, CUDA graphs: a change of shapes or profile needs a new capture)
            if (self.profile, self.shapes, self.addresses) != state or self.pending_update:
                raise AssertionError(f"a CUDA graph captured at {state[:2]} replayed after its context moved to "
                                     f"{(self.profile, self.shapes)}")
            x = cpu_view(state[2]["x"], state[1]["x"])
            cpu_view(state[2]["y"], state[1]["x"])[...] = 2 * x + 1
        return run


class FakeEngine:
    """ICudaEngine with two profiles over x's batch: [1, 2] and [3, 8], scratch sizes per profile."""

    num_io_tensors = 2

    def __init__(self, stream: RecordingStream, out_of_memory: bool = False):
        self.stream, self.out_of_memory = stream, out_of_memory
        self.ranges = [(1, 2), (3, 8)]
        self.memory = [1024, 4096]
        self.contexts: list[FakeContext] = []

    def get_tensor_name(self, i):
        return ("x", "y")[i]

    def get_tensor_dtype(self, name):
        return FLOAT

    @property
    def device_memory_size_v2(self):
        return max(self.memory)

    def get_device_memory_size_for_profile_v2(self, index):
        return self.memory[index]

    def create_execution_context(self, strategy=Strategy.STATIC):
        if self.out_of_memory:
            return None  # NvInferRuntime.h createExecutionContext: nullptr when the context cannot be created
        self.contexts.append(FakeContext(self, strategy))
        return self.contexts[-1]


def fake_tensorrt(engine: FakeEngine):
    """The parts of the tensorrt module the runner touches."""
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda data: engine)
    return types.SimpleNamespace(Runtime=lambda logger: runtime, ExecutionContextAllocationStrategy=Strategy,
                                 __version__="10.12.0")


TOY_RECORD = {"flavour": "tensorrt", "path": "toy.plan",
              "profiles": [{"profile": {"batch": [1, 1, 2]}, "ranges": {"b": [1, 1, 2]}},
                           {"profile": {"batch": [3, 4, 8]}, "ranges": {"b": [3, 4, 8]}}],
              "profile": {"batch": [1, 1, 2]}, "ranges": {"b": [1, 1, 2]}}
