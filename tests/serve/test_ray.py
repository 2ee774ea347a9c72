"""Batch and service on one local 2-CPU Ray cluster (one file, so one pytest-xdist worker starts it): `t2vrt batch
--ray` gives the local run's frames and retries a killed worker; the job API under Ray Serve with two replicas, over
real HTTP on 127.0.0.1, driven by the official openai client."""

import json
import os
import signal
import socket

import numpy as np
import pytest

from t2vrt.runtime.media.video import read_video
from t2vrt.serve.batch import plan, run_local
from t2vrt.serve.ray_batch import RayOptions, run_ray
from tests.serve.client import call, openai_client, wait_for

pytestmark = pytest.mark.ray
SMALL = {"num_frames": 4, "height": 32, "width": 48, "num_inference_steps": 3}
SERVE_SMALL = {"num_frames": 3, "size": "48x32", "num_inference_steps": 2}
SLOW = {"num_frames": 16, "size": "64x64", "num_inference_steps": 400}


def prompts(path, n, steps: dict[int, int] | None = None):
    """n SMALL lines (then one bad line); ``steps``: line number (from 1) -> its num_inference_steps instead."""
    rows = [{"prompt": f"prompt number {i}", "seed": 10 + i, **SMALL,
             **({"num_inference_steps": steps[i + 1]} if i + 1 in (steps or {}) else {})} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{bad\n")
    return path


def by_line(results) -> dict:
    """Records by line number (results.jsonl keys them by prompt file, line and text)."""
    return {r["line"]: r for r in results.records.values()}


def kill_worker_after(lines, killed):
    """on_record: after the record of each line in ``lines``, kill the worker that rendered it (by then rendering
    the next line); ``killed`` collects the pids."""
    def on_record(record):
        if record["line"] in lines:
            killed.append(int(record["worker"].rsplit(":", 1)[1]))
            os.kill(killed[-1], signal.SIGKILL)

    return on_record


def test_ray_batch_reports_exhausted_retries_retries_on_resume_and_gives_the_local_frames(ray_cluster, tiny_engines,
                                                                                           tmp_path):
    # Lines 2 and 4 take 60 steps (seconds), so a kill after the record of line 1 or 3 lands while the one worker
    # renders the next line.
    p, out = prompts(tmp_path / "p.jsonl", 4, steps={2: 60, 4: 60}), tmp_path / "ray"
    local = run_local(tiny_engines, plan(tiny_engines, p, tmp_path / "local"), tmp_path / "local")
    # No retries: the videos being rendered when their worker was killed are reported, the others go on.
    first = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=1, retries=0),
                    on_record=kill_worker_after({1, 3}, []))
    statuses = [r["status"] for _, r in sorted(by_line(first).items())]
    assert statuses == ["ok", "failed", "ok", "failed", "invalid"]
    assert "its worker died while rendering it, 1 time(s) (--retries 0)" in by_line(first)[2]["error"]
    # Resume: lines 2 and 4 are left; the worker is killed again while it renders line 4, and the retry renders it.
    killed = []
    again = run_ray(tiny_engines, plan(tiny_engines, p, out), out, opts=RayOptions(workers=1, retries=2),
                    on_record=kill_worker_after({2}, killed))
    assert len(killed) == 1 and [r["status"] for r in again.records.values()].count("invalid") == 1
    assert {by_line(again)[n]["status"] for n in (1, 2, 3, 4)} == {"ok"}
    assert by_line(again)[4]["worker"] != by_line(again)[2]["worker"]  # rendered again by the restarted worker
    for n in (1, 2, 3, 4):
        a, b = by_line(local)[n], by_line(again)[n]
        assert (a["output"], a["seed"]) == (b["output"], b["seed"])
        np.testing.assert_array_equal(read_video(out / b["output"]), read_video(tmp_path / "local" / a["output"]))
    assert not list(out.glob(".*partial*"))


# -- Ray Serve ------------------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_two_replicas_serve_the_openai_protocol_over_one_job_table(ray_cluster, tiny_engines, tmp_path):
    from t2vrt.serve import ray_serve

    port, out = free_port(), tmp_path / "videos"
    board = ray_serve.start(tiny_engines, out, port=port, replicas=2, cpus_per_replica=0.5, max_queued=2, grace_s=1,
                            model_name="tiny")
    base = f"http://127.0.0.1:{port}"
    client = openai_client(base)
    try:
        video = client.videos.create_and_poll(prompt="a red cube", model="tiny", size="48x32", seconds="0.375",
                                              extra_body={"num_inference_steps": 2, "seed": 3}, poll_interval_ms=50)
        assert (video.status, video.progress, video.model_extra["seed"]) == ("completed", 100, 3)
        assert client.videos.retrieve(video.id).status == "completed"
        assert video.id in [v.id for v in client.videos.list()]
        client.videos.download_content(video.id).write_to_file(tmp_path / "got.mp4")
        assert read_video(tmp_path / "got.mp4").shape == (3, 32, 48, 3)
        assert client.videos.download_content(video.id, variant="thumbnail").content[:2] == b"\xff\xd8"  # a JPEG
        assert client.videos.delete(video.id).deleted is True

        assert call(base, "POST", "/v1/videos", {"prompt": "x", "num_frames": 99})[0] == 422
        slow = [call(base, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"] for _ in range(2)]
        for i in slow:
            wait_for(base, i, ("in_progress",), timeout=30)
        workers = {ray_cluster.get(board.call.remote("get", i))["worker"] for i in slow}
        queued = [call(base, "POST", "/v1/videos", {"prompt": "q", **SERVE_SMALL})[0] for _ in range(3)]
        assert queued == [200, 200, 429]
        assert call(base, "DELETE", f"/v1/videos/{slow[0]}")[1]["deleted"] is True
        assert wait_for(base, slow[0], ("failed",), timeout=20)["error"]["code"] == "cancelled"
    finally:
        ray_serve.stop(board)
    assert len(workers) == 2  # both replicas render at once: one model load each, one job table
    names = {p.name for p in out.iterdir()}
    assert f"{slow[0]}.mp4" not in names and not [n for n in names if n.startswith(".")]  # nothing partial
