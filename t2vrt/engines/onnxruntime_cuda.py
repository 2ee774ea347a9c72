"""ONNX Runtime with I/O binding on torch tensors: the CUDA execution provider as a GPU backend.

Inputs are bound by address (``bind_input`` with ``data_ptr()``) and outputs to buffers allocated beforehand at the
shapes the component's spec gives for the feed's sizes, so on a GPU the latents stay on the device for the whole
denoising loop; the runner returns torch tensors on the device of its inputs. The same code binds torch CPU tensors
to the CPU provider, which is how it is tested without a GPU.

CUDA graphs (``cuda_graphs=True``): ONNX Runtime's ``enable_cuda_graph`` replays a captured graph on the addresses it
was captured with. One session holds one graph per input shape, told apart by the run option ``gpu_graph_id``, each
with fixed input and output buffers (the feed is copied in, the outputs cloned out); at most ``MAX_GRAPHS`` shapes
are captured and later shapes run without a graph (logged). Where ONNX Runtime refuses capture on the dynamic-shape
graph, each shape gets a session with its dimensions fixed, holding its own weights (2.8 GB for the real UNet in
fp16; at most ``MAX_SHAPE_SESSIONS``). A denoising loop uses one UNet shape per request.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from t2vrt.components import ComponentSpec
from t2vrt.engines.base import Array, check_feed
from t2vrt.engines.buckets import feed_symbols
from t2vrt.engines.onnxruntime import INSTALL, import_onnxruntime, session_options  # noqa: F401 (re-exported)
from t2vrt.errors import EngineError

log = logging.getLogger(__name__)
CUDA_EP = "CUDAExecutionProvider"
MAX_GRAPHS = 4  # CUDA graphs of one session (gpu_graph_id 1..4)
MAX_SHAPE_SESSIONS = 2  # fixed-shape sessions where the dynamic one cannot capture: each holds the weights
GPU_HINT = "pip install 't2vrt[gpu]' (onnxruntime-gpu in place of onnxruntime; it must match your CUDA major version)"


BOTH_FIX = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 't2vrt[gpu]'"


def installed_distributions() -> list[str]:
    """Which of the distributions that provide the ``onnxruntime`` module are installed (importlib.metadata sees
    each one's own record even where they share, and overwrite, the module's files)."""
    from importlib import metadata

    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.distribution(name)
            found.append(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def shadowing() -> str:
    """One line when onnxruntime (CPU) and onnxruntime-gpu are installed together ("" otherwise): they share the
    ``onnxruntime`` module, and the CPU package's files hide the CUDA provider (ONNX Runtime's install notes)."""
    if installed_distributions() != ["onnxruntime", "onnxruntime-gpu"]:
        return ""
    return ("onnxruntime (CPU) and onnxruntime-gpu are both installed; they share the onnxruntime module and the CPU "
            f"package shadows onnxruntime-gpu's {CUDA_EP}: {BOTH_FIX}")


def ort_cuda_unusable() -> str:
    """Why ONNX Runtime cannot run on a CUDA GPU here ("" when it can)."""
    try:
        ort = import_onnxruntime()
    except EngineError as e:
        return str(e)
    if CUDA_EP not in ort.get_available_providers():
        return shadowing() or f"onnxruntime {ort.__version__} has no {CUDA_EP} ({GPU_HINT})"
    try:
        import torch
    except ImportError:
        return "torch is not installed (the CUDA backend binds torch CUDA tensors): pip install torch"
    if not torch.cuda.is_available():
        return f"no CUDA GPU is visible to torch {torch.__version__}"
    return ""


def cuda_options(device_id: int, graph: bool, stream: int | None = None) -> dict[str, str]:
    """CUDA provider options: heuristic cuDNN algorithm choice (exhaustive search costs minutes per new shape on the
    real UNet), the largest cuDNN workspace, copies on the compute stream, the arena grown by what is asked for (its
    default, kNextPowerOfTwo, can double an allocation), CUDA-graph capture when asked, and the compute stream:
    ``stream`` (the pipeline's, as ``user_compute_stream``), so ONNX Runtime runs in order with torch and TensorRT."""
    options = {"device_id": str(device_id), "cudnn_conv_algo_search": "HEURISTIC", "cudnn_conv_use_max_workspace": "1",
               "do_copy_in_default_stream": "1", "arena_extend_strategy": "kSameAsRequested",
               "enable_cuda_graph": "1" if graph else "0"}
    if stream is not None:
        options.update(has_user_compute_stream="1", user_compute_stream=str(stream))
    return options


def free_dimensions(spec: ComponentSpec, sizes: Mapping[str, int]) -> dict[str, int]:
    """The exported dynamic axes' names (ComponentSpec.dynamic_axes) fixed at ``sizes``: what a per-shape session
    gives ``add_free_dimension_override_by_name``, so ONNX Runtime folds the shape arithmetic into constants."""
    out: dict[str, int] = {}
    for t in spec.inputs + spec.outputs:
        for axis, name in t.dynamic_axes().items():
            d = t.dims[axis]
            out[name] = sizes[d] if isinstance(d, str) else sizes[d[0]] * d[1]
    return out


def run_options(graph_id: int | None):
    """No host synchronization at the end of a run (the pipeline's stream orders what follows; the
    ``disable_synchronize_execution_providers`` run option), and the CUDA graph to capture or replay
    (``gpu_graph_id``, onnxruntime_run_options_config_keys.h: -1 runs without a graph, 0 is reserved)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("disable_synchronize_execution_providers", "1")
    if graph_id is not None:
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
    return options


def _element_type(a: Any) -> np.dtype:
    return np.dtype(str(a.dtype).removeprefix("torch."))


def bind_and_run(session, inputs: Mapping[str, Any], outputs: Mapping[str, Any], binding=None, options=None):
    """Bind torch tensors by address (device from each tensor) and run; returns the binding for reuse."""
    if binding is None:
        binding = session.io_binding()
        for group, bind in ((inputs, binding.bind_input), (outputs, binding.bind_output)):
            for name, a in group.items():
                bind(name, a.device.type, a.device.index or 0, _element_type(a), list(a.shape), a.data_ptr())
    session.run_with_iobinding(binding, options)
    return binding


class OrtBoundRunner:
    """One ONNX graph on ONNX Runtime with every input and output bound to torch tensors on ``device``, run on
    ``stream`` (a CudaStream, engines/streams.py; None on CUDA: one of its own)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, spec: ComponentSpec, device: str = "cuda", cuda_graphs: bool = False,
                 threads: int | None = None, make_session: Callable[..., Any] | None = None, stream: Any = None):
        import torch

        self.torch, self.spec, self.path = torch, spec, Path(path)
        self.device = self.output_device = torch.device(device)  # output_device: where its outputs live (torch)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        if stream is None and self.device.type == "cuda":
            from t2vrt.engines.streams import CudaStream

            stream = CudaStream(torch, self.device)
        self.stream = stream
        self._make = make_session or (lambda graph, dims=None: self._session(graph, dims, threads))
        self.graphs: dict[tuple, list] = {}  # shape -> [session, gpu_graph_id, static inputs, outputs, binding]
        self.shape_sessions = False  # True where ONNX Runtime refused CUDA graphs on the dynamic-shape session
        self.session = self._open()
        self.providers = list(self.session.get_providers())
        if self.device.type == "cuda" and self.providers[:1] != [CUDA_EP]:
            raise EngineError(f"{spec.name}: ONNX Runtime did not start its CUDA provider (providers in use: "
                              f"{self.providers}); check the CUDA and cuDNN libraries, or {GPU_HINT}")
        log.info("%s: ONNX Runtime on %s with I/O binding (providers %s%s)", spec.name, self.device,
                 ", ".join(self.providers), ", CUDA graphs" if self.cuda_graphs else "")

    def _open(self):
        """One session; with CUDA graphs one that captures several (``gpu_graph_id``), so the weights are held once.
        ONNX Runtime refuses ``enable_cuda_graph`` at session creation when partitioning leaves nodes off the CUDA
        provider or inserts Memcpy nodes (inference_session.cc), which dynamic axes make likely: then each captured
        shape gets a session with its dimensions fixed (``add_free_dimension_override_by_name``)."""
        if not self.cuda_graphs:
            return self._make(False)
        try:
            return self._make(True)
        except Exception as e:
            if "user_compute_stream" in str(e):  # CUDA plugin EPs before onnxruntime PR 29221 refuse the two together
                raise EngineError(f"{self.spec.name}: this ONNX Runtime cannot capture CUDA graphs on the pipeline's "
                                  "stream (user_compute_stream with enable_cuda_graph); upgrade onnxruntime-gpu or "
                                  "run without CUDA graphs") from None
            if "graph capture" not in str(e):
                raise
            log.warning("%s: ONNX Runtime cannot capture the dynamic-shape graph (%s); each captured shape gets a "
                        "session of its own, with its own weights (at most %d)", self.spec.name,
                        str(e).splitlines()[0][:160], MAX_SHAPE_SESSIONS)
            self.shape_sessions = True
            return self._make(False)

    def _session(self, graph: bool, dims: Mapping[str, int] | None, threads: int | None):
        import onnxruntime as ort


        if not self.path.is_file():
            raise EngineError(f"{self.spec.name}: ONNX file {self.path} is missing; re-export the model")
        options = session_options(threads)
        for name, n in (dims or {}).items():
            options.add_free_dimension_override_by_name(name, n)
        if self.device.type == "cpu":
            providers: list = ["CPUExecutionProvider"]
        else:
            if CUDA_EP not in ort.get_available_providers():
                raise EngineError(f"{self.spec.name}: onnxruntime {ort.__version__} has no {CUDA_EP}; {GPU_HINT}")
            handle = self.stream.handle if self.stream is not None else None
            providers = [(CUDA_EP, cuda_options(self.device.index or 0, graph, handle)), "CPUExecutionProvider"]
        return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)

    def _inputs(self, feed: Mapping[str, Array]) -> dict:
        """The feed on this runner's device as contiguous tensors (NumPy input is copied once, at the edge)."""
        torch, out = self.torch, {}
        for t in self.spec.inputs:
            a = feed[t.name]
            a = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
            out[t.name] = a.to(self.device).contiguous()
        return out

    def _outputs(self, inputs: Mapping[str, Any]) -> dict:
        """Output buffers at the shapes the spec gives for the inputs' sizes."""
        sizes = feed_symbols(self.spec, {n: tuple(a.shape) for n, a in inputs.items()})
        return {t.name: self.torch.empty(t.shape(sizes), dtype=getattr(self.torch, t.dtype), device=self.device)
                for t in self.spec.outputs}

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.session is None:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        # No host synchronization: ONNX Runtime computes on the pipeline's stream (user_compute_stream), where torch
        # queued the inputs, and does not synchronize at the run's end (run_options)
        with self.stream.serving() if self.stream is not None else contextlib.nullcontext():
            inputs = self._inputs(feed)
            key = tuple((n, tuple(a.shape)) for n, a in inputs.items())
            if self.cuda_graphs and self._has_graph(key, inputs):
                return self._replay(key, inputs)
            outputs = self._outputs(inputs)
            graph_id = -1 if self.cuda_graphs and not self.shape_sessions else None  # -1: this run without a graph
            bind_and_run(self.session, inputs, outputs, options=run_options(graph_id))
            return outputs

    def _has_graph(self, key: tuple, inputs: Mapping[str, Any]) -> bool:
        """Whether shape ``key`` runs as a CUDA graph: captured, or capturable within the bound (else logged)."""
        if key in self.graphs:
            return True
        limit = MAX_SHAPE_SESSIONS if self.shape_sessions else MAX_GRAPHS
        if len(self.graphs) >= limit:
            log.info("%s: %d CUDA graphs captured already; %s runs without one", self.spec.name, limit, key)
            return False
        static = {n: a.clone() for n, a in inputs.items()}
        outputs = self._outputs(static)
        if self.shape_sessions:
            sizes = feed_symbols(self.spec, {n: tuple(a.shape) for n, a in inputs.items()})
            session, graph_id = self._make(True, free_dimensions(self.spec, sizes)), None
        else:
            session, graph_id = self.session, len(self.graphs) + 1  # gpu_graph_id 0 is ONNX Runtime's own
        self.graphs[key] = [session, graph_id, static, outputs, None]
        log.debug("%s: CUDA graph %s for %s", self.spec.name, graph_id or "session", key)
        return True

    def _replay(self, key: tuple, inputs: Mapping[str, Any]) -> dict:
        """Copy the inputs into the graph's fixed buffers and run it (captured by ONNX Runtime on first use)."""
        entry = self.graphs[key]
        session, graph_id, static, outputs, binding = entry
        for name, a in inputs.items():
            static[name].copy_(a)  # queued on the stream ONNX Runtime replays on: the replay reads this call's inputs
        entry[4] = bind_and_run(session, static, outputs, binding, run_options(graph_id))
        return {n: o.clone() for n, o in outputs.items()}  # the next replay overwrites the fixed buffers

    def close(self) -> None:
        """Wait for queued work, then drop the sessions (weights, device memory) and graph buffers; hand torch's
        cached blocks back."""
        if self.stream is not None and self.session is not None:
            self.stream.synchronize()
        self.session = None
        self.graphs.clear()
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
