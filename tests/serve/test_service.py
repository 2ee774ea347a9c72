"""The standalone job service over real HTTP on 127.0.0.1: submit, poll, download, cancel, queue full, bad
requests, graceful shutdown."""

import pytest

from t2vrt.runtime.media.video import read_video
from t2vrt.serve.http import Service
from tests.serve.client import call, wait_for

SMALL = {"num_frames": 3, "height": 32, "width": 48, "num_inference_steps": 2}
SLOW = {"num_frames": 16, "height": 64, "width": 64, "num_inference_steps": 400}


@pytest.fixture
def service(tiny_engines, tmp_path):
    s = Service(tiny_engines, tmp_path / "videos", port=0, max_queued=1).start()
    yield s
    s.stop(grace_s=0)


def test_submit_poll_download(service, tiny_engines, tmp_path):
    from t2vrt import Pipeline

    status, body, headers = call(service.url, "POST", "/v1/videos", {"prompt": "a red cube", "seed": 3, **SMALL})
    assert status == 202 and headers["Location"] == body["url"]
    job = wait_for(service.url, body["id"], ("done", "failed"))
    assert job["status"] == "done" and job["progress"] == 1.0 and job["seed"] == 3
    assert set(job["seconds"]) >= {"encode_prompt", "denoise", "decode", "total"}
    status, mp4, headers = call(service.url, "GET", job["content"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    got = tmp_path / "got.mp4"
    got.write_bytes(mp4)
    ref = Pipeline.load(tiny_engines)("a red cube", seed=3, **SMALL).save(tmp_path / "ref.mp4")
    assert (read_video(got) == read_video(ref)).all()
    assert call(service.url, "DELETE", body["url"])[1]["status"] == "deleted"
    assert call(service.url, "GET", body["url"])[0] == 404


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": "x", "num_frames": 99}, 422, "num_frames=99"),
    ({"prompt": "x", "height": 33}, 422, "multiple of"),
    ({"prompt": ""}, 422, "prompt is missing"),
    ({"prompt": "x", "stepz": 2}, 422, "unknown key 'stepz'"),
    ({"prompt": "x", "output": "/etc/passwd"}, 422, "chosen by the service"),
    (b"{nope", 400, "not JSON"),
])
def test_bad_requests_get_one_line(service, body, status, words):
    got, reply, _ = call(service.url, "POST", "/v1/videos", body)
    assert got == status and words in reply["error"] and "\n" not in reply["error"]
    assert call(service.url, "GET", "/v1/videos/" + "0" * 32)[0] == 404


def test_queue_full_and_cancel(service):
    base = service.url
    first = call(base, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"]
    wait_for(base, first, ("running",), timeout=20)
    second = call(base, "POST", "/v1/videos", {"prompt": "waits", **SMALL})[1]["id"]
    status, reply, headers = call(base, "POST", "/v1/videos", {"prompt": "too many", **SMALL})
    assert status == 429 and "queue is full" in reply["error"] and headers["Retry-After"]
    assert call(base, "DELETE", f"/v1/videos/{second}")[1]["status"] == "cancelled"
    assert call(base, "DELETE", f"/v1/videos/{first}") [:2] == (202, {"id": first, "status": "cancelling"})
    assert wait_for(base, first, ("cancelled", "done"), timeout=20)["status"] == "cancelled"
    assert call(base, "GET", f"/v1/videos/{first}/content")[0] == 409
    assert list(service.api.outdir.iterdir()) == []


def test_graceful_shutdown_leaves_no_partial_file(tiny_engines, tmp_path):
    s = Service(tiny_engines, tmp_path / "videos", port=0).start()
    job = call(s.url, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"]
    wait_for(s.url, job, ("running",), timeout=20)
    queued = call(s.url, "POST", "/v1/videos", {"prompt": "queued", **SMALL})[1]["id"]
    s.stop(grace_s=0.2)
    assert s.store.get(job)["status"] == "cancelled" and s.store.get(queued)["status"] == "cancelled"
    assert list((tmp_path / "videos").iterdir()) == []
