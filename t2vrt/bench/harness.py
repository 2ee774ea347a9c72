"""What every script in benchmarks/ shares: phases with a time budget whose JSON is rewritten after each, a child
process measured for its wall time and peak memory, and the GPU memory the device itself reports.

A phase that would cross the budget is not started (when it says how long it needs) or is stopped when the budget
runs out (SIGALRM in the main thread: between two Python bytecodes, so a long C call such as one UNet step finishes
first; a child process started through ``Phases.child`` is killed at the budget). Either way the JSON keeps what the
earlier phases measured and says why the phase has no numbers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)
MB = 1 << 20


class PhaseStopped(BaseException):
    """Raised in the main thread when a phase reaches the end of the budget. A BaseException, as KeyboardInterrupt
    is, so that no ``except Exception`` in the code the phase runs can swallow it and run on past the budget."""


class Phases:
    """Runs named phases in order, records each one's value, seconds or error, and rewrites ``path`` after each.

    ``budget_s`` counts from ``started`` (a ``time.perf_counter()`` value; default: once the machine is
    described); ``phases(name, fn, need_s=...)`` skips a phase that says it needs more than is left and stops one
    that runs past the end. One failed phase never costs the others."""

    def __init__(self, path: str | Path, budget_s: float, record: dict | None = None, started: float | None = None):
        from t2vrt.bench.machine import machine

        info = machine()
        self.path, self.budget_s = Path(path), float(budget_s)
        self.t0 = time.perf_counter() if started is None else started
        self.res: dict[str, Any] = {"machine": info, **(record or {}), "budget_s": self.budget_s,
                                    "phase_s": {}, "errors": {}}
        self.save()

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def save(self) -> Path:
        from t2vrt.runtime.media.paths import write_text_atomic

        self.res["wall_s"] = round(time.perf_counter() - self.t0, 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(self.path, json.dumps(self.res, indent=2, default=str))

    def __call__(self, name: str, fn: Callable[[], Any], need_s: float = 0.0, keep: bool = True) -> Any:
        left = self.left()
        if left <= 0 or need_s > left:
            self.res["errors"][name] = f"skipped: needs about {need_s:.0f} s, {max(left, 0):.0f} s of the budget left"
            log.warning("phase %s %s", name, self.res["errors"][name])
            self.save()
            return None
        t0, value = time.perf_counter(), None
        try:
            with alarm(left):
                value = fn()
        except PhaseStopped:
            self.res["errors"][name] = f"stopped at the end of the {self.budget_s:.0f} s budget"
        except Exception as e:  # one failed phase must not cost the others: device time is one shot
            log.error("phase %s failed:\n%s", name, traceback.format_exc())
            self.res["errors"][name] = f"{type(e).__name__}: {e}"
        if keep and value is not None:
            self.res[name] = value
        self.res["phase_s"][name] = round(time.perf_counter() - t0, 2)
        log.info("phase %s: %.1f s (%.0f s of the budget left)", name, self.res["phase_s"][name], self.left())
        self.save()
        return value

    def child(self, cmd: list[str], log_path: str | Path | None = None, **kw) -> dict:
        """``run_child`` with the budget left as its timeout."""
        return run_child(cmd, log_path, timeout=max(1.0, self.left()), **kw)


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise PhaseStopped in the main thread after ``seconds`` (nothing elsewhere: signals reach only that one)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise PhaseStopped()

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Sampler(threading.Thread):
    """Calls ``read`` every ``period`` seconds and keeps the largest value (None readings are ignored)."""

    def __init__(self, read: Callable[[], float | None], period: float = 0.05):
        super().__init__(daemon=True)
        self.read, self.period, self.peak = read, period, 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            value = self.read()
            if value is not None:
                self.peak = max(self.peak, value)
            if self._done.wait(self.period):
                return

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def tree_rss_mb(pid: int) -> float | None:
    """Resident memory of a process and all its descendants, MB (None once it has gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / MB


def run_child(cmd: list[str], log_path: str | Path | None = None, timeout: float | None = None,
              max_rss_gb: float | None = None, env: dict | None = None, period: float = 0.05) -> dict:
    """Run ``cmd`` (this checkout first on PYTHONPATH, offline), sampling the process tree's RSS; kill it at
    ``timeout`` seconds or above ``max_rss_gb`` (a shared machine). Output goes to ``log_path``, or is returned
    as ``stdout`` (a child reporting JSON prints it on its last line: see ``last_json``)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)
    out = open(log_path, "w+") if log_path else tempfile.TemporaryFile("w+")  # a file: a pipe could fill and block
    t0 = time.perf_counter()
    with out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if log_path else None, env=env, text=True)
        sampler = Sampler(lambda: tree_rss_mb(proc.pid), period)
        sampler.start()
        try:
            reason = _wait(proc, sampler, timeout, max_rss_gb)
        finally:
            peak = sampler.stop()
        out.seek(0)
        stdout = None if log_path else out.read()
    rec = {"command": " ".join(map(str, cmd)), "rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 2),
           "peak_rss_mb": round(peak), "log": str(log_path) if log_path else None}
    if reason:
        rec["killed"] = reason
    if stdout is not None:
        rec["stdout"] = stdout
    return rec


def _wait(proc: subprocess.Popen, sampler: Sampler, timeout: float | None, max_rss_gb: float | None) -> str | None:
    deadline = None if timeout is None else time.perf_counter() + timeout
    try:
        while proc.poll() is None:
            if deadline is not None and time.perf_counter() > deadline:
                reason = f"past its {timeout:.0f} s"
            elif max_rss_gb is not None and sampler.peak > max_rss_gb * 1024:
                reason = f"above {max_rss_gb} GB of RSS"
            else:
                time.sleep(0.05)
                continue
            proc.kill()
            proc.wait()
            return reason
    except BaseException:  # PhaseStopped or ^C: never leave the child running
        proc.kill()
        proc.wait()
        raise
    return None


def last_json(rec: dict) -> dict:
    """The JSON object a child printed on its last line of stdout, or the child's failure."""
    lines = (rec.get("stdout") or "").strip().splitlines()
    if rec["rc"] != 0 or not lines:
        return {"error": rec.get("killed") or f"exit {rec['rc']}"}
    return json.loads(lines[-1])


def gpu_used_mb(index: int = 0) -> float | None:
    """Memory in use on GPU ``index`` as the device reports it (NVML), so ONNX Runtime's and TensorRT's own
    allocations count, not only torch's; torch's ``mem_get_info`` (the same device-wide figure) without NVML;
    None without a GPU."""
    handle = _nvml_handle(index)
    if handle is not None:
        import pynvml

        return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MB
    if "torch" not in sys.modules:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(index)
    return (total - free) / MB


class GpuPeak:
    """The device's peak used memory between ``start`` and ``stop`` (sampled every 10 ms), MB."""

    def __init__(self, index: int = 0, period: float = 0.01):
        self.index, self.period, self._sampler = index, period, None
        self.method = "NVML device used memory" if _has_nvml() else "cudaMemGetInfo (device used memory)"

    @property
    def running(self) -> bool:
        return self._sampler is not None

    def start(self) -> None:
        self.stop()
        self._sampler = Sampler(lambda: gpu_used_mb(self.index), self.period)
        self._sampler.start()

    def stop(self) -> float | None:
        if self._sampler is None:
            return None
        peak, self._sampler = self._sampler.stop(), None
        return peak or None


_HANDLES: dict[int, Any] = {}


def _nvml_handle(index: int) -> Any:
    """NVML's handle of GPU ``index`` (opened once), None without nvidia-ml-py or an NVIDIA driver."""
    if index not in _HANDLES:
        try:
            import pynvml

            pynvml.nvmlInit()
            _HANDLES[index] = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # ImportError, or NVMLError when no driver: the caller falls back
            _HANDLES[index] = None
    return _HANDLES[index]


def _has_nvml() -> bool:
    return _nvml_handle(0) is not None


def child_json(module: str, cfg: dict, **kw) -> dict:
    """``python -m module --child JSON`` (a benchmark script measuring one configuration in a fresh process): the
    JSON it printed last, with the child's wall seconds and the peak RSS of its process tree (``run_child``'s
    keywords: timeout, max_rss_gb, ...)."""
    rec = run_child([sys.executable, "-m", module, "--child", json.dumps(cfg)], **kw)
    out = last_json(rec)
    if "error" in out:
        log.error("%s %s failed (%s):\n%s", module, cfg, out["error"], (rec.get("stdout") or "")[-2000:])
    return {**out, "child_seconds": rec["seconds"], "child_peak_rss_mb": rec["peak_rss_mb"]}
