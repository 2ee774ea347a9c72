"""The `/v1/videos` protocol as OpenAI defined it (and vLLM-Omni and trtllm-serve serve it), with no web framework:
form fields -> a checked job, a job -> the video object, errors in OpenAI's shape. ``app.py`` puts it on FastAPI.

Ours beyond the protocol: the extra fields of POST (EXTRAS), and in the video object ``seed`` (the one used, random
when not given), ``num_frames``, ``fps``, ``num_inference_steps`` and ``stage_seconds`` (seconds per stage).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from t2vrt.errors import T2VError
from t2vrt.serve.request import RequestChecker, VideoRequest

PROTOCOL = ("prompt", "model", "size", "seconds", "input_reference")
EXTRAS = ("negative_prompt", "num_frames", "num_inference_steps", "guidance_scale", "seed", "scheduler", "fps",
          "context_frames", "context_stride", "strength")
FIELDS = PROTOCOL + EXTRAS
INTS = ("num_frames", "num_inference_steps", "seed", "context_frames", "context_stride")
FLOATS = ("seconds", "guidance_scale", "fps", "strength")
MAX_PROMPT = 4000  # characters; the text encoder reads 77 tokens of it
POLL_AFTER_MS = "500"
SERVE_DEFAULTS = VideoRequest(seed=None)  # a request without a seed gets a random one, unless `serve --seed` fixes it
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")
_CLAUSE_WITH_COMMAND = re.compile(r"`|\bt2vrt \w")
_PATH = re.compile(r"'(?:/|[A-Za-z]:\\)[^']*'")


class APIError(Exception):
    """An error reply: HTTP ``status`` and OpenAI's error object."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, client_message(message), param, code

    def body(self) -> dict:
        kind = "rate_limit_error" if self.status == 429 else "server_error" if self.status >= 500 else \
            "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def client_message(message: str) -> str:
    """One line for a client: clauses naming an operator's command dropped, server paths hidden (the whole message
    goes to the server log)."""
    clauses = [c for c in str(message).splitlines()[0].split("; ") if not _CLAUSE_WITH_COMMAND.search(c)]
    return _PATH.sub("(a server path)", "; ".join(clauses) or "the request was refused")


@dataclass(frozen=True)
class Served:
    """What the service serves and its request defaults: one engine directory under one model name."""

    model: str
    check: RequestChecker
    defaults: VideoRequest = SERVE_DEFAULTS
    fps: float = 8.0
    keep_s: float = 24 * 3600.0

    @property
    def size(self) -> tuple[int, int]:
        """The default (width, height): the model's native size, or the profile's opt size where the native one is
        outside the engine directory's range (as `t2vrt generate`)."""
        m, p = self.check.manifest.model, self.check.manifest.profile
        native = m.sample_size * m.vae_scale
        def fit(rng) -> int:
            return native if rng[0] <= native <= rng[2] else rng[1]

        return fit(p.width), fit(p.height)

    @property
    def video_to_video(self) -> bool:
        return "vae_encoder" in self.check.manifest.components


def parse_create(fields: dict, served: Served, has_file: bool) -> dict:
    """The fields of POST /v1/videos (form strings or JSON values) -> the job's request (plain data), checked
    against the engine directory. APIError for an unknown field, a bad value or another model."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise APIError(422, f"unknown field{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; allowed: "
                       f"{', '.join(FIELDS)}", param=unknown[0], code="unknown_parameter")
    values = {k: _typed(k, v) for k, v in fields.items() if k != "input_reference" and v is not None and v != ""}
    model = values.pop("model", None)
    if model is not None and model != served.model:
        raise APIError(404, f"model {model!r} is not served here; this service serves {served.model!r} "
                       "(GET /v1/models)", param="model", code="model_not_found")
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise APIError(400, "prompt is missing or empty: give prompt=\"what the video shows\"", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise APIError(400, f"prompt is {len(prompt)} characters; at most {MAX_PROMPT} (the text encoder reads the "
                       "first 77 tokens)", param="prompt")
    if has_file and not served.video_to_video:
        raise APIError(400, "input_reference needs video-to-video, which this model's engine directory does not "
                       "have (no vae_encoder); send the prompt alone", param="input_reference")
    for key in ("seconds", "num_frames"):
        if has_file and key in values:
            raise APIError(422, f"{key} does not go with input_reference: the input's frames are re-rendered, as many "
                           "as it has", param=key)
    fps = values.pop("fps", served.fps)
    if not (math.isfinite(fps) and 0 < fps <= 240):
        raise APIError(422, f"fps={fps:g} must be in (0, 240]", param="fps")
    video = _video_request(values, served, fps)
    extras = {k: values[k] for k in ("context_frames", "context_stride", "strength") if k in values}
    try:
        served.check(video)
        _check_extras(extras, has_file)
    except T2VError as e:
        raise APIError(422, str(e)) from None
    return {"model": served.model, "video": asdict(video), "extras": extras, "fps": fps}


def _typed(key: str, v: object) -> object:
    if isinstance(v, (bool, dict, list)):
        raise APIError(422, f"{key}={v!r} must be {'a number' if key in INTS + FLOATS else 'a string'}", param=key)
    try:
        if key in INTS:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            return int(v) if not isinstance(v, str) else int(v.strip())
        if key in FLOATS:
            return float(v)
    except (TypeError, ValueError, OverflowError):
        what = "an integer" if key in INTS else "a number"
        raise APIError(422, f"{key}={v!r} must be {what}", param=key) from None
    if not isinstance(v, str):
        raise APIError(422, f"{key}={v!r} must be a string", param=key)
    return v


def _video_request(values: dict, served: Served, fps: float) -> VideoRequest:
    d = served.defaults
    width, height = d.width or served.size[0], d.height or served.size[1]
    if "size" in values:
        m = _SIZE.match(values["size"])
        if m is None:
            raise APIError(422, f"size={values['size']!r} must be WIDTHxHEIGHT, e.g. \"{width}x{height}\"",
                           param="size")
        width, height = int(m.group(1)), int(m.group(2))
    frames = values.get("num_frames", d.num_frames)
    if "seconds" in values:
        seconds = values["seconds"]
        by_seconds = round(seconds * fps) if math.isfinite(seconds) and 0 < seconds < 3600 else 0
        if by_seconds < 1:
            raise APIError(422, f"seconds={seconds:g} must be > 0 and at most 3600", param="seconds")
        if "num_frames" in values and values["num_frames"] != by_seconds:
            raise APIError(422, f"seconds={seconds:g} at fps={fps:g} is {by_seconds} frames but num_frames="
                           f"{values['num_frames']}; give one of them", param="num_frames")
        frames = by_seconds
    seed = values.get("seed", d.seed)
    if seed is None:
        seed = secrets.randbelow(2**31)  # never a fixed 0
    keep = {k: values[k] for k in ("negative_prompt", "num_inference_steps", "guidance_scale", "scheduler")
            if k in values}
    return replace(d, prompt=values["prompt"], num_frames=frames, height=height, width=width, seed=seed, **keep)


def _check_extras(extras: dict, has_file: bool) -> None:
    from t2vrt.errors import InputError

    if "strength" in extras and not has_file:
        raise InputError("strength applies to video-to-video only; send input_reference with it, or leave it out")
    if "strength" in extras and not 0 < extras["strength"] <= 1:
        raise InputError(f"strength={extras['strength']:g} must be in (0, 1]")
    for k in ("context_frames", "context_stride"):
        if k in extras and extras[k] < 1:
            raise InputError(f"{k}={extras[k]} must be >= 1")


def request_body_schema() -> dict:
    """POST /v1/videos's body for the OpenAPI description (the app parses it by hand: three content types)."""
    kinds = {k: "integer" for k in INTS} | {k: "number" for k in FLOATS}
    props = {k: {"type": kinds.get(k, "string")} for k in FIELDS if k != "input_reference"}
    props["size"]["example"], props["seconds"] = "256x256", {"type": "string", "example": "2"}
    form = {"type": "object", "required": ["prompt"],
            "properties": props | {"input_reference": {"type": "string", "format": "binary"}}}
    plain = {"type": "object", "required": ["prompt"], "properties": props}
    return {"required": True, "content": {"multipart/form-data": {"schema": form},
                                          "application/x-www-form-urlencoded": {"schema": plain},
                                          "application/json": {"schema": plain}}}


def video_object(job: dict) -> dict:
    """A job as OpenAI's video object, plus ours (seed, num_frames, fps, num_inference_steps, stage_seconds)."""
    spec, video = job["request"], job["request"]["video"]
    error = None
    if job["status"] == "failed":
        error = {"code": job["error_code"] or "failed", "message": client_message(job["error"] or "failed")}
    return {
        "id": job["id"], "object": "video", "status": job["status"], "progress": int(job["progress"]),
        "created_at": _unix(job["created_at"]), "completed_at": _unix(job["completed_at"]),
        "expires_at": _unix(job["expires_at"]), "model": spec["model"], "prompt": video["prompt"],
        "size": f"{video['width']}x{video['height']}", "seconds": f"{video['num_frames'] / spec['fps']:g}",
        "remixed_from_video_id": None, "error": error,
        "seed": job["seed"] if job["seed"] is not None else video["seed"], "num_frames": video["num_frames"],
        "fps": spec["fps"], "num_inference_steps": video["num_inference_steps"], "stage_seconds": job["seconds"],
    }


def _unix(t: float | None) -> int | None:
    return None if t is None else int(t)


def list_object(jobs: list[dict], has_more: bool) -> dict:
    data = [video_object(j) for j in jobs]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def models_object(served: Served, created: float) -> dict:
    return {"object": "list", "data": [{"id": served.model, "object": "model", "created": int(created),
                                        "owned_by": "t2vrt"}]}


def deleted_object(job_id: str) -> dict:
    return {"id": job_id, "object": "video.deleted", "deleted": True}


def check_job_id(job_id: str) -> str:
    if not re.fullmatch(r"video_[0-9a-f]{32}", job_id):
        raise APIError(404, f"no video {job_id[:80]!r}; ids look like video_ and 32 hex digits", param="video_id",
                       code="not_found")
    return job_id


def input_name(job_id: str, filename: str | None) -> str:
    """Where an uploaded input_reference is kept in the output folder (hidden; removed with the job)."""
    suffix = Path(filename or "").suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ""
    return f".{job_id}-input{suffix}"


def now() -> float:
    return time.time()


def count_input_frames(path: Path, spec: dict, served: Served) -> dict:
    """The job's request with num_frames = the uploaded input's frame count (the input decoded and checked once
    here: a file that is not a video or image, or has more frames than the served range, is a 400)."""
    from t2vrt.runtime.media.frames import load_frames

    windows = spec["extras"].get("context_frames") is not None
    try:
        frames = load_frames(path, max_frames=None if windows else served.check.manifest.profile.frames[2])
    except T2VError as e:
        path.unlink(missing_ok=True)
        raise APIError(400, f"input_reference: {e}", param="input_reference") from None
    return spec | {"video": spec["video"] | {"num_frames": len(frames)}}
