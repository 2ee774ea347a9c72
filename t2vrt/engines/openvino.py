"""OpenVINO runner: the portable fp32 ONNX graph, compiled per request shape, in fp32 or bf16 on the CPU.

OpenVINO reads the exported ONNX file as it is. Each new set of input shapes is compiled once for those static
shapes (static shapes run faster on the CPU than the dynamic graph: benchmarks/RESULTS.md, "OpenVINO"); the
compiled models are kept in a small LRU cache per runner, so a call at a shape already compiled costs no compile.
OpenVINO's own compiled-model cache (``CACHE_DIR``) lives in the user's cache folder, never in the engine
directory: a second process compiling the same graph at the same shape and precision imports the blob instead.

bf16 (``INFERENCE_PRECISION_HINT``) needs a CPU with bf16 instructions (AVX512_BF16 or AMX); elsewhere asking for
it is a one-line EngineError. Which components run in bf16 is decided by measurement (``BF16_COMPONENTS``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from t2vrt.components import ComponentSpec
from t2vrt.engines.base import Array, check_feed
from t2vrt.errors import EngineError
from t2vrt.host import env_threads, return_freed_heap

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
# Components that run in bf16 when bf16 is asked for; the others stay in fp32. Measured on the small preset with
# every layer active (benchmarks/RESULTS.md, "OpenVINO bf16: where it goes"): the UNet is nearly all of the time
# and loses little; see there for the text encoder and the VAE.
BF16_COMPONENTS = frozenset({"unet", "vae_decoder", "vae_encoder"})
OV_TYPES = {"fp32": "f32", "bf16": "bf16"}  # INFERENCE_PRECISION_HINT's spelling
MAX_COMPILED = 4  # compiled shapes kept per component (a call with guidance, a context window and a last VAE chunk)
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# bf16 compiles turn off the CPU plugin's Snippets (its JIT-fused subgraphs): with them, the fused attention of the
# small preset's temporal transformers at 4 or 8 frames lost ten times torch's bf16 accuracy (relative L2 0.13
# against 0.012 at one attention's output) and the UNet step was 0.065 from fp32 (4 frames); without them 0.032,
# closer than torch's bf16 (0.034), and 8-frame videos 39.8 dB instead of 35.5. The price: the step at 16 frames
# (where Snippets were as exact) runs 12% slower (benchmarks/RESULTS.md, "Where the gap was"). SNIPPETS_MODE is an
# internal CPU property (not in SUPPORTED_PROPERTIES): where a version refuses it, the compile goes on without it.
BF16_CONFIG = {"SNIPPETS_MODE": "DISABLE"}


def openvino_missing() -> str:
    """Why OpenVINO cannot be imported here ("" when it can)."""
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"openvino is not installed ({e.msg}); pip install 't2vrt[openvino]'"
    return ""


def cache_dir() -> Path:
    """OpenVINO's compiled-model cache: ``$T2VRT_OPENVINO_CACHE``, else ``$XDG_CACHE_HOME/t2vrt/openvino``, else
    ``~/.cache/t2vrt/openvino``; never inside an engine directory."""
    if os.environ.get("T2VRT_OPENVINO_CACHE"):
        return Path(os.environ["T2VRT_OPENVINO_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "t2vrt" / "openvino"


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags as Linux lists them (empty where /proc/cpuinfo is not there)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16() -> str:
    """The bf16 instructions this CPU has ("amx_bf16", "avx512_bf16"), "" when none. Without /proc/cpuinfo,
    OpenVINO's own report (``OPTIMIZATION_CAPABILITIES`` has BF16) decides."""
    flags = cpu_flags()
    if flags:
        return ", ".join(f for f in CPU_BF16_FLAGS if f in flags)
    if openvino_missing():
        return ""
    import openvino as ov

    return "bf16" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else ""


def check_precision(precision: str) -> None:
    """One-line EngineError for a precision OpenVINO cannot run here (fp16 graphs are for GPUs; bf16 needs
    AVX512_BF16 or AMX)."""
    if precision not in PRECISIONS:
        raise EngineError(f"the openvino backend runs precision fp32 or bf16, not {precision!r}; "
                          "use --precision fp32 or --precision bf16")
    if precision == "bf16" and not cpu_bf16():
        raise EngineError("precision bf16 needs a CPU with AVX512_BF16 or AMX instructions and this one has neither "
                          "(grep -o 'avx512_bf16\\|amx_bf16' /proc/cpuinfo); use --precision fp32")


def component_precision(name: str, precision: str) -> str:
    """What component ``name`` runs in when ``precision`` is asked for: bf16 only where measured harmless."""
    return "bf16" if precision == "bf16" and name in BF16_COMPONENTS else "fp32"


class OpenVinoRunner:
    """Runs one portable ONNX graph on OpenVINO's CPU plugin; one compiled model per set of input shapes."""

    backend = "openvino"

    def __init__(self, path: str | Path, spec: ComponentSpec, precision: str = "fp32", threads: int | None = None,
                 max_compiled: int = MAX_COMPILED, device: str = "CPU", cache: bool = True):
        if openvino_missing():
            raise EngineError(f"{spec.name}: {openvino_missing()}")
        check_precision(precision)
        if not os.path.isfile(path):
            raise EngineError(f"{spec.name}: ONNX file {path} is missing; re-export the model")
        import openvino as ov

        self.spec, self.path, self.device = spec, Path(path), device
        self.precision = component_precision(spec.name, precision)
        self.core = ov.Core()
        # One cache folder per precision and thread count: OpenVINO 2026.4's cache key leaves the precision hint out
        # for graphs read from ONNX, and an f32 blob imported under the bf16 hint computes NaN (measured).
        self.config = {"INFERENCE_PRECISION_HINT": OV_TYPES[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.precision == "bf16":
            self.config.update(BF16_CONFIG)
        # (and one per Snippets setting: the key may leave that internal property out too)
        tag = "-nosnippets" if self.config.get("SNIPPETS_MODE") == "DISABLE" else ""
        threads = threads or env_threads()
        folder = cache_dir() / f"{self.precision}{tag}-threads-{threads or 'auto'}"
        if cache:  # off: every new shape compiles (to measure compile time)
            self.config["CACHE_DIR"] = str(folder)
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.model = self.core.read_model(str(self.path))  # read once; each shape compiles a reshaped clone
        names = [p.get_any_name() for p in self.model.inputs]
        if sorted(names) != sorted(t.name for t in spec.inputs):
            raise EngineError(f"{path} has inputs {names}; the manifest says {[t.name for t in spec.inputs]}")
        self.output_names = [t.name for t in spec.outputs]
        self.compiled: OrderedDict[tuple, Compiled] | None = OrderedDict()  # input shapes -> compiled model
        self.max_compiled = max(1, max_compiled)
        self.compiles = 0  # compiles done by this runner (a new shape, or an import from CACHE_DIR)
        self.compile_seconds: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def _compile(self, key: tuple) -> Compiled:
        """Fix the graph's input shapes to ``key`` and compile it (or import it from CACHE_DIR); in bf16, the
        timestep embedding is cut off and compiled in fp32 (engines/openvino_split.py)."""
        from t2vrt.engines.openvino_split import fuse_attention, split_fp32_head

        t0 = time.perf_counter()
        model = self.model.clone()
        model.reshape({name: list(shape) for name, shape in key})
        parts = None
        if self.precision == "bf16":
            fuse_attention(model)
            parts = split_fp32_head(model)
        if parts is None:
            compiled = Compiled(None, self._compile_model(model, self.config))
        else:
            fp32 = {**self.config, "INFERENCE_PRECISION_HINT": "f32"}
            if "CACHE_DIR" in fp32:  # OpenVINO's cache key leaves the hint out: fp32 blobs in their own folder
                fp32["CACHE_DIR"] = fp32["CACHE_DIR"].replace("bf16-", "fp32-", 1)
            compiled = Compiled(self._compile_model(parts[0], fp32), self._compile_model(parts[1], self.config))
        del model, parts
        self.compiles += 1
        self.compile_seconds[key] = time.perf_counter() - t0
        log.info("%s: compiled for %s in %s on OpenVINO in %.1f s", self.spec.name,
                 ", ".join(f"{n} {list(s)}" for n, s in key), self.precision, self.compile_seconds[key])
        return compiled

    def _compile_model(self, model, config: dict):
        """compile_model, once more without BF16_CONFIG's internal properties where this OpenVINO refuses them."""
        try:
            return self.core.compile_model(model, self.device, config)
        except RuntimeError as e:
            if not any(k in config and k in str(e) for k in BF16_CONFIG):
                raise
            log.warning("%s: this OpenVINO refuses %s (%s); compiling without it, bf16 frames will be less exact",
                        self.spec.name, ", ".join(BF16_CONFIG), str(e).splitlines()[-1])
            for k in BF16_CONFIG:
                self.config.pop(k, None)
            return self.core.compile_model(model, self.device, {k: v for k, v in config.items()
                                                                if k not in BF16_CONFIG})

    def _compiled_for(self, key: tuple):
        with self._lock:
            if self.compiled is None:
                raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
            if key in self.compiled:
                self.compiled.move_to_end(key)
                return self.compiled[key]
            while len(self.compiled) >= self.max_compiled:
                self.compiled.popitem(last=False)
            compiled = self.compiled[key] = self._compile(key)
            return compiled

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.compiled is None:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        arrays = {k: np.ascontiguousarray(v) for k, v in feed.items()}
        key = tuple(sorted((k, tuple(int(n) for n in a.shape)) for k, a in arrays.items()))
        compiled = self._compiled_for(key)
        with self._lock:  # one request per shape: calls at the same shape take turns
            return compiled.infer(arrays, self.output_names)

    def close(self) -> None:
        """Drop every compiled model (its weights in the compiled precision and its buffers) and give the heap back."""
        with self._lock:
            self.compiled = self.model = None
        return_freed_heap()


class Compiled:
    """One compiled model and its infer request; with ``head``, an fp32 head whose output feeds ``body``."""

    def __init__(self, head, body):
        self.head, self.body = head, body
        self.head_request = head.create_infer_request() if head is not None else None
        self.request = body.create_infer_request()

    def infer(self, arrays: dict, output_names: list[str]) -> dict:
        if self.head is not None:
            from t2vrt.engines.openvino_split import CUT_INPUT

            names = {p.get_any_name() for p in self.head.inputs}
            cut = self.head_request.infer({k: a for k, a in arrays.items() if k in names})[0]
            body = {p.get_any_name() for p in self.body.inputs}
            arrays = {**{k: a for k, a in arrays.items() if k in body}, CUT_INPUT: cut}
        result = self.request.infer(arrays)
        return {name: np.array(result[self.body.output(name)], copy=True) for name in output_names}
