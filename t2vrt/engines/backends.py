"""Backends as objects, how a pipeline loads (LoadOptions), and the one registry of backend names.

A ``Backend`` answers everything a caller outside ``t2vrt.engines`` asks about a backend: whether it can run an
engine directory here and why not (``unusable``, for ``auto``), how it says where it runs (``explain``), opening a
runner for a component (``open``), checking a request against what was built (``check_request``), whether its
runners may serve concurrent calls (``shares_runners``), the precision it runs when none is asked for
(``precision_label``), its own options (``check_options``) and which files a load must find intact
(``intact_files``). No caller compares a backend's name with a string.

Adding a backend (e.g. ``openvino``): write one module with a subclass of ``Backend`` (a ``name``, ``open``, and
whatever it answers differently from the defaults below), then add one entry to ``REGISTRY``: its name -> the
``"module:Class"`` that implements it. Its place in ``REGISTRY`` is its place in ``auto``'s order (first usable
wins; the last entry is the fallback and must be usable everywhere). The CLI's ``--backend`` choices, ``auto`` and
``Pipeline.load(backend=...)`` pick it up from here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from t2vrt.errors import EngineError, InputError
from t2vrt.manifest import Manifest

# name -> "module:Class", in auto's order of preference (the last one is the fallback that runs everywhere).
REGISTRY: dict[str, str] = {
    "tensorrt": "t2vrt.engines.tensorrt.backend:TensorRT",
    "openvino": "t2vrt.engines.openvino_backend:OpenVino",
    "onnxruntime": "t2vrt.engines.onnxruntime_backend:OnnxRuntime",
}
AUTO = "auto"
PRECISIONS = ("fp32", "fp16", "bf16")  # what --precision offers; a backend refuses what it cannot run when it loads


def backend_names(auto: bool = True) -> tuple[str, ...]:
    """The names the CLI and ``Pipeline.load(backend=...)`` accept: "auto" first, then the backends by name."""
    return ((AUTO,) if auto else ()) + tuple(sorted(REGISTRY))


_INSTANCES: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The Backend object registered as ``name`` (not "auto": see loader.resolve); one line for an unknown name."""
    if name not in REGISTRY:
        raise EngineError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")
    if name not in _INSTANCES:
        module, cls = REGISTRY[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


def auto_order() -> list[Backend]:
    """``auto`` as an ordered list of backends: the first that can run the directory here is used."""
    return [get_backend(name) for name in REGISTRY]


@dataclass(frozen=True)
class LoadOptions:
    """How a pipeline loads: one object for Pipeline, VideoToVideoPipeline, from_pretrained, the batch and service
    renderers and the benchmarks.

    - ``backend``: "auto" or a name of ``backend_names()``.
    - ``precision``: "fp32", "fp16" (GPUs) or "bf16" (openvino, on a CPU with bf16); None: the backend's default
      (fp32 ONNX on the CPU, the built engines' precision on TensorRT).
    - ``providers``: ONNX Runtime execution providers in order (onnxruntime only); None: CUDA where available.
    - ``threads``: intra-op threads per session (ONNX Runtime) or per compiled model (OpenVINO); None:
      ``$T2VRT_THREADS`` where set (read by the runners), else the backend's own choice (a thread per core).
    - ``low_memory``: only the component in use is resident (slower, lower peak).
    """

    backend: str = AUTO
    precision: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    low_memory: bool = False

    def __post_init__(self):
        if self.backend != AUTO and self.backend not in REGISTRY:
            raise EngineError(f"unknown backend {self.backend!r}; choose one of {', '.join(backend_names())}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InputError(f"precision={self.precision!r}; choose one of {', '.join(PRECISIONS)} (or None for the "
                             "backend's default)")
        if self.providers is not None:
            if isinstance(self.providers, str) or not all(isinstance(p, str) for p in self.providers):
                raise InputError(f"providers={self.providers!r}; give a list of ONNX Runtime provider names")
            object.__setattr__(self, "providers", tuple(self.providers) or None)
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InputError(f"threads={self.threads!r} must be at least 1 (omit it for ONNX Runtime's choice)")
        if not isinstance(self.low_memory, bool):
            raise InputError(f"low_memory={self.low_memory!r}; give True or False")

    @classmethod
    def of(cls, options: LoadOptions | str | None = None, **fields: Any) -> LoadOptions:
        """LoadOptions from what a caller passed: an object (``fields`` replace some of its values), a backend name
        (the old first positional argument), or None; ``fields`` left None keep their default."""
        fields = {k: v for k, v in fields.items() if v is not None}
        if isinstance(options, LoadOptions):
            return replace(options, **fields) if fields else options
        if isinstance(options, str):
            fields.setdefault("backend", options)
        elif options is not None:
            raise InputError(f"load options {options!r}; give a LoadOptions, a backend name, or keyword arguments")
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unexpected load options {sorted(unknown)}; load options are "
                             f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**fields)

    def to_json(self) -> dict:
        return {"backend": self.backend, "precision": self.precision,
                "providers": list(self.providers) if self.providers else None, "threads": self.threads,
                "low_memory": self.low_memory}


class Backend:
    """One backend. Subclasses set ``name`` and implement ``open``; the other answers have defaults."""

    name = "?"
    shares_runners = False  # True: one runner may serve concurrent calls (else the pipeline serializes calls)

    def unusable(self, manifest: Manifest | None, options: LoadOptions | None = None) -> str:
        """Why this backend cannot run ``manifest``'s directory here with ``options`` (e.g. their precision) ("" when
        it can): ``auto`` skips it then."""
        return ""

    def explain(self, options: LoadOptions) -> str:
        """Where it runs, for the INFO line ``auto`` logs (e.g. "onnxruntime on CUDA")."""
        return self.name

    def check_options(self, options: LoadOptions) -> None:
        """Refuse options this backend cannot honour, at load rather than when the first component opens."""

    def stream(self, options: LoadOptions) -> Any:
        """The one CUDA stream a pipeline's runners of this backend share (engines/streams.py), or None where its
        runners do not run on a CUDA GPU here; ``open`` then takes it as ``stream=``."""
        return None

    def gpu_unused(self, options: LoadOptions) -> bool:
        """True where a GPU is there and this backend, chosen by ``auto``, cannot use it (logged as a WARNING)."""
        return False

    def open(self, root: Path, manifest: Manifest, name: str, options: LoadOptions, cuda_graphs: bool = False) -> Any:
        """A Runner (engines.base) for component ``name`` at ``options.precision`` (None: the backend's default)."""
        raise NotImplementedError

    def check_request(self, root: Path, manifest: Manifest, precision: str | None, sizes: Mapping[str, int]) -> None:
        """Refuse ``sizes`` (batch, frames, height, width) that what was built cannot run, before any model runs;
        the manifest's own profile is checked by the caller."""

    def precision_label(self, precision: str | None) -> str:
        """The precision it runs, in words, for messages (the NaN guard's hint)."""
        return precision or "fp32"

    def intact_files(self, precision: str | None) -> dict:
        """What a load must find intact: integrity.require_intact's ``precisions`` and ``engines`` arguments."""
        return {"precisions": (precision or "fp32",), "engines": False}

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
