"""The tensorrt backend: engines built by `t2vrt build` for this GPU and TensorRT version (tensorrt or tensorrt-rtx)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from t2vrt.components import TEXT_TO_VIDEO
from t2vrt.engines.backends import Backend, LoadOptions
from t2vrt.engines.base import Runner
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)


def tensorrt_unusable(manifest: Manifest | None) -> str:
    """Why the tensorrt backend cannot run this directory here ("" when it can)."""
    from t2vrt.engines.tensorrt.env import cuda_available
    from t2vrt.engines.tensorrt.records import find_engine

    if manifest is None or not manifest.engines:
        return "no TensorRT engines are built (t2vrt build DIR)"
    if not cuda_available():
        return "no CUDA GPU is visible to torch"
    for name in (c for c in TEXT_TO_VIDEO if c in manifest.components):
        record, why = find_engine(manifest.engines, name)
        if record is None:
            return why
    return ""


class TensorRT(Backend):
    """Built engines, one plan per size bucket where the build made several; the plan that holds a call runs it.

    An execution context and its bound buffers serve one call at a time: calls are serialized."""

    name = "tensorrt"
    shares_runners = False

    def unusable(self, manifest: Manifest | None, options: LoadOptions | None = None) -> str:
        return tensorrt_unusable(manifest)

    def explain(self, options: LoadOptions) -> str:
        return "tensorrt (engines built for this GPU)"

    def check_options(self, options: LoadOptions) -> None:
        if options.providers or options.threads:
            log.warning("providers and threads are ONNX Runtime options: the tensorrt backend ignores them")

    def stream(self, options: LoadOptions):
        from t2vrt.engines.tensorrt.env import cuda_available

        if not cuda_available():  # no GPU: the runners say so in their own one line when they open
            return None
        from t2vrt.engines.streams import CudaStream

        return CudaStream()

    def open(self, root: Path, manifest: Manifest, name: str, options: LoadOptions,
             cuda_graphs: bool = False, stream=None) -> Runner:
        """The engine built for this GPU (fp16 first unless ``options.precision`` says which), run on ``stream``."""
        from t2vrt.engines.tensorrt.records import find_engines
        from t2vrt.engines.tensorrt.runner import TrtRunner

        spec = manifest.spec(name)
        records, why = find_engines(manifest.engines, name, options.precision, root=str(root))
        if not records:
            raise EngineError(f"{name}: no TensorRT engine can run here: {why}")
        if len(records) > 1:  # one plan per size bucket: the plan that holds each call is opened for it
            from t2vrt.engines.tensorrt.plans import PlanSetRunner

            return PlanSetRunner(root, spec, records, cuda_graphs=cuda_graphs, stream=stream)
        return TrtRunner(Path(root) / records[0]["path"], spec, records[0], cuda_graphs=cuda_graphs, root=str(root),
                         stream=stream)

    def check_request(self, root: Path, manifest: Manifest, precision: str | None, sizes: Mapping[str, int]) -> None:
        """The request must fit one of the built engines' profiles (one engine, or one plan per size bucket)."""
        from t2vrt.engines.tensorrt.records import check_plans, find_engines

        for name in manifest.components:
            records, _ = find_engines(manifest.engines, name, precision, root=str(root))
            if records:
                check_plans(records, sizes, root=str(root))

    def precision_label(self, precision: str | None) -> str:
        return precision or "the built engines' precision"

    def intact_files(self, precision: str | None) -> dict:
        return {"precisions": (), "engines": True}
