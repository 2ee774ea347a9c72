"""The benchmark scripts' harness: a phase past the budget is skipped or stopped with the JSON kept, a child's peak
memory is sampled and a child past its time is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from t2vrt.bench.harness import gpu_used_mb, last_json, run_child

PHASES_SCRIPT = """
import json, sys, time
from t2vrt.bench.harness import Phases
path = sys.argv[1]
phases = Phases(path, budget_s=2.0, record={"what": "test"})
seen = {"written_first": json.load(open(path))["what"]}
seen["first"] = phases("first", lambda: {"x": 1})
seen["first_saved"] = json.load(open(path))["first"]
seen["too_long"] = phases("too_long", lambda: {"never": 1}, need_s=60)
t0 = time.perf_counter()
seen["runs_over"] = phases("runs_over", lambda: time.sleep(30))
seen["runs_over_s"] = time.perf_counter() - t0
seen["after"] = phases("after", lambda: 1)
seen["failing"] = phases("failing", lambda: 1 / 0, need_s=0)
print(json.dumps(seen))
"""


def _in_a_process(script: str, path: Path) -> dict:
    """Run ``script`` with ``path`` as its argument in a fresh interpreter (this checkout first) and read its JSON."""
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_phases_keep_json_skip_and_stop(tmp_path):
    """Phases run in a process of their own, as the benchmark scripts do: the stop is a SIGALRM in the main thread,
    and in a full run that signal killed the pytest worker (which by then holds Ray, uvicorn and OpenVINO threads)."""
    path = tmp_path / "out.json"
    seen = _in_a_process(PHASES_SCRIPT, path)
    assert seen["written_first"] == "test"  # written before any phase
    assert seen["first"] == {"x": 1} and seen["first_saved"] == {"x": 1}  # rewritten after the phase
    assert seen["too_long"] is None and seen["runs_over"] is None and seen["after"] is None
    assert seen["runs_over_s"] < 5  # stopped at the budget, not after 30 s
    assert seen["failing"] is None
    res = json.loads(path.read_text())
    assert res["errors"]["too_long"].startswith("skipped: needs about 60 s")
    assert res["errors"]["runs_over"] == "stopped at the end of the 2 s budget"
    assert res["errors"]["after"].startswith("skipped") and "too_long" not in res and "runs_over" in res["phase_s"]
    assert res["machine"]["cpu"] and res["wall_s"] >= 1.9


def test_run_child_samples_peak_memory_and_kills_at_its_time(tmp_path):
    grow = ("import json, time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5); "
            "print(json.dumps({'ok': 1}))")
    rec = run_child([sys.executable, "-c", grow], period=0.02)
    assert rec["rc"] == 0 and rec["peak_rss_mb"] > 250 and last_json(rec) == {"ok": 1}
    slow = run_child([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "log.txt", timeout=1)
    assert slow["killed"] == "past its 1 s" and slow["seconds"] < 10 and last_json(slow)["error"] == "past its 1 s"


def test_gpu_memory_is_none_without_a_gpu():
    import torch

    if not torch.cuda.is_available():
        assert gpu_used_mb() is None
    else:
        assert gpu_used_mb() > 0


def test_gpu_peak_reads_the_device_used_memory_from_nvml(monkeypatch):
    """A stand-in for nvidia-ml-py's pynvml: nvmlInit, nvmlDeviceGetHandleByIndex and nvmlDeviceGetMemoryInfo, whose
    ``used`` is the device's used memory in bytes (NVML API reference, nvmlMemory_t); every process's and library's
    allocations count in it, so ONNX Runtime's and TensorRT's do."""
    import types

    from t2vrt.bench import harness

    used = iter([1 << 30, 3 << 30, 2 << 30] + [2 << 30] * 10_000)
    fake = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: ("gpu", i),
                                 nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=next(used)))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(harness, "_HANDLES", {})
    peak = harness.GpuPeak(period=0.001)
    assert peak.method == "NVML device used memory" and not peak.running
    peak.start()
    time.sleep(0.05)
    assert peak.running and peak.stop() == 3072 and not peak.running


STUBBORN_SCRIPT = """
import json, sys, time
from t2vrt.bench.harness import Phases

def stubborn():
    while True:
        try:
            time.sleep(30)
        except Exception:  # library code often does this; the budget must still hold
            pass

phases = Phases(sys.argv[1], budget_s=1.0)
t0 = time.perf_counter()
print(json.dumps({"value": phases("stubborn", stubborn), "seconds": time.perf_counter() - t0}))
"""


def test_a_phase_that_swallows_exceptions_is_still_stopped(tmp_path):
    seen = _in_a_process(STUBBORN_SCRIPT, tmp_path / "out.json")
    assert seen["value"] is None and seen["seconds"] < 5
    assert json.loads((tmp_path / "out.json").read_text())["errors"]["stubborn"].startswith("stopped at the end")
