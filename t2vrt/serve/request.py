"""One video request (a line of a batch file, or the body of POST /v1/videos): parsed, defaulted, checked."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import SimpleNamespace

from t2vrt.errors import InputError, SchedulerError
from t2vrt.manifest import Manifest
from t2vrt.runtime.checks import check_positive, check_request
from t2vrt.runtime.media.video import check_output_path
from t2vrt.textcheck import check_utf8

INTS = ("seed", "num_frames", "num_inference_steps")
OPTIONAL_INTS = ("height", "width")


@dataclass(frozen=True)
class VideoRequest:
    """What one video needs; the defaults are `t2vrt generate`'s, so the same line gives the same frames."""

    prompt: str = ""
    negative_prompt: str | None = None
    seed: int = 0
    num_frames: int = 16
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 50  # generate's (and diffusers') default
    guidance_scale: float = 9.0
    scheduler: str | None = None
    output: str | None = None

    def call_kwargs(self) -> dict:
        """Keyword arguments of ``Pipeline.__call__`` (everything but the prompt and the output path)."""
        d = asdict(self)
        d.pop("prompt"), d.pop("output")
        return d

    def fingerprint(self) -> str:
        """Short hash of what decides the frames (not the output path): a rerun skips a line only if it matches."""
        text = json.dumps(self.call_kwargs() | {"prompt": self.prompt}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


FIELDS = tuple(f.name for f in fields(VideoRequest))


def parse_request(obj: object, defaults: VideoRequest = VideoRequest()) -> VideoRequest:
    """A JSON object -> VideoRequest over ``defaults``; InputError (one line) for a wrong key, type or value."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object like {{\"prompt\": \"a cat\", \"seed\": 1}}; got "
                         f"{type(obj).__name__}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(FIELDS)}")
    for key, v in obj.items():
        _check_type(key, v)
    req = replace(defaults, **obj)
    if not req.prompt.strip():
        raise InputError("prompt is missing or empty: give \"prompt\": \"what the video shows\"")
    return req


def _check_type(key: str, v: object) -> None:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if key in INTS and not is_int or key in OPTIONAL_INTS and not (v is None or is_int):
        raise InputError(f"{key}={v!r} must be an integer")
    if key == "guidance_scale" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
        raise InputError(f"guidance_scale={v!r} must be a finite number")
    if key in ("prompt",) and not isinstance(v, str):
        raise InputError(f"{key}={v!r} must be a string")
    if isinstance(v, str):
        check_utf8(key, v)  # a lone surrogate ("\ud800" in JSON): one line now, not a TypeError after loading
    if key in ("negative_prompt", "scheduler", "output") and not (v is None or isinstance(v, str)):
        raise InputError(f"{key}={v!r} must be a string or null")


def check_video_request(m: Manifest, req: VideoRequest, root: str = "DIR",
                        scheduler_config: dict | None = None) -> None:
    """The runtime's own checks, run on the manifest alone (no model loads): sizes against the engine directory's
    profile, the step count, the scheduler name, the seed. Raises InputError with the runtime's message."""
    from t2vrt.runtime import checks
    from t2vrt.runtime.schedulers import SCHEDULERS

    check_call = getattr(checks, "check_call", None)  # the runtime's by-name checks, where this version has them
    if check_call is not None:
        stub = SimpleNamespace(manifest=m, root=Path(root), scheduler_config=scheduler_config or {})
        check_call(stub, dict(req.call_kwargs(), prompt=req.prompt))
    native = m.model.sample_size * m.model.vae_scale
    check_request(m, 1, req.num_frames, req.height or native, req.width or native, root=root)
    check_positive("num_inference_steps", req.num_inference_steps)
    if req.scheduler is not None and req.scheduler not in SCHEDULERS:
        raise InputError(f"scheduler={req.scheduler!r} is unknown; choose one of {', '.join(sorted(SCHEDULERS))}")
    if not -(2**63) <= req.seed < 2**64:
        raise InputError(f"seed={req.seed} must be in [-2**63, 2**64) (torch.Generator's seed range)")
    if scheduler_config is not None:  # the sampler's own step limits (e.g. 'leading' spacing at 1000 steps)
        from t2vrt.runtime.schedulers import make_sampler

        try:
            make_sampler(req.scheduler, scheduler_config, req.num_inference_steps)
        except SchedulerError as e:
            raise InputError(str(e)) from None


def output_inside(outdir: Path, name: str) -> Path:
    """``name`` (relative, .mp4/.gif/no suffix) resolved inside ``outdir``; InputError if it would leave it."""
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise InputError(f"output={name!r} must be a relative path inside the output folder (no '..', not absolute)")
    base, target = outdir.resolve(), (outdir / p).resolve()  # symlinks followed: a link may not lead out
    if base not in target.parents:
        raise InputError(f"output={name!r} leads outside the output folder through a symlink (to {target}); give a "
                         "path inside it")
    # suffix, not a folder t2vrt did not write, a writable parent; an earlier run's frames: plan's _already_done decides
    check_output_path(outdir / p, overwrite=True)
    return outdir / p


class RequestChecker:
    """Checks requests against one engine directory, read once (manifest and scheduler config; no model)."""

    def __init__(self, engine_dir: str | Path):
        from t2vrt.integrity import read_json_file
        from t2vrt.manifest import load_manifest

        self.root = str(engine_dir)
        self.manifest = load_manifest(engine_dir)
        self.scheduler_config = read_json_file(Path(engine_dir), self.manifest.scheduler_config, "scheduler config")

    def __call__(self, req: VideoRequest) -> None:
        check_video_request(self.manifest, req, self.root, self.scheduler_config)
