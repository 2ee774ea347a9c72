"""Clocks, peak memory and stage timers for benchmarks, wrapped around a pipeline without changing its code path."""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from t2vrt.errors import T2VError
from t2vrt.host import rss_bytes
from t2vrt.runtime.stages import StageObserver

MB = 1 << 20


def no_sync() -> None:
    return None


def cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


def sync_for(device: str) -> Callable[[], None]:
    """A barrier that makes wall-clock timing honest: CUDA work is asynchronous."""
    return cuda_sync if device.startswith("cuda") else no_sync


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of measured runs (the median is the headline number, as in nanoGPT's bench.py)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


class PeakMemory:
    """Peak resident memory (RSS) between ``reset`` and ``peak_mb``; on CUDA also the device's peak used memory
    (NVML, sampled: ONNX Runtime's and TensorRT's allocations count) and torch's own peak allocation.

    On Linux the kernel keeps the peak (VmHWM) and resets it when "5" is written to /proc/self/clear_refs;
    elsewhere a thread samples psutil's RSS every 5 ms (not on CUDA, where it would compete with kernel launches
    for the GIL and the number that matters is torch's).
    """

    def __init__(self, device: str = "cpu"):
        self.cuda = device.startswith("cuda")
        self.kernel = _can_reset_hwm()
        self.sampling = not self.kernel and not self.cuda
        self._sampled = 0
        self._stop: threading.Event | None = None
        self.method = "VmHWM" if self.kernel else "psutil sampling (5 ms)" if self.sampling else "current RSS only"
        self.gpu = None
        if self.cuda:
            from t2vrt.bench.harness import GpuPeak

            self.gpu = GpuPeak()
            self.method += f"; GPU: {self.gpu.method}"

    def current_mb(self) -> float:
        return rss_bytes() / MB

    def reset(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            if not self.gpu.running:  # a stage's reset inside a run keeps the run's sampler going
                self.gpu.start()
        if self.kernel:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self._sampled = int(self.current_mb() * MB)
            if self.sampling:
                self._start_sampler()

    def peak_mb(self) -> float:
        if self.kernel:
            return _vm_hwm_kb() / 1024
        return max(self._sampled, int(self.current_mb() * MB)) / MB

    def cuda_peak_mb(self) -> float | None:
        """torch's own peak allocation (blind to ONNX Runtime's and TensorRT's memory)."""
        if not self.cuda:
            return None
        import torch

        return torch.cuda.max_memory_allocated() / MB

    def gpu_peak_mb(self) -> float | None:
        """The device's peak used memory since ``reset`` (every process's and library's allocations)."""
        return self.gpu.stop() if self.gpu is not None else None

    def _start_sampler(self) -> None:
        try:
            import psutil
        except ImportError:
            raise T2VError("sampling peak memory on this system needs psutil: pip install 't2vrt[bench]'") from None

        if self._stop is not None:
            self._stop.set()
        stop, proc = threading.Event(), psutil.Process()
        self._stop = stop

        def sample() -> None:
            while not stop.wait(0.005):
                self._sampled = max(self._sampled, proc.memory_info().rss)

        threading.Thread(target=sample, daemon=True).start()


def _vm_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise OSError("no VmHWM in /proc/self/status")


def _can_reset_hwm() -> bool:
    try:
        _vm_hwm_kb()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Recorder:
    """Seconds and calls per name for one run, and the peak memory of each stage."""

    sync: Callable[[], None] = no_sync
    memory: PeakMemory | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    peaks_mb: dict[str, float] = field(default_factory=dict)
    growth_mb: dict[str, float] = field(default_factory=dict)  # stage peak above the RSS at the stage's start
    marks: dict[str, float] = field(default_factory=dict)  # time stamps, for spans no single call covers
    run_peak_mb: float = 0.0

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.peaks_mb.clear()
        self.growth_mb.clear()
        self.marks.clear()
        self.run_peak_mb = 0.0

    def add(self, name: str, dt: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + dt
        self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.add(name, time.perf_counter() - t0)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and record its own peak memory (the meter is reset at its start)."""
        m = self.memory
        if m is not None:
            self.run_peak_mb = max(self.run_peak_mb, m.peak_mb())
            start = m.current_mb()
            m.reset()
        with self.time(name):
            yield
        if m is not None:
            peak = m.peak_mb()
            self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), peak)
            self.growth_mb[name] = max(self.growth_mb.get(name, 0.0), peak - start)
            self.run_peak_mb = max(self.run_peak_mb, peak)

    def finish_peak(self) -> float:
        if self.memory is not None:
            self.run_peak_mb = max(self.run_peak_mb, self.memory.peak_mb())
        return self.run_peak_mb


class TimedRunner:
    """A Runner proxy: same ``infer``, timed under the component's name; everything else is delegated."""

    def __init__(self, inner: Any, name: str, recorder: Recorder):
        self.inner, self.name, self.recorder = inner, name, recorder

    def infer(self, feed: Mapping[str, Any]) -> dict[str, Any]:
        with self.recorder.time(self.name):
            return self.inner.infer(feed)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


class StageRecorder(StageObserver):
    """Bench's observer of a Pipeline's stages: each stage named in ``names`` is timed with its own peak memory
    (Recorder.stage), and every runner's ``infer`` is timed under its component's name (TimedRunner)."""

    def __init__(self, recorder: Recorder, names: Mapping[str, str]):
        self.recorder, self.names, self.open = recorder, dict(names), {}

    def stage_started(self, stage: str) -> None:
        if stage in self.names:
            self.open[stage] = self.recorder.stage(self.names[stage])
            self.open[stage].__enter__()

    def stage_ended(self, stage: str, seconds: float, error: BaseException | None) -> None:
        timing = self.open.pop(stage, None)
        if timing is not None:
            timing.__exit__(None, None, None)

    def wrap_runner(self, stage: str, runner: Any) -> Any:
        return TimedRunner(runner, stage, self.recorder)


def wrap_stage(obj: Any, attr: str, name: str, recorder: Recorder) -> None:
    """Replace ``obj.attr`` (on the instance only) by the same callable timed as stage ``name`` (for diffusers'
    pipeline; ours is observed through its stages: StageRecorder)."""
    inner = getattr(obj, attr)

    @functools.wraps(inner)  # keeps the signature for callers that inspect it
    def timed(*args, **kwargs):
        with recorder.stage(name):
            return inner(*args, **kwargs)

    setattr(obj, attr, timed)


def wrap_calls(obj: Any, attr: str, name: str, recorder: Recorder) -> None:
    """Like wrap_stage without the memory reset: for model calls inside a stage (e.g. diffusers' unet.forward)."""
    inner = getattr(obj, attr)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        with recorder.time(name):
            return inner(*args, **kwargs)

    setattr(obj, attr, timed)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
