"""The `/v1/videos` service as a FastAPI app: the same app runs on uvicorn (``service.py``, one process) and under
Ray Serve's FastAPI ingress (``ray_serve.py``). The protocol's logic is in ``api.py``; the job table in ``jobs.py``.

Routes: POST/GET /v1/videos, GET/DELETE /v1/videos/{id}, GET /v1/videos/{id}/content, GET /v1/models, GET /health,
the page at /, the OpenAPI description at /docs. Every error is OpenAI's error object with one line; one log line
per request outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from t2vrt.serve import api
from t2vrt.serve.api import APIError, Served
from t2vrt.serve.jobs import Closed, QueueFull, new_id
from t2vrt.serve.render import thumbnail_path, video_path

log = logging.getLogger("t2vrt.serve")
PAGE = Path(__file__).with_name("page")


@dataclass(frozen=True)
class Limits:
    """Request limits our code enforces (the others are uvicorn's settings, see service.py)."""

    max_upload: int = 64 * 2**20  # bytes of a multipart body (an input_reference video)
    max_body: int = 256 * 2**10  # bytes of a JSON or urlencoded body
    body_timeout_s: float = 30.0  # a body that stops arriving for this long gets 408
    cancel_wait_s: float = 10.0  # how long DELETE waits for a running job to stop


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class Guard:
    """ASGI middleware: refuses a body over its cap (by Content-Length, or as it arrives), times out a body that
    stops arriving, adds openai-poll-after-ms, and logs one line per request outcome."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), [0]
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        cap = self.limits.max_upload if multipart else self.limits.max_body
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > cap:
            err = APIError(413, f"request body of {int(length)} bytes is over this service's {cap} bytes")
            await JSONResponse(err.body(), 413, headers={"connection": "close"})(scope, receive, send)
            return self._log(scope, 413, t0, err.message)
        seen, complete = [0], [False]

        async def limited_receive():
            if complete[0]:  # the body is in: later receives wait for a disconnect (streamed responses) untimed
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.limits.body_timeout_s)
            except asyncio.TimeoutError:
                raise BodyTimeout from None
            seen[0] += len(message.get("body", b""))
            complete[0] = message["type"] != "http.request" or not message.get("more_body", False)
            if seen[0] > cap:
                raise BodyTooLarge
            return message

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = dict(message, headers=[*message.get("headers", []),
                                                  (b"openai-poll-after-ms", api.POLL_AFTER_MS.encode())])
            await send(message)

        await self.app(scope, limited_receive, logged_send)
        self._log(scope, status[0], t0, scope.get("state", {}).get("error"))

    @staticmethod
    def _log(scope, status: int, t0: float, error: str | None) -> None:
        ms = (time.perf_counter() - t0) * 1e3
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(level, "%s %s -> %d (%.0f ms)%s", scope["method"], scope["path"], status, ms,
                f": {error}" if error else "")


def create_app(store, served: Served, outdir: str | Path, limits: Limits = Limits()) -> FastAPI:
    """The app over ``store`` (a JobStore, or its Ray actor's proxy) for the model ``served``."""
    outdir, started = Path(outdir), time.time()
    app = FastAPI(title="t2vrt video service", version="1", summary="OpenAI's /v1/videos protocol on t2vrt engines",
                  description="POST /v1/videos takes multipart/form-data (as the openai client sends), "
                              "application/x-www-form-urlencoded or JSON. Fields beyond OpenAI's: "
                              + ", ".join(api.EXTRAS) + ".")
    add_error_handlers(app)
    app.add_middleware(Guard, limits=limits)
    add_service_routes(app, store, served, started)
    add_video_routes(app, store, served, outdir, limits)
    return app


def add_service_routes(app: FastAPI, store, served: Served, started: float) -> None:
    """The page, /health and /v1/models."""

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(PAGE / "index.html", media_type="text/html")

    @app.get("/page.js", include_in_schema=False)
    def page_js():
        return FileResponse(PAGE / "page.js", media_type="text/javascript")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": served.model, "jobs": store.counts()}

    @app.get("/v1/models")
    def models():
        return api.models_object(served, started)


def add_video_routes(app: FastAPI, store, served: Served, outdir: Path, limits: Limits) -> None:
    """/v1/videos: create, list, retrieve, content, delete."""

    @app.post("/v1/videos", openapi_extra={"requestBody": api.request_body_schema()})
    async def create(request: Request):
        fields, upload = await read_fields(request, limits)
        spec = await run_in_threadpool(api.parse_create, fields, served, upload is not None)
        job_id = new_id()
        if upload is not None:
            spec["input"] = api.input_name(job_id, upload.filename)
            await run_in_threadpool(_save_upload, upload, outdir / spec["input"])
            spec = await run_in_threadpool(api.count_input_frames, outdir / spec["input"], spec, served)
        try:
            job = await run_in_threadpool(store.submit, spec | {"id": job_id})
        except (QueueFull, Closed) as e:
            if upload is not None:
                (outdir / spec["input"]).unlink(missing_ok=True)
            if isinstance(e, QueueFull):
                raise APIError(429, str(e), code="queue_full") from None
            raise APIError(503, str(e), code="shutting_down") from None
        v = spec["video"]
        log.info("job %s: queued (%d frames %dx%d, %d steps, seed %d)", job_id, v["num_frames"], v["width"],
                 v["height"], v["num_inference_steps"], v["seed"])
        return api.video_object(job)

    @app.get("/v1/videos")
    def list_videos(after: str | None = None, limit: int = Query(20, ge=1, le=100),
                    order: Literal["asc", "desc"] = "desc"):
        jobs, more = store.list(after, limit, order)
        return api.list_object(jobs, more)

    @app.get("/v1/videos/{video_id}")
    def retrieve(video_id: str):
        return api.video_object(_job(store, video_id))

    @app.get("/v1/videos/{video_id}/content")
    def content(video_id: str, variant: Literal["video", "thumbnail"] = "video"):
        job = _job(store, video_id)
        if job["status"] != "completed":
            raise APIError(409, f"video {video_id} is {job['status']}; its content is there once it is completed",
                           code="video_not_ready")
        path = (video_path if variant == "video" else thumbnail_path)(outdir, video_id)
        if not path.is_file():
            raise APIError(404, f"the {variant} of {video_id} is gone from the service's output folder",
                           code="not_found")
        kind = "video/mp4" if variant == "video" else "image/jpeg"
        return FileResponse(path, media_type=kind, filename=f"{video_id}{path.suffix}")

    @app.delete("/v1/videos/{video_id}")
    def delete(video_id: str):
        return _delete(store, video_id, limits.cancel_wait_s)


async def read_fields(request: Request, limits: Limits) -> tuple[dict, UploadFile | None]:
    """The POST body's fields and its input_reference upload, by Content-Type."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            if kind.endswith("urlencoded") and (await request.body()).lstrip()[:1] == b"{":
                return _json_fields(await request.body()), None  # curl -d '{"prompt": ...}' sends JSON as a form
            form = await request.form(max_files=1, max_fields=len(api.FIELDS) + 4, max_part_size=limits.max_body)
            fields = {k: v for k, v in form.multi_items()}
            upload = fields.get("input_reference")
            if upload is not None and not isinstance(upload, UploadFile):
                raise APIError(400, "input_reference must be a file upload (multipart/form-data)",
                               param="input_reference")
            return {k: v for k, v in fields.items() if not isinstance(v, UploadFile) or k == "input_reference"}, upload
        if kind in ("application/json", ""):
            return _json_fields(await request.body()), None
    except BodyTooLarge:
        raise APIError(413, "request body is over this service's limit") from None
    except BodyTimeout:
        raise APIError(408, f"the request body stopped arriving for {limits.body_timeout_s:g} s") from None
    except ClientDisconnect:
        raise APIError(400, "the client disconnected before the body was complete") from None
    raise APIError(415, f"Content-Type {kind!r} is not supported; send multipart/form-data, "
                   "application/x-www-form-urlencoded or application/json")


def _json_fields(body: bytes) -> dict:
    try:
        obj = json.loads(body or b"null")
    except ValueError as e:
        raise APIError(400, f"body is not JSON ({e}); send e.g. {{\"prompt\": \"a cat\"}}") from None
    if not isinstance(obj, dict):
        raise APIError(400, f"body must be a JSON object like {{\"prompt\": \"a cat\"}}, not {type(obj).__name__}")
    if "input_reference" in obj:
        raise APIError(400, "send input_reference as a file in a multipart/form-data request (references by URL or "
                       "file id are not supported)", param="input_reference")
    return obj


def _save_upload(upload: UploadFile, path: Path) -> None:
    """The uploaded file, copied in chunks (never read whole into memory)."""
    with open(path, "wb") as f:
        shutil.copyfileobj(upload.file, f, 1 << 20)


def _job(store, video_id: str) -> dict:
    job = store.get(api.check_job_id(video_id))
    if job is None:
        raise APIError(404, f"no video {video_id} (finished videos are kept until their expires_at)",
                       param="video_id", code="not_found")
    return job


def _delete(store, video_id: str, wait_s: float) -> dict:
    """Cancel a queued or running job (it stays, failed with code "cancelled"); delete a finished one and its files."""
    job = store.cancel(api.check_job_id(video_id))
    if job is None:
        raise APIError(404, f"no video {video_id}", param="video_id", code="not_found")
    if job["action"] == "cancelling":
        job = store.wait_final(video_id, wait_s)
        if job is not None and job["status"] == "completed":
            raise APIError(409, f"video {video_id} finished before the cancel reached it; DELETE it again to remove "
                           "it", code="already_completed")
        log.info("job %s: cancelled by DELETE", video_id)
    elif job["action"] == "cancelled":
        log.info("job %s: cancelled by DELETE while queued", video_id)
    elif store.delete(video_id):
        log.info("job %s: deleted with its files", video_id)
    return api.deleted_object(video_id)


def add_error_handlers(app: FastAPI) -> None:
    def reply(request: Request, err: APIError) -> JSONResponse:
        request.state.error = str(err.args[0]) if err.args else err.message  # the whole message, for the log
        return JSONResponse(err.body(), err.status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError):
        return reply(request, err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        what = "no route" if err.status_code == 404 else str(err.detail)
        return reply(request, APIError(err.status_code, f"{request.method} {request.url.path}: {what}; see /docs"))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        first = (err.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return reply(request, APIError(422, f"{where}: {first.get('msg', 'invalid')}", param=where))

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return reply(request, APIError(500, f"internal error ({type(err).__name__}); the server log has the details"))
