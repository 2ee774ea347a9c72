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


def kill_first_worker(killed):
    def on_record(record):
        if not killed:
            killed.append(int(record["worker"].rsplit(":", 1)[1]))
            os.kill(killed[0], signal.SIGKILL)

    return on_record


def test_ray_batch_reports_exhausted_retries_resumes_and_gives_the_local_frames(ray_cluster, tiny_engines, tmp_path):
    p, out = prompts(tmp_path / "p.jsonl", 3), tmp_path / "ray"
    local = run_local(tiny_engines, plan(tiny_engines, p, tmp_path / "local"), tmp_path / "local")
    # One worker, no retries: the video it was rendering when killed is reported, the others go on.
    first = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=1, retries=0), on_record=kill_first_worker([]))
    statuses = [r["status"] for _, r in sorted(first.records.items())]
    assert statuses.count("failed") <= 1 and statuses[-1] == "invalid" and statuses.count("ok") >= 2
    assert all("worker died" in r["error"] for r in first.records.values() if r["status"] == "failed")
    again = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=2))  # resume: the rest
    assert [r["status"] for _, r in sorted(again.records.items())].count("invalid") == 1
    assert {again.records[n]["status"] for n in (1, 2, 3)} <= {"ok", "skipped"}
    for n in (1, 2, 3):
        a, b = local.records[n], again.records[n]
        assert (a["output"], a["seed"]) == (b["output"], b["seed"])
        np.testing.assert_array_equal(read_video(out / b["output"]), read_video(tmp_path / "local" / a["output"]))


def test_a_worker_killed_mid_batch_is_retried(ray_cluster, tiny_engines, tmp_path):
    p, out, killed = prompts(tmp_path / "p.jsonl", 6), tmp_path / "out", []
    res = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=2, retries=2),
                  on_record=kill_first_worker(killed))
    statuses = [r["status"] for _, r in sorted(res.records.items())]
    assert statuses == ["ok"] * 6 + ["invalid"]
    assert len(killed) == 1 and len({r["worker"] for r in res.records.values() if r.get("worker")}) >= 2
    assert all((out / r["output"]).is_file() for r in res.records.values() if r["status"] == "ok")
    assert not list(out.glob(".*partial*"))
