"""One Runner protocol for every backend, with the I/O checks done once at the boundary."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from t2vrt.components import ComponentSpec
from t2vrt.errors import InputError

Array = Any  # numpy.ndarray or torch.Tensor


class Runner(Protocol):
    """A loaded component. ``infer`` takes and returns arrays by the names of the component's spec.

    ``close()`` releases everything the runner holds, so that the memory is free for the next component (the
    pipeline's low-memory mode counts on it); after it, ``infer`` raises EngineError. What it frees, per backend:
    - onnxruntime: the InferenceSession, with its weights (mapped or copied), its allocator arena (CPU) or device
      memory (CUDA EP) and its thread pools.
    - tensorrt: the execution context, the engine and its device buffers, returned to the driver
      (``torch.cuda.empty_cache()`` for buffers from torch's caching allocator).
    A runner that cannot give its memory back has no ``close``; low-memory mode warns about it (see ``can_release``).
    A runner whose outputs are torch tensors on a device (the GPU runners) says which in ``output_device``; the
    pipeline puts the latents there before its loop.
    """

    spec: ComponentSpec
    backend: str

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]: ...

    def close(self) -> None: ...


def can_release(runner: object) -> bool:
    """Whether ``runner`` can free its memory before the process ends (it has a ``close``)."""
    return callable(getattr(runner, "close", None))


def dtype_name(a: Array) -> str:
    d = a.dtype
    return str(d).removeprefix("torch.")


def check_feed(spec: ComponentSpec, feed: Mapping[str, Array]) -> None:
    """Names, dtypes and ranks of a feed against the component's spec; raises InputError naming what differs."""
    expected = {t.name: t for t in spec.inputs}
    if set(feed) != set(expected):
        raise InputError(f"{spec.name}: inputs {sorted(feed)} given; expected {sorted(expected)}")
    for name, t in expected.items():
        a = feed[name]
        if dtype_name(a) != t.dtype:
            raise InputError(f"{spec.name}: input {name!r} has dtype {dtype_name(a)}; expected {t.dtype}")
        if len(a.shape) != len(t.dims):
            raise InputError(f"{spec.name}: input {name!r} has shape {tuple(a.shape)}; expected rank {len(t.dims)} "
                             f"{t.dims}")
        for axis, (n, d) in enumerate(zip(a.shape, t.dims)):
            if isinstance(d, int) and n != d:
                raise InputError(f"{spec.name}: input {name!r} has {n} on axis {axis}; expected {d}")
