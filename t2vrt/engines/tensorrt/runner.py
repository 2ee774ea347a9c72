"""TensorRT runner: one deserialized engine, one execution context, torch CUDA tensors bound by address.

Per call: check the feed against the spec and the built profile (before any TensorRT call), set each input's
shape, size the outputs from the context's shapes, bind every tensor's address and enqueue on the current torch
stream. With ``cuda_graphs=True`` each input shape is captured once into a CUDA graph and replayed after.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from t2vrt.components import SYMBOL_FIELDS, ComponentSpec, build_command, check_range, widen
from t2vrt.engines.base import Array, check_feed
from t2vrt.engines.buckets import feed_symbols, record_profiles, record_sizes, select_profile, user_sizes
from t2vrt.engines.tensorrt.env import import_tensorrt, make_logger
from t2vrt.engines.tensorrt.records import check_profile, check_target
from t2vrt.errors import EngineError, InputError

log = logging.getLogger(__name__)


def torch_cuda():
    """torch, when it is installed with CUDA and sees a GPU; else a one-line EngineError."""
    try:
        import torch
    except ImportError:
        raise EngineError("the tensorrt backend needs PyTorch with CUDA for its GPU buffers: pip install "
                          "torch") from None
    if not torch.cuda.is_available():
        raise EngineError(f"the tensorrt backend needs a CUDA GPU and torch {torch.__version__} sees none; "
                          "use backend='onnxruntime'")
    return torch


def profile_for_feed(spec: ComponentSpec, record: Mapping, feed: Mapping[str, Array], root: str = "DIR") -> int:
    """The index of ``record``'s profile (an engine's, or ``merged_record`` of one plan per bucket) that holds the
    feed's sizes; InputError before any TensorRT call if none does.

    The message names the size bucket that is missing (engines built per bucket), or the symbol's size, the
    profile field it stands for in user units (pixels, frames, prompts) and the build command whose range holds it."""
    sizes = feed_symbols(spec, {n: tuple(a.shape) for n, a in feed.items()})
    profiles = record_profiles(record)
    index = select_profile([p["ranges"] for p in profiles], sizes)
    if index is not None:
        return index
    if record_sizes(record):
        check_profile(record, user_sizes(profiles[0], sizes), root)  # the bucket line
    p = profiles[0]
    for sym, n in sizes.items():
        if sym not in p["ranges"]:
            continue
        rng, field = p["ranges"][sym], SYMBOL_FIELDS.get(sym, sym)
        user = p["profile"].get(field)
        value = n * user[2] // rng[2] if user else n  # latent -> pixels, 2b -> b
        note = f" ({field} {value} px)" if field in ("height", "width") and user else f" ({field})"
        command = build_command(root, **({field: widen(tuple(user), value)} if user else {}))
        check_range(f"{spec.name}: {sym}", n, rng, "this engine's range", command, note)
    raise InputError(f"{spec.name}: sizes {sizes} are in no profile of this engine "
                     f"({[p['ranges'] for p in profiles]}); rebuild with `{build_command(root)}` covering them")


class TrtRunner:
    """Runs one engine recorded in the manifest (``record``: its entry in ``manifest.engines``)."""

    backend = "tensorrt"
    root = "DIR"  # the engine directory, as error messages name it
    profile_index = 0  # the context's optimization profile (one per size bucket)

    def __init__(self, plan: str | Path, spec: ComponentSpec, record: Mapping, cuda_graphs: bool = False,
                 root: str = "DIR"):
        self.torch = torch_cuda()
        trt, flavour = import_tensorrt(record["flavour"])
        check_target(record, trt, flavour, root)
        self.spec, self.record, self.cuda_graphs, self.root = spec, record, cuda_graphs, root
        self.logger = make_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            errors = [m for s, m in self.logger.messages if "ERROR" in s]
            raise EngineError(f"{plan} could not be loaded ({errors[-1] if errors else 'no message'}); "
                              f"rebuild with `{build_command(root)}`")
        self.context = self.engine.create_execution_context()
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        expected = {t.name for t in spec.inputs + spec.outputs}
        if names != expected:
            raise EngineError(f"{plan} has tensors {sorted(names)}; the manifest says {sorted(expected)}: rebuild it")
        self.dtypes = {n: self._torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.graphs: dict[tuple, tuple] = {}

    def _torch_dtype(self, trt, dt):
        torch = self.torch
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT64: torch.int64,
                 trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
        return table[dt]

    def _check_shapes(self, feed: Mapping[str, Array]) -> int:
        """The optimization profile that holds the feed's sizes (InputError before any TensorRT call if none)."""
        return profile_for_feed(self.spec, self.record, feed, self.root)

    def _on_gpu(self, feed: Mapping[str, Array]) -> dict:
        torch = self.torch
        out = {}
        for t in self.spec.inputs:
            a = feed[t.name]
            a = a if isinstance(a, torch.Tensor) else torch.from_numpy(a)  # numpy in: copied once at the edge
            out[t.name] = a.to(device="cuda", dtype=self.dtypes[t.name]).contiguous()
        return out

    def _bind(self, inputs: dict) -> dict:
        """Set input shapes and addresses, allocate outputs at the context's shapes and bind them."""
        torch = self.torch
        for name, a in inputs.items():
            if not self.context.set_input_shape(name, tuple(a.shape)):
                raise EngineError(f"{self.spec.name}: TensorRT refused shape {tuple(a.shape)} for {name!r}")
            self.context.set_tensor_address(name, a.data_ptr())
        outputs = {}
        for t in self.spec.outputs:
            shape = tuple(self.context.get_tensor_shape(t.name))
            outputs[t.name] = torch.empty(shape, dtype=self.dtypes[t.name], device="cuda")
            self.context.set_tensor_address(t.name, outputs[t.name].data_ptr())
        return outputs

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.torch.cuda.current_stream().cuda_stream):
            errors = [m for s, m in self.logger.messages if "ERROR" in s]
            raise EngineError(f"{self.spec.name}: TensorRT execution failed ({errors[-1] if errors else 'no message'})")

    def _graph_for(self, inputs: dict) -> tuple:
        """Capture a CUDA graph for these input shapes (after one eager run, which also warms TensorRT up)."""
        torch = self.torch
        key = (self.profile_index,) + tuple((n, tuple(a.shape)) for n, a in inputs.items())
        if key not in self.graphs:
            static = {n: a.clone() for n, a in inputs.items()}
            outputs = self._bind(static)
            self._enqueue()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._enqueue()
            self.graphs[key] = (graph, static, outputs)
            log.debug("%s: captured a CUDA graph for %s", self.spec.name, key)
        return self.graphs[key]

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.context is None:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        index = self._check_shapes(feed)
        inputs = self._on_gpu(feed)
        if index != self.profile_index:
            stream = self.torch.cuda.current_stream().cuda_stream
            if not self.context.set_optimization_profile_async(index, stream):
                raise EngineError(f"{self.spec.name}: TensorRT refused optimization profile {index}")
            self.profile_index = index
        if not self.cuda_graphs:
            outputs = self._bind(inputs)
            self._enqueue()
            return outputs
        graph, static, outputs = self._graph_for(inputs)
        for name, a in inputs.items():
            static[name].copy_(a)
        graph.replay()
        return {n: o.clone() for n, o in outputs.items()}  # the graph's buffers are overwritten by the next replay

    def close(self) -> None:
        """Free the context (TensorRT's activation memory), the engine (weights) and the CUDA graphs' buffers, and
        hand torch's cached blocks back to the driver, where the next engine can allocate them."""
        self.graphs.clear()
        self.context = self.engine = self.runtime = None
        self.torch.cuda.empty_cache()
