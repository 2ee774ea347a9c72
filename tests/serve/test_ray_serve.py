"""The job API under Ray Serve with two replicas, over real HTTP on 127.0.0.1."""

import socket

import pytest

from tests.serve.client import call, wait_for

pytestmark = pytest.mark.ray
SMALL = {"num_frames": 3, "height": 32, "width": 48, "num_inference_steps": 2}
SLOW = {"num_frames": 16, "height": 64, "width": 64, "num_inference_steps": 400}


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
        ids = [call(base, "POST", "/v1/videos", {"prompt": f"p{i}", "seed": i, **SMALL})[1]["id"] for i in range(3)]
        jobs = [wait_for(base, i, ("done", "failed"), timeout=60) for i in ids]
        assert [j["status"] for j in jobs] == ["done"] * 3
        status, mp4, headers = call(base, "GET", jobs[0]["content"])
        assert status == 200 and headers["Content-Type"] == "video/mp4" and len(mp4) > 100

        assert call(base, "POST", "/v1/videos", {"prompt": "x", "num_frames": 99})[0] == 422
        slow = [call(base, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"] for _ in range(2)]
        for i in slow:
            wait_for(base, i, ("running",), timeout=30)
        workers = {ray_cluster.get(board.call.remote("get", i))["worker"] for i in slow}
        queued = [call(base, "POST", "/v1/videos", {"prompt": "q", **SMALL})[0] for _ in range(3)]
        assert queued == [202, 202, 429]
        assert call(base, "DELETE", f"/v1/videos/{slow[0]}")[1]["status"] == "cancelling"
        assert wait_for(base, slow[0], ("cancelled",), timeout=20)
    finally:
        ray_serve.stop(board)
    assert len(workers) == 2  # both replicas render at once: one model load each, one job table
    names = {p.name for p in out.iterdir()}
    assert {f"{i}.mp4" for i in ids} <= names and f"{slow[0]}.mp4" not in names
    assert not [n for n in names if n.startswith(".")]  # no partial file after the graceful shutdown
