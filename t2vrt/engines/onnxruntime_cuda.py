"""ONNX Runtime with I/O binding on torch tensors: the CUDA execution provider as a GPU backend.

Inputs are bound by address (``bind_input`` with ``data_ptr()``) and outputs to buffers allocated beforehand at the
shapes the component's spec gives for the feed's sizes, so on a GPU the latents stay on the device for the whole
denoising loop; the runner returns torch tensors on the device of its inputs. The same code binds torch CPU tensors
to the CPU provider, which is how it is tested without a GPU.

CUDA graphs (``cuda_graphs=True``): ONNX Runtime's ``enable_cuda_graph`` replays a captured graph on the addresses it
was captured with, for one set of input shapes per session. So each new input shape gets its own session with fixed
input and output buffers (the feed is copied in, the outputs cloned out); each such session holds its own copy of the
weights (2.8 GB for the real UNet in fp16), hence at most ``MAX_GRAPHS`` shapes are captured and later shapes run
without a graph (logged). A denoising loop uses one UNet shape per request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from t2vrt.components import ComponentSpec
from t2vrt.engines.base import Array, check_feed
from t2vrt.engines.buckets import feed_symbols
from t2vrt.errors import EngineError

log = logging.getLogger(__name__)
CUDA_EP = "CUDAExecutionProvider"
MAX_GRAPHS = 2
GPU_HINT = "pip install onnxruntime-gpu (in place of onnxruntime; it must match your CUDA major version)"


def ort_cuda_unusable() -> str:
    """Why ONNX Runtime cannot run on a CUDA GPU here ("" when it can)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if CUDA_EP not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no {CUDA_EP} ({GPU_HINT})"
    try:
        import torch
    except ImportError:
        return "torch is not installed (the CUDA backend binds torch CUDA tensors): pip install torch"
    if not torch.cuda.is_available():
        return f"no CUDA GPU is visible to torch {torch.__version__}"
    return ""


def cuda_options(device_id: int, graph: bool) -> dict[str, str]:
    """CUDA provider options: heuristic cuDNN algorithm choice (exhaustive search costs minutes per new shape on the
    real UNet), the largest cuDNN workspace, copies on the compute stream, and CUDA-graph capture when asked."""
    return {"device_id": str(device_id), "cudnn_conv_algo_search": "HEURISTIC", "cudnn_conv_use_max_workspace": "1",
            "do_copy_in_default_stream": "1", "enable_cuda_graph": "1" if graph else "0"}


def _element_type(a: Any) -> np.dtype:
    return np.dtype(str(a.dtype).removeprefix("torch."))


def bind_and_run(session, inputs: Mapping[str, Any], outputs: Mapping[str, Any], binding=None):
    """Bind torch tensors by address (device from each tensor) and run; returns the binding for reuse."""
    if binding is None:
        binding = session.io_binding()
        for group, bind in ((inputs, binding.bind_input), (outputs, binding.bind_output)):
            for name, a in group.items():
                bind(name, a.device.type, a.device.index or 0, _element_type(a), list(a.shape), a.data_ptr())
    session.run_with_iobinding(binding)
    return binding


class OrtBoundRunner:
    """One ONNX graph on ONNX Runtime with every input and output bound to torch tensors on ``device``."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, spec: ComponentSpec, device: str = "cuda", cuda_graphs: bool = False,
                 threads: int | None = None, make_session: Callable[[bool], Any] | None = None):
        import torch

        self.torch, self.spec, self.path = torch, spec, Path(path)
        self.device = torch.device(device)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._make = make_session or (lambda graph: self._session(graph, threads))
        self.session = self._make(False)
        self.providers = list(self.session.get_providers())
        if self.device.type == "cuda" and self.providers[:1] != [CUDA_EP]:
            raise EngineError(f"{spec.name}: ONNX Runtime did not start its CUDA provider (providers in use: "
                              f"{self.providers}); check the CUDA and cuDNN libraries, or {GPU_HINT}")
        self.graphs: dict[tuple, tuple] = {}
        log.info("%s: ONNX Runtime on %s with I/O binding (providers %s%s)", spec.name, self.device,
                 ", ".join(self.providers), ", CUDA graphs" if self.cuda_graphs else "")

    def _session(self, graph: bool, threads: int | None):
        import onnxruntime as ort

        from t2vrt.engines.onnxruntime import session_options

        if not self.path.is_file():
            raise EngineError(f"{self.spec.name}: ONNX file {self.path} is missing; re-export the model")
        if self.device.type == "cpu":
            providers: list = ["CPUExecutionProvider"]
        else:
            if CUDA_EP not in ort.get_available_providers():
                raise EngineError(f"{self.spec.name}: onnxruntime {ort.__version__} has no {CUDA_EP}; {GPU_HINT}")
            providers = [(CUDA_EP, cuda_options(self.device.index or 0, graph)), "CPUExecutionProvider"]
        return ort.InferenceSession(str(self.path), sess_options=session_options(threads), providers=providers)

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
        inputs = self._inputs(feed)
        if self.device.type == "cuda":  # ONNX Runtime runs on its own stream: what torch queued must be done first
            self.torch.cuda.current_stream(self.device).synchronize()
        key = tuple((n, tuple(a.shape)) for n, a in inputs.items())
        if self.cuda_graphs and (key in self.graphs or len(self.graphs) < MAX_GRAPHS):
            return self._replay(key, inputs)
        if self.cuda_graphs and key not in self.graphs:
            log.info("%s: %d CUDA graphs captured already; %s runs without one", self.spec.name, MAX_GRAPHS, key)
        outputs = self._outputs(inputs)
        bind_and_run(self.session, inputs, outputs)
        return outputs

    def _replay(self, key: tuple, inputs: Mapping[str, Any]) -> dict:
        """Run the graph session of these shapes (made, and captured by ONNX Runtime, on first use)."""
        if key not in self.graphs:
            static = {n: a.clone() for n, a in inputs.items()}
            outputs = self._outputs(static)
            self.graphs[key] = (self._make(True), static, outputs, None)
            log.debug("%s: CUDA-graph session for %s", self.spec.name, key)
        session, static, outputs, binding = self.graphs[key]
        for name, a in inputs.items():
            static[name].copy_(a)
        binding = bind_and_run(session, static, outputs, binding)
        self.graphs[key] = (session, static, outputs, binding)
        return {n: o.clone() for n, o in outputs.items()}  # the next replay overwrites the fixed buffers

    def close(self) -> None:
        """Drop the sessions (weights, device memory) and graph buffers; hand torch's cached blocks back."""
        self.session = None
        self.graphs.clear()
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
