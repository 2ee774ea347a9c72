"""Render one VideoRequest on a loaded Pipeline: per-stage times, progress, cancellation, an atomic write; and one
service job (text- or video-to-video, with its thumbnail)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from t2vrt.runtime.stages import StageSeconds
from t2vrt.serve.request import VideoRequest

# The pipeline's stage -> its name in results (the text encoding is reported as diffusers names it).
STAGES = {"text_encoder": "encode_prompt", "unet": "denoise", "vae_decoder": "decode"}


def video_path(outdir: Path, job_id: str) -> Path:
    return Path(outdir) / f"{job_id}.mp4"


def thumbnail_path(outdir: Path, job_id: str) -> Path:
    return Path(outdir) / f"{job_id}.jpg"


class Cancelled(Exception):
    """Raised from the step callback when a job is cancelled; nothing is written."""


class StageClock(StageSeconds):
    """The seconds of the last call's stages, as results name them: an observer of the pipeline's stages."""

    def __init__(self, pipe):
        super().__init__(STAGES)
        pipe.add_observer(self)


def save_atomic(video, path: Path, fps: float) -> Path:
    """The one place a finished video reaches its path: ``Video.save`` writes a hidden temp file beside the target
    and renames it, so the target either does not exist or is complete (what a resumed batch relies on)."""
    return video.save(path, fps=fps)


def render(pipe, clock: StageClock, req: VideoRequest, path: Path, fps: float,
           on_step: Callable[[int, int], None] | None = None) -> dict:
    """Generate ``req`` and write it to ``path``; returns {"seed", "seconds": {stage: s, "write": s, "total": s}}.
    ``on_step(done, total)`` runs after each denoising step and may raise Cancelled."""
    t0 = time.perf_counter()
    clock.clear()
    steps = req.num_inference_steps
    callback = None if on_step is None else (lambda step, timestep, latents: on_step(step + 1, steps))
    video = pipe(req.prompt, progress=False, callback=callback, **req.call_kwargs())
    t1 = time.perf_counter()
    save_atomic(video, path, fps)
    seconds = dict(clock.seconds, write=round(time.perf_counter() - t1, 4), total=round(time.perf_counter() - t0, 4))
    return {"seed": video.seed, "seconds": seconds}


def render_job(renderer, job: dict, on_step: Callable[[int, int], None]) -> dict:
    """One service job on ``renderer`` (a batch.Renderer): the video at video_path, then its first frame at
    thumbnail_path; video-to-video when the job has an input file (a second pipeline, loaded on first use)."""
    spec = job["request"]
    req, extras, outdir = VideoRequest(**spec["video"]), dict(spec.get("extras") or {}), renderer.outdir
    pipe, clock = renderer.pipe, renderer.clock
    if spec.get("input"):
        pipe, clock = video_to_video(renderer)
        extras["video"] = str(outdir / spec["input"])
    t0 = time.perf_counter()
    clock.clear()
    steps = req.num_inference_steps
    kwargs = req.call_kwargs() | extras
    if "video" in extras:
        kwargs.pop("num_frames")
        steps = max(1, int(steps * extras.get("strength", 0.6)))  # the steps a strength < 1 runs

    def callback(step, timestep, latents):
        on_step(min(step + 1, steps), steps)

    try:
        video = pipe(req.prompt, progress=False, callback=callback, **kwargs)
    finally:
        if spec.get("input"):
            (outdir / spec["input"]).unlink(missing_ok=True)  # the upload is not kept once it is read
    t1 = time.perf_counter()
    save_atomic(video, video_path(outdir, job["id"]), spec.get("fps", renderer.fps))
    save_thumbnail(video, thumbnail_path(outdir, job["id"]))
    seconds = dict(clock.seconds, write=round(time.perf_counter() - t1, 4), total=round(time.perf_counter() - t0, 4))
    return {"seed": video.seed, "seconds": seconds}


def video_to_video(renderer):
    """The renderer's video-to-video pipeline (same engine directory, backend and precision), loaded once."""
    if getattr(renderer, "v2v", None) is None:
        from t2vrt.runtime.video2video import VideoToVideoPipeline

        renderer.v2v = VideoToVideoPipeline.load(renderer.pipe.root, renderer.pipe.options)
        renderer.v2v_clock = StageClock(renderer.v2v)
    return renderer.v2v, renderer.v2v_clock


def save_thumbnail(video, path: Path) -> None:
    """The first frame as a JPEG, written beside ``path`` and renamed into place."""
    import os

    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        video.to_pil()[0].convert("RGB").save(tmp, format="JPEG", quality=90)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
