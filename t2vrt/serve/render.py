"""Render one VideoRequest on a loaded Pipeline: per-stage times, progress, cancellation, an atomic write."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from t2vrt.runtime.stages import StageSeconds
from t2vrt.serve.request import VideoRequest

# The pipeline's stage -> its name in results (the text encoding is reported as diffusers names it).
STAGES = {"text_encoder": "encode_prompt", "unet": "denoise", "vae_decoder": "decode"}


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
