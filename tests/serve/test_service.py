"""The standalone service (FastAPI on uvicorn) over real HTTP on 127.0.0.1, one server for the module: the official
openai client end to end, plain multipart curl, the protocol's errors, queue full and cancel."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from t2vrt.runtime.media.video import read_video
from t2vrt.serve.app import Limits
from t2vrt.serve.service import ServerLimits, Service
from tests.serve.client import call, openai_client, wait_for

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the client marks its videos API
SMALL = {"num_frames": 3, "num_inference_steps": 2}
SLOW = {"num_frames": 16, "size": "64x64", "num_inference_steps": 400}


@pytest.fixture(scope="module")
def service(tiny_engines, tmp_path_factory):
    out = tmp_path_factory.mktemp("served")
    s = Service(tiny_engines, out, port=0, max_queued=1, model_name="tiny", limits=Limits(body_timeout_s=1.0),
                server_limits=ServerLimits(max_connections=24, keep_alive_s=1)).start()
    yield s
    s.stop(grace_s=0)


def test_the_openai_client_end_to_end(service, tiny_engines, tmp_path):
    from openai import NotFoundError
    from PIL import Image

    from t2vrt import Pipeline

    client = openai_client(service.url)
    video = client.videos.create_and_poll(prompt="a red cube", model="tiny", size="48x32", seconds="0.5",
                                          extra_body={"num_inference_steps": 2, "seed": 3}, poll_interval_ms=50)
    assert (video.status, video.progress, video.size, video.seconds, video.model) == ("completed", 100, "48x32", "0.5",
                                                                                      "tiny")
    assert video.id.startswith("video_") and video.created_at <= video.completed_at < video.expires_at
    extra = video.model_extra
    assert extra["seed"] == 3 and extra["num_frames"] == 4
    assert {"denoise", "decode", "total"} <= set(extra["stage_seconds"])
    assert client.videos.retrieve(video.id).status == "completed"
    assert video.id in [v.id for v in client.videos.list(limit=100)]

    client.videos.download_content(video.id).write_to_file(tmp_path / "got.mp4")
    got = read_video(tmp_path / "got.mp4")
    ref = Pipeline.load(tiny_engines)("a red cube", seed=3, num_frames=4, height=32, width=48, num_inference_steps=2)
    assert got.shape == (4, 32, 48, 3)
    np.testing.assert_array_equal(got, read_video(ref.save(tmp_path / "ref.mp4")))
    client.videos.download_content(video.id, variant="thumbnail").write_to_file(tmp_path / "thumb.jpg")
    assert Image.open(tmp_path / "thumb.jpg").size == (48, 32)

    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(NotFoundError):
        client.videos.retrieve(video.id)
    assert not list(service.store.outdir.glob(f"*{video.id}*"))


def test_a_random_seed_when_none_is_given_and_the_served_model(service):
    from openai import NotFoundError

    client = openai_client(service.url)
    assert [m.id for m in client.models.list()] == ["tiny"]
    with pytest.raises(NotFoundError) as e:
        client.videos.create(prompt="x", model="sora-2")
    assert e.value.code == "model_not_found" and "'tiny'" in e.value.message
    seeds = {client.videos.create_and_poll(prompt="seeded", extra_body=SMALL, poll_interval_ms=50).model_extra["seed"]
             for _ in range(2)}
    assert len(seeds) == 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_plain_multipart_curl(service, tmp_path):
    out = subprocess.run(["curl", "-sS", "-F", "prompt=a blue ball", "-F", "size=48x32", "-F", "num_frames=3",
                          "-F", "num_inference_steps=2", f"{service.url}/v1/videos"], check=True, capture_output=True,
                         timeout=30)

    video = json.loads(out.stdout)
    assert video["object"] == "video" and video["status"] in ("queued", "in_progress")
    wait_for(service.url, video["id"], ("completed",))
    subprocess.run(["curl", "-sSf", "-o", str(tmp_path / "v.mp4"), f"{service.url}/v1/videos/{video['id']}/content"],
                   check=True, timeout=30)
    assert read_video(tmp_path / "v.mp4").shape == (3, 32, 48, 3)


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": "x", "num_frames": 99}, 422, "num_frames=99"),
    ({"prompt": "x", "size": "48x33"}, 422, "multiple of"),
    ({"prompt": "x", "size": "big"}, 422, "WIDTHxHEIGHT"),
    ({"prompt": "x", "seconds": "4", "num_frames": 3}, 422, "give one of them"),
    ({"prompt": ""}, 400, "prompt is missing"),
    ({"prompt": "x", "stepz": 2, "output": "/etc/passwd"}, 422, "unknown fields 'output', 'stepz'"),
    ({"prompt": "x", "seed": "abc"}, 422, "seed='abc' must be an integer"),
    ({"prompt": "x", "input_reference": "https://example.com/a.png"}, 400, "multipart"),
    ({"prompt": "x", "strength": 0.5}, 422, "video-to-video only"),
    (b"{nope", 400, "not JSON"),
])
def test_bad_requests_get_one_line_in_openai_shape(service, tiny_engines, body, status, words):
    got, reply, _ = call(service.url, "POST", "/v1/videos", body)
    err = reply["error"]
    assert got == status and words in err["message"] and "\n" not in err["message"], reply
    assert set(err) == {"message", "type", "param", "code"} and str(tiny_engines) not in err["message"]
    assert "t2vrt " not in err["message"] and "`" not in err["message"]  # no operator command for a client


def test_lookups_and_list_pages(service):
    assert call(service.url, "GET", "/v1/videos/video_" + "0" * 32)[1]["error"]["code"] == "not_found"
    assert call(service.url, "GET", "/v1/videos/../../etc/passwd")[0] == 404
    assert call(service.url, "GET", "/v1/videos?limit=0")[0] == 422
    assert call(service.url, "GET", "/nowhere")[1]["error"]["message"].startswith("GET /nowhere: no route")
    ids = [call(service.url, "POST", "/v1/videos", {"prompt": f"p{i}", **SMALL})[1]["id"] for i in range(2)]
    for i in ids:
        wait_for(service.url, i, ("completed",))
    page = call(service.url, "GET", "/v1/videos?limit=1&order=desc")[1]
    assert page["object"] == "list" and [v["id"] for v in page["data"]] == ids[1:] and page["has_more"]
    after = call(service.url, "GET", f"/v1/videos?limit=1&order=desc&after={ids[1]}")[1]
    assert [v["id"] for v in after["data"]] == ids[:1]
    asc = call(service.url, "GET", f"/v1/videos?order=asc&after={ids[0]}")[1]["data"]
    assert ids[1] in [v["id"] for v in asc] and ids[0] not in [v["id"] for v in asc]
    status, _, headers = call(service.url, "GET", f"/v1/videos/{ids[0]}")
    assert status == 200 and int(headers["openai-poll-after-ms"]) > 0
    post = call(service.url, "GET", "/openapi.json")[1]["paths"]["/v1/videos"]["post"]
    assert {"prompt", "input_reference", "num_frames"} <= set(
        post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"])
    assert call(service.url, "GET", "/docs")[0] == 200


def test_queue_full_and_cancel(service):
    base = service.url
    first = call(base, "POST", "/v1/videos", {"prompt": "slow", **SLOW})[1]["id"]
    wait_for(base, first, ("in_progress",), timeout=20)
    second = call(base, "POST", "/v1/videos", {"prompt": "waits", **SMALL})[1]["id"]
    status, reply, _ = call(base, "POST", "/v1/videos", {"prompt": "too many", **SMALL})
    assert status == 429 and "queue is full" in reply["error"]["message"]
    assert call(base, "GET", f"/v1/videos/{first}/content")[0] == 409
    assert call(base, "DELETE", f"/v1/videos/{second}")[1]["deleted"] is True
    assert call(base, "DELETE", f"/v1/videos/{first}")[1] == {"id": first, "object": "video.deleted", "deleted": True}
    for job_id in (first, second):
        job = call(base, "GET", f"/v1/videos/{job_id}")[1]
        assert (job["status"], job["error"]["code"]) == ("failed", "cancelled")
    assert not list(service.store.outdir.glob(f"*{first}*")) and not list(service.store.outdir.glob(".*partial*"))


# -- rude requests: a 4xx or a timeout, never a job, a held thread or a traceback -------------------------------------
HEAD = b"POST /v1/videos HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


def test_rude_requests(service, caplog):
    import logging
    import socket
    import threading

    from tests.serve.client import raw, status_of

    before = len(service.store.list(limit=100)[0])
    with caplog.at_level(logging.INFO):
        short = raw(service.url, HEAD + b"Content-Length: 100\r\n\r\n{\"prompt\": \"short\"", wait_s=10)
        assert status_of(short) == 408  # the body stopped arriving (1 s in this module)
        for length in (b"-5", b"abc", b"5, 6"):
            assert status_of(raw(service.url, HEAD + b"Content-Length: " + length + b"\r\n\r\n{}")) == 400
        prompt = b"x" * 2**20
        big = b'{"prompt": "' + prompt + b'"}'
        assert status_of(raw(service.url, HEAD + b"Content-Length: %d\r\n\r\n" % len(big) + big)) == 413
        pieces = [big[i:i + 65536] for i in range(0, len(big), 65536)]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        assert status_of(raw(service.url, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")) == 413
        form = (b"--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" + prompt + b"\r\n--B--\r\n")
        multipart = HEAD.replace(b"application/json", b"multipart/form-data; boundary=B")
        assert status_of(raw(service.url, multipart + b"Content-Length: %d\r\n\r\n" % len(form) + form)) == 400
        huge_head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"y" * 40000  # the head goes on and on
        assert status_of(raw(service.url, huge_head)) == 400  # uvicorn's h11 head-size limit
        threads = threading.active_count()
        idle = [socket.create_connection(service.url.removeprefix("http://").split(":")) for _ in range(30)]
        try:
            assert threading.active_count() <= threads + 1  # idle sockets hold no thread
            assert call(service.url, "GET", "/health")[0] == 503  # over uvicorn's cap of 24 connections
            for s in idle:  # each closed by the server after its 1 s idle timeout
                s.settimeout(10)
                assert s.recv(1) == b""
            assert call(service.url, "GET", "/health")[0] == 200
        finally:
            for s in idle:
                s.close()
    assert len(service.store.list(limit=100)[0]) == before  # none of them became a job
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_input_reference_is_video_to_video(service, tiny_engines, tmp_path):
    from t2vrt import Pipeline

    src = Pipeline.load(tiny_engines)("a source", seed=1, num_frames=4, height=32, width=48, num_inference_steps=2)
    src.save(tmp_path / "src.mp4")
    client = openai_client(service.url)
    with open(tmp_path / "src.mp4", "rb") as f:
        video = client.videos.create_and_poll(prompt="a cat", input_reference=f, poll_interval_ms=50, size="48x32",
                                              extra_body={"strength": 0.5, "num_inference_steps": 2, "seed": 2})
    assert (video.status, video.seconds) == ("completed", "0.5"), video.error
    client.videos.download_content(video.id).write_to_file(tmp_path / "v2v.mp4")
    assert read_video(tmp_path / "v2v.mp4").shape == (4, 32, 48, 3)
    assert not list(service.store.outdir.glob(".*input*"))  # the upload is not kept


def test_input_reference_without_a_vae_encoder_is_refused(tiny_engines_without_encoder, tmp_path):
    from fastapi.testclient import TestClient

    from t2vrt.serve.app import create_app
    from t2vrt.serve.jobs import JobStore
    from t2vrt.serve.service import served_model

    app = create_app(JobStore(tmp_path), served_model(tiny_engines_without_encoder), tmp_path)
    with TestClient(app) as client:
        r = client.post("/v1/videos", data={"prompt": "x"}, files={"input_reference": ("a.mp4", b"0" * 10)})
    assert r.status_code == 400 and "no vae_encoder" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "input_reference" and not list(tmp_path.glob(".*input*"))


def test_a_cancel_that_comes_too_late_says_the_job_finished(tiny_engines, tmp_path):
    import threading

    from fastapi.testclient import TestClient

    from t2vrt.serve.app import create_app
    from t2vrt.serve.jobs import JobStore
    from t2vrt.serve.service import served_model

    store = JobStore(tmp_path)
    app = create_app(store, served_model(tiny_engines), tmp_path)
    with TestClient(app) as client:
        job = client.post("/v1/videos", json={"prompt": "x", **SMALL}).json()
        assert store.take("w")["id"] == job["id"]
        # the worker writes the video before its next step sees the cancel (what Worker.run_job does then)
        threading.Timer(0.3, store.finish, (job["id"], "completed")).start()
        r = client.delete(f"/v1/videos/{job['id']}")
        assert r.status_code == 409 and "finished before the cancel" in r.json()["error"]["message"]
        assert client.get(f"/v1/videos/{job['id']}").json()["status"] == "completed"
        assert client.delete(f"/v1/videos/{job['id']}").json()["deleted"] is True
        assert client.get(f"/v1/videos/{job['id']}").status_code == 404
