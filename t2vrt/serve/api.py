"""The video job API as plain request -> reply logic, hosted by ``http.py`` (one process) or ``ray_serve.py``.

POST   /v1/videos                 JSON of a batch line -> 202 {"id", "status", "url"}; 400/422 bad request, 429 full
GET    /v1/videos/{id}            status, progress (0..1), seconds per stage, error
GET    /v1/videos/{id}/content    the mp4 once done (409 before)
DELETE /v1/videos/{id}            cancel a queued or running job; a finished one is forgotten and its video removed
GET    /v1/health                 job counts
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from t2vrt.errors import T2VError
from t2vrt.serve.jobs import Closed, QueueFull, video_path
from t2vrt.serve.request import RequestChecker, VideoRequest, parse_request

MAX_BODY = 64 * 1024
PUBLIC = ("id", "status", "progress", "created", "started", "finished", "seconds", "seed", "error")
_JOB = re.compile(r"^/v1/videos/([0-9a-f]{32})(/content)?$")


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: dict, **headers: str) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers})


def error(status: int, message: str, **headers: str) -> Reply:
    return json_reply(status, {"error": message}, **headers)


class VideoAPI:
    """Routes requests to a job store; checks each request against the engine directory before queueing it."""

    def __init__(self, store, check: RequestChecker, outdir: str | Path, defaults: VideoRequest = VideoRequest()):
        self.store, self.check, self.outdir, self.defaults = store, check, Path(outdir), defaults

    def handle(self, method: str, path: str, body: bytes = b"") -> Reply:
        path = path.rstrip("/") or "/"
        if path == "/v1/videos":
            return self.submit(body) if method == "POST" else error(405, f"{method} {path}: use POST")
        if path == "/v1/health":
            return json_reply(200, {"status": "ok", "jobs": self.store.counts()})
        m = _JOB.match(path)
        if m is None:
            return error(404, f"no route {path}; see POST /v1/videos")
        job_id, content = m.group(1), bool(m.group(2))
        if method == "GET":
            return self.content(job_id) if content else self.status(job_id)
        if method == "DELETE" and not content:
            return self.cancel(job_id)
        return error(405, f"{method} {path} is not allowed")

    def submit(self, body: bytes) -> Reply:
        if len(body) > MAX_BODY:
            return error(413, f"request body over {MAX_BODY} bytes")
        try:
            obj = json.loads(body or b"null")
        except ValueError as e:
            return error(400, f"body is not JSON ({e}); send e.g. {{\"prompt\": \"a cat\", \"seed\": 1}}")
        if isinstance(obj, dict) and "output" in obj:
            return error(422, "\"output\" is chosen by the service; download the video from /v1/videos/{id}/content")
        try:
            req = parse_request(obj, self.defaults)
            self.check(req)
        except T2VError as e:
            return error(422, str(e))
        try:
            job = self.store.submit(asdict(req))
        except QueueFull as e:
            return error(429, str(e), **{"Retry-After": "5"})
        except Closed as e:
            return error(503, str(e))
        url = f"/v1/videos/{job['id']}"
        return json_reply(202, {"id": job["id"], "status": job["status"], "url": url}, Location=url)

    def status(self, job_id: str) -> Reply:
        job = self.store.get(job_id)
        if job is None:
            return error(404, f"no job {job_id}")
        out = {k: job.get(k) for k in PUBLIC}
        if job["status"] == "running" and job.get("cancel"):
            out["status"] = "cancelling"
        if job["status"] == "done":
            out["content"] = f"/v1/videos/{job_id}/content"
        return json_reply(200, out)

    def content(self, job_id: str) -> Reply:
        job = self.store.get(job_id)
        if job is None:
            return error(404, f"no job {job_id}")
        if job["status"] != "done":
            return error(409, f"job {job_id} is {job['status']}; poll GET /v1/videos/{job_id} until it is done")
        path = video_path(self.outdir, job_id)
        if not path.is_file():
            return error(410, f"the video of job {job_id} is gone from the service's output folder")
        return Reply(200, path.read_bytes(), {"Content-Type": "video/mp4"})

    def cancel(self, job_id: str) -> Reply:
        job = self.store.cancel(job_id)
        if job is None:
            return error(404, f"no job {job_id}")
        if job["action"] == "cancelling":
            return json_reply(202, {"id": job_id, "status": "cancelling"})
        if job["action"] == "cancelled":
            return json_reply(200, {"id": job_id, "status": "cancelled"})
        video_path(self.outdir, job_id).unlink(missing_ok=True)  # a finished job: forgotten with its video
        return json_reply(200, {"id": job_id, "status": "deleted"})
