"""CUDA graphs for the TensorRT runner: one execution context per captured input shape, a bounded cache of them.

Why a context per shape: a captured graph replays the kernels of the context's shapes, addresses and profile at
capture time, and TensorRT's ``setOptimizationProfileAsync`` (NvInferRuntime.h) defers "layer resource updates" to
the next ``enqueueV3``; one context reshaped or switched between captures would replay a graph whose context has
moved on. Each context here keeps its shapes, profile and buffers for its life and runs ``enqueueV3`` once (warm-up,
resource updates) before capture, as TensorRT's demo/Diffusion does; all share the runner's scratch memory.
TensorRT-RTX engines must be built with ``REQUIRE_USER_ALLOCATION`` for capture (tensorrt/build.py sets it).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from t2vrt.components import build_command
from t2vrt.errors import EngineError

log = logging.getLogger(__name__)
MAX_GRAPHS = 4  # captured shapes kept per runner; past it the least recently used is dropped (and its context)


class GraphCache:
    """(profile, input shapes) -> (context, graph, static inputs, outputs) for one TrtRunner, least recent first."""

    def __init__(self, runner, limit: int = MAX_GRAPHS):
        self.runner, self.limit = runner, limit
        self.entries: OrderedDict[tuple, tuple] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key) -> bool:
        return key in self.entries

    def run(self, profile: int, inputs: dict) -> dict:
        """Replay the graph of these shapes (captured on first use) on copies of ``inputs``; outputs are clones."""
        key = (profile,) + tuple((n, tuple(a.shape)) for n, a in inputs.items())
        if key not in self.entries:
            self.entries[key] = self._capture(profile, inputs)
            while len(self.entries) > self.limit:
                old, _ = self.entries.popitem(last=False)
                log.debug("%s: dropped the CUDA graph of %s (%d kept)", self.runner.spec.name, old, self.limit)
        self.entries.move_to_end(key)
        _, graph, static, outputs = self.entries[key]
        for name, a in inputs.items():
            static[name].copy_(a)  # on the runner's stream, where the graph replays
        graph.replay()
        return {n: o.clone() for n, o in outputs.items()}  # the next replay overwrites the graph's buffers

    def _capture(self, profile: int, inputs: dict) -> tuple:
        r = self.runner
        context = r.new_context(profile)
        if profile != 0:
            r.select_profile(context, profile)
        static = {n: a.clone() for n, a in inputs.items()}
        outputs = r.bind(context, static)
        r.enqueue(context)  # applies the profile's resource updates and warms up before capture
        capturable = getattr(context, "is_stream_capturable", None)
        if capturable is not None and not capturable(r.stream.handle):
            raise EngineError(f"{r.spec.name}: TensorRT cannot capture this engine in a CUDA graph (an engine of "
                              f"TensorRT-RTX needs REQUIRE_USER_ALLOCATION); rebuild it with `{build_command(r.root)}` "
                              "or run without CUDA graphs")
        graph = r.stream.capture(lambda: r.enqueue(context))
        log.debug("%s: captured a CUDA graph for profile %d, shapes %s", r.spec.name, profile,
                  {n: tuple(a.shape) for n, a in inputs.items()})
        return context, graph, static, outputs

    def clear(self) -> None:
        self.entries.clear()
