"""TensorRT runner: one deserialized engine, torch CUDA tensors bound by address, enqueued on the pipeline's stream.

Per call: check the feed against the spec and the built profile (before any TensorRT call), set each input's
shape, size the outputs from the context's shapes, bind every tensor's address and enqueue on the stream the runner
was given (engines/streams.py; never the legacy default stream). With ``cuda_graphs=True`` each input shape gets an
execution context of its own, captured once into a CUDA graph and replayed after (graphs.py).

Every context is created with user-managed device memory and shares the runner's one scratch buffer, as TensorRT's
demo/Diffusion shares one buffer between its engines: contexts of one runner run one at a time on one stream.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from t2vrt.components import SYMBOL_FIELDS, ComponentSpec, build_command, check_range, widen
from t2vrt.engines.base import Array, check_feed
from t2vrt.engines.buckets import feed_symbols, record_profiles, record_sizes, select_profile, user_sizes
from t2vrt.engines.tensorrt.env import import_tensorrt, make_logger
from t2vrt.engines.tensorrt.graphs import GraphCache
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
    """Runs one engine recorded in the manifest (``record``: its entry in ``manifest.engines``) on ``stream``
    (a CudaStream; None: one of the runner's own)."""

    backend = "tensorrt"
    root = "DIR"  # the engine directory, as error messages name it
    profile_index = 0  # the eager context's optimization profile (one per size bucket)

    def __init__(self, plan: str | Path, spec: ComponentSpec, record: Mapping, cuda_graphs: bool = False,
                 root: str = "DIR", stream=None):
        self.torch = torch_cuda()
        trt, flavour = import_tensorrt(record["flavour"])
        check_target(record, trt, flavour, root)
        self.spec, self.record, self.cuda_graphs, self.root = spec, record, cuda_graphs, root
        if stream is None:
            from t2vrt.engines.streams import CudaStream

            stream = CudaStream(self.torch)
        self.stream, self.trt, self.output_device = stream, trt, stream.device  # where its outputs live (torch)
        self.logger = make_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise EngineError(f"{plan} could not be loaded ({self._last_error()}); "
                              f"rebuild with `{build_command(root)}`")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        expected = {t.name for t in spec.inputs + spec.outputs}
        if names != expected:
            raise EngineError(f"{plan} has tensors {sorted(names)}; the manifest says {sorted(expected)}: rebuild it")
        self.dtypes = {n: self._torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.scratch = None  # the user-managed device memory every context of this runner shares
        self.graphs = GraphCache(self)
        self.context = None if cuda_graphs else self.new_context(0)  # with graphs: one context per shape

    def _last_error(self) -> str:
        errors = [m for s, m in self.logger.messages if "ERROR" in s]
        return errors[-1] if errors else "no message"

    def new_context(self, profile: int):
        """An execution context on the shared scratch buffer, its memory sized for ``profile`` (all profiles with
        CUDA graphs, whose captured addresses must not move); a one-line EngineError where TensorRT returns None."""
        # demo/Diffusion's choice: user-managed memory in one shared buffer, sized for the selected profile (as
        # ON_PROFILE_CHANGE would), not STATIC's reservation of the largest profile's scratch per context
        strategy = self.trt.ExecutionContextAllocationStrategy.USER_MANAGED
        context = self.engine.create_execution_context(strategy)
        if context is None:  # NvInferRuntime.h: createExecutionContext returns nullptr when it fails (out of memory)
            raise EngineError(f"{self.spec.name}: TensorRT could not create an execution context "
                              f"({self._last_error()}); free GPU memory (low_memory=True, --low-memory) or use a "
                              "smaller size bucket")
        self.attach_scratch(context, profile)
        return context

    def attach_scratch(self, context, profile: int) -> None:
        """Point ``context`` at the shared scratch buffer, grown first if ``profile`` needs more than it holds."""
        engine = self.engine
        if self.cuda_graphs:
            need = engine.device_memory_size_v2
        else:
            need = engine.get_device_memory_size_for_profile_v2(profile)
        if self.scratch is None or self.scratch.numel() < need:
            if self.scratch is not None and self.cuda_graphs:
                self.graphs.clear()  # captured contexts point at the old buffer
            with self.stream.active():  # freed and reused in the stream's order
                self.scratch = self.torch.empty(max(int(need), 1), dtype=self.torch.uint8, device=self.stream.device)
        context.set_device_memory(self.scratch.data_ptr(), self.scratch.numel())

    def _torch_dtype(self, trt, dt):
        torch = self.torch
        table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64,
                 "INT32": torch.int32, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool,
                 "FP8": getattr(torch, "float8_e4m3fn", None)}
        name = getattr(dt, "name", str(dt).rpartition(".")[2])
        if table.get(name) is None:
            raise EngineError(f"{self.spec.name}: the engine has a {name} input or output, which t2vrt does not bind "
                              f"(it binds {', '.join(k for k, v in table.items() if v is not None)}); rebuild it from "
                              "t2vrt's own ONNX export")
        return table[name]

    def _check_shapes(self, feed: Mapping[str, Array]) -> int:
        """The optimization profile that holds the feed's sizes (InputError before any TensorRT call if none)."""
        return profile_for_feed(self.spec, self.record, feed, self.root)

    def _on_gpu(self, feed: Mapping[str, Array]) -> dict:
        torch = self.torch
        out = {}
        for t in self.spec.inputs:
            a = feed[t.name]
            a = a if isinstance(a, torch.Tensor) else torch.from_numpy(a)  # numpy in: copied once at the edge
            out[t.name] = a.to(device=self.stream.device, dtype=self.dtypes[t.name]).contiguous()
        return out

    def bind(self, context, inputs: dict) -> dict:
        """Set input shapes and addresses, allocate outputs at the context's shapes and bind them."""
        torch = self.torch
        for name, a in inputs.items():
            if not context.set_input_shape(name, tuple(a.shape)):
                raise EngineError(f"{self.spec.name}: TensorRT refused shape {tuple(a.shape)} for {name!r}")
            context.set_tensor_address(name, a.data_ptr())
        outputs = {}
        for t in self.spec.outputs:
            shape = tuple(context.get_tensor_shape(t.name))
            outputs[t.name] = torch.empty(shape, dtype=self.dtypes[t.name], device=self.stream.device)
            context.set_tensor_address(t.name, outputs[t.name].data_ptr())
        return outputs

    def enqueue(self, context) -> None:
        if not context.execute_async_v3(self.stream.handle):
            raise EngineError(f"{self.spec.name}: TensorRT execution failed ({self._last_error()})")

    def select_profile(self, context, index: int) -> None:
        """Switch ``context`` to profile ``index`` on the runner's stream (its memory resized first)."""
        self.attach_scratch(context, index)
        if not context.set_optimization_profile_async(index, self.stream.handle):
            raise EngineError(f"{self.spec.name}: TensorRT refused optimization profile {index}")

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.engine is None:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        index = self._check_shapes(feed)
        with self.stream.serving():  # inputs, outputs and the enqueue ordered on the one stream
            inputs = self._on_gpu(feed)
            if self.cuda_graphs:
                return self.graphs.run(index, inputs)
            if index != self.profile_index:
                self.select_profile(self.context, index)
                self.profile_index = index
            outputs = self.bind(self.context, inputs)
            self.enqueue(self.context)
            return outputs

    def close(self) -> None:
        """Wait for the work queued on the stream, then free the contexts (TensorRT's activation memory), the
        engine (weights), the graphs and the scratch buffer, and hand torch's cached blocks back to the driver."""
        if self.engine is not None:
            self.stream.synchronize()  # a per-bucket plan switch frees while the last call may still run
        self.graphs.clear()
        self.context = self.engine = self.runtime = self.scratch = None
        self.stream.empty_cache()
