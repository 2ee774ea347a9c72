"""`t2vrt batch --ray` on a local 2-CPU Ray cluster: the local run's frames, and a killed worker retried."""

import json
import os
import signal

import numpy as np
import pytest

from t2vrt.runtime.video import read_video
from t2vrt.serve.batch import plan, run_local
from t2vrt.serve.ray_batch import RayOptions, run_ray

pytestmark = pytest.mark.ray
SMALL = {"num_frames": 4, "height": 32, "width": 48, "num_inference_steps": 3}


def prompts(path, n):
    rows = [{"prompt": f"prompt number {i}", "seed": 10 + i, **SMALL} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n")
    return path


def test_ray_batch_gives_the_local_frames(ray_cluster, tiny_engines, tmp_path):
    p = prompts(tmp_path / "p.jsonl", 3)
    local = run_local(tiny_engines, plan(tiny_engines, p, tmp_path / "local"), tmp_path / "local")
    remote = run_ray(tiny_engines, plan(tiny_engines, p, tmp_path / "ray"), tmp_path / "ray", opts=RayOptions(workers=2))
    assert [r["status"] for _, r in sorted(remote.records.items())] == ["ok", "ok", "ok", "invalid"]
    assert {r["worker"] for r in remote.records.values() if "worker" in r} != {local.records[1]["worker"]}
    for n in (1, 2, 3):
        a, b = local.records[n], remote.records[n]
        assert (a["output"], a["seed"]) == (b["output"], b["seed"])
        np.testing.assert_array_equal(read_video(tmp_path / "ray" / b["output"]), read_video(tmp_path / "local" / a["output"]))


def test_a_worker_killed_mid_batch_is_retried(ray_cluster, tiny_engines, tmp_path):
    p, out = prompts(tmp_path / "p.jsonl", 6), tmp_path / "out"
    killed = []

    def kill_first_worker(record):
        if not killed:
            pid = int(record["worker"].rsplit(":", 1)[1])
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    res = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=2, retries=2), on_record=kill_first_worker)
    statuses = [r["status"] for _, r in sorted(res.records.items())]
    assert statuses == ["ok"] * 6 + ["invalid"]
    later = [r["worker"] for r in res.records.values() if r.get("worker")]
    assert len(killed) == 1 and len(set(later)) >= 2
    assert all((out / r["output"]).is_file() for r in res.records.values() if r["status"] == "ok")
    assert not list(out.glob(".*partial*"))
