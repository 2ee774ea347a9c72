"""The job table in SQLite: a restart keeps finished jobs, fails interrupted ones and removes their partial files,
expired jobs lose their files; list pages; cancel at each stage. No model, no server."""

import time

from t2vrt.serve.jobs import JobStore
from t2vrt.serve.render import thumbnail_path, video_path

REQUEST = {"model": "tiny", "video": {"prompt": "x"}, "extras": {}, "fps": 8.0}


def test_a_restart_keeps_finished_jobs_and_fails_interrupted_ones(tmp_path):
    store = JobStore(tmp_path, keep_s=3600)
    done, running, queued = (store.submit(dict(REQUEST))["id"] for _ in range(3))
    assert store.take("w")["id"] == done
    video_path(tmp_path, done).write_bytes(b"mp4")
    store.finish(done, "completed", seconds={"total": 1.0}, seed=5)
    assert store.take("w")["id"] == running
    partial = tmp_path / f".{running}.partial-1-2.mp4"  # what a crash during the write leaves
    partial.write_bytes(b"half")
    store.release()  # the process dies here

    again = JobStore(tmp_path, keep_s=3600)
    assert sorted(again.interrupted) == sorted([running, queued])
    job = again.get(done)
    assert (job["status"], job["progress"], job["seed"], job["seconds"]) == ("completed", 100, 5, {"total": 1.0})
    assert video_path(tmp_path, done).read_bytes() == b"mp4"
    for i in (running, queued):
        assert (again.get(i)["status"], again.get(i)["error_code"]) == ("failed", "interrupted")
    assert not partial.exists() and again.take("w", timeout=0) is None


def test_one_service_per_output_folder(tmp_path):
    import pytest

    from t2vrt.errors import BusyError

    store = JobStore(tmp_path)
    with pytest.raises(BusyError, match="is being written by"):
        JobStore(tmp_path)
    store.release()
    JobStore(tmp_path).release()


def test_expired_jobs_are_forgotten_with_their_files(tmp_path):
    store = JobStore(tmp_path, keep_s=0.05)
    job = store.submit(dict(REQUEST))["id"]
    store.take("w")
    for p in (video_path(tmp_path, job), thumbnail_path(tmp_path, job)):
        p.write_bytes(b"x")
    store.finish(job, "completed")
    time.sleep(0.1)
    assert store.expire() == [job] and store.get(job) is None
    assert {p.name for p in tmp_path.iterdir()} - {".t2vrt.lock"} == {p.name for p in tmp_path.glob("jobs.sqlite*")}


def test_cancel_at_each_stage_and_list_pages(tmp_path):
    store = JobStore(tmp_path, max_queued=2)
    a, b = (store.submit(dict(REQUEST))["id"] for _ in range(2))
    assert store.take("w")["id"] == a
    assert store.cancel(b)["action"] == "cancelled" and store.get(b)["error_code"] == "cancelled"
    assert store.cancel(a)["action"] == "cancelling" and store.progress(a, 1, 4) is False
    store.finish(a, "failed", error_code="cancelled", error="cancelled")
    assert store.cancel(a)["action"] == "finished" and store.delete(a) and store.get(a) is None
    assert store.cancel("video_" + "f" * 32) is None
    c = store.submit(dict(REQUEST))["id"]
    assert store.list(limit=1, order="asc") == ([store.get(b)], True)
    assert [j["id"] for j in store.list(after=b, order="asc")[0]] == [c]
    assert [j["id"] for j in store.list(order="desc")[0]] == [c, b]
    assert store.close() == [] and store.get(c)["error_code"] == "cancelled"
