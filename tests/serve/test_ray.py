"""Batch and service on one local 2-CPU Ray cluster (one file, so one pytest-xdist worker starts it): `t2vrt batch
--ray` gives the local run's frames and retries a killed worker; the job API under Ray Serve with two replicas, over
real HTTP on 127.0.0.1."""

import json
import os
import signal
import socket

import numpy as np
import pytest

from t2vrt.runtime.media.video import read_video
from t2vrt.serve.batch import plan, run_local
from t2vrt.serve.ray_batch import RayOptions, run_ray
from tests.serve.client import call, wait_for

pytestmark = pytest.mark.ray
SMALL = {"num_frames": 4, "height": 32, "width": 48, "num_inference_steps": 3}
SERVE_SMALL = {"num_frames": 3, "height": 32, "width": 48, "num_inference_steps": 2}
SLOW = {"num_frames": 16, "height": 64, "width": 64, "num_inference_steps": 400}


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
    first = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=1, retries=0),
                    on_record=kill_first_worker([]))
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


# -- Ray Serve ------------------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_share_the_job_table(ray_cluster, tiny_engines, tmp_path):
    from t2vrt.serve import ray_serve

    port, out = free_port(), tmp_path / "videos"
    board = ray_serve.start(tiny_engines, out, port=port, replicas=2, cpus_per_replica=0.5, max_queued=2, grace_s=1)
    base = f"http://127.0.0.1:{port}"
    try:
        ids = [call(base, "POST", "/v1/videos",
                    {"prompt": f"p{i}", "seed": i, **SERVE_SMALL})[1]["id"] for i in range(3)]
        jobs = [wait_for(base, i, ("done", "failed"), timeout=60) for i in ids]
        assert [j["status"] for j in jobs] == ["done"] * 3
        status, mp4, headers = call(base, "GET", jobs[0]["content"])
        assert status == 200 and headers["Content-Type"] == "video/mp4" and len(mp4) > 100

        assert call(base, "POST", "/v1/videos", {"prompt": "x", "num_frames": 99})[0] == 422
        slow = [call(base, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"] for _ in range(2)]
        for i in slow:
            wait_for(base, i, ("running",), timeout=30)
        workers = {ray_cluster.get(board.call.remote("get", i))["worker"] for i in slow}
        queued = [call(base, "POST", "/v1/videos", {"prompt": "q", **SERVE_SMALL})[0] for _ in range(3)]
        assert queued == [202, 202, 429]
        assert call(base, "DELETE", f"/v1/videos/{slow[0]}")[1]["status"] == "cancelling"
        assert wait_for(base, slow[0], ("cancelled",), timeout=20)
    finally:
        ray_serve.stop(board)
    assert len(workers) == 2  # both replicas render at once: one model load each, one job table
    names = {p.name for p in out.iterdir()}
    assert {f"{i}.mp4" for i in ids} <= names and f"{slow[0]}.mp4" not in names
    assert not [n for n in names if n.startswith(".")]  # no partial file after the graceful shutdown
