"""One component's plans, one per size bucket (``t2vrt build --plan-per-bucket``, or the build's fallback when
TensorRT cannot put the buckets in one engine), behind the one Runner interface.

Each call runs the plan whose profile holds its shapes (the same selection and one-line errors as one engine with a
profile per bucket, over every plan's profiles). Only one plan of the component is resident: it is opened on the
first call that needs it and closed when a call needs another (a change of video size), so the GPU holds one plan's
weights and activations at a time, as with one engine.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Mapping, Sequence

from t2vrt.components import ComponentSpec
from t2vrt.engines.base import Array, check_feed
from t2vrt.engines.buckets import merged_record, plan_of, profile_size, record_profiles
from t2vrt.errors import EngineError

log = logging.getLogger(__name__)


class PlanSetRunner:
    """Runs the plan among ``records`` (manifest engine records of one component) that holds each call's shapes."""

    backend = "tensorrt"

    def __init__(self, root: str | Path, spec: ComponentSpec, records: Sequence[Mapping], cuda_graphs: bool = False,
                 stream=None):
        from t2vrt.engines.tensorrt import runner as tensorrt_runner

        self.runners = tensorrt_runner  # TrtRunner and torch_cuda are looked up here, so tests can stand in for them
        tensorrt_runner.torch_cuda()  # no GPU: the same one line at open as one engine gives
        self.root, self.spec, self.records, self.cuda_graphs = str(root), spec, list(records), cuda_graphs
        self.stream = stream  # every plan runs on it (None: each on one of its own)
        self.output_device = stream.device if stream is not None else "cuda"  # where its outputs live (torch)
        self.merged = merged_record(self.records)
        self.active: tuple[int, object] | None = None  # (plan index, its TrtRunner)
        self.closed = False
        self._lock = threading.Lock()  # one call at a time: a call may close the plan another is running

    def infer(self, feed: Mapping[str, Array]) -> dict[str, Array]:
        if self.closed:
            raise EngineError(f"{self.spec.name}: this runner was closed; open the component again")
        check_feed(self.spec, feed)
        index = self.runners.profile_for_feed(self.spec, self.merged, feed, self.root)
        plan, _ = plan_of(self.records, index)
        with self._lock:
            return self._open(plan).infer(feed)

    def _open(self, plan: int):
        """The runner of plan ``plan``, closing the one resident before it (GPU memory: one plan at a time)."""
        if self.active is not None and self.active[0] == plan:
            return self.active[1]
        if self.active is not None:
            self._close_active()
        record = self.records[plan]
        sizes = ", ".join(str(s) for s in (profile_size(p["profile"]) for p in record_profiles(record)) if s)
        log.info("%s: opening the plan for size bucket %s (%s)", self.spec.name, sizes or "?", record["path"])
        runner = self.runners.TrtRunner(Path(self.root) / record["path"], self.spec, record,
                                        cuda_graphs=self.cuda_graphs, root=self.root, stream=self.stream)
        self.active = (plan, runner)
        return runner

    def _close_active(self) -> None:
        _, runner = self.active
        self.active = None
        runner.close()

    def close(self) -> None:
        """Close the resident plan (its engine, context and CUDA graphs); later calls raise EngineError."""
        with self._lock:
            if self.active is not None:
                self._close_active()
            self.closed = True
