"""A call plan: everything a pipeline call decides before any backend runs (``Pipeline.plan``), run by
``Pipeline.run``. ``pipe(...)`` is ``pipe.run(pipe.plan(...))``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable

from t2vrt.errors import InputError
from t2vrt.runtime.callbacks import StepCallbacks
from t2vrt.runtime.context import ContextPlan
from t2vrt.runtime.prompts import Prompts


@dataclass(frozen=True, eq=False)
class CallPlan:
    """What a call will do, checked: the prompts, the video's size, the sampler and its first model evaluation, the
    context windows, the VAE chunk and the seed. Running a plan twice gives the same video
    when it has a seed (a torch generator goes on from where it is)."""

    prompts: Prompts
    num_frames: int
    height: int
    width: int
    latent_shape: tuple[int, ...]  # [b, c, f, h, w] of the denoised latents
    sampler: Any  # a sampler built for num_inference_steps (runtime/schedulers); it holds no per-call state
    start: int  # index of the first model evaluation (video-to-video's strength; 0 from pure noise)
    guidance_scale: float
    context: ContextPlan | None  # temporal windows, or None for one UNet call per evaluation
    decode_chunk: int  # VAE frames per call
    seed: int | None  # the seed the noise is drawn from (None only when a generator is given)
    generator: Any = None
    latents: Any = None  # given initial latents (text-to-video), else drawn
    free_noise: bool = False
    clip_skip: int | None = None
    callbacks: StepCallbacks | None = None
    output_type: str = "np"
    return_dict: bool = True
    progress: bool | None = None
    frames: Any = None  # video-to-video: the input frames [f, H, W, 3] (resized to height x width when run)
    strength: float | None = None

    def with_frames(self, frames: Any) -> CallPlan:
        """This video-to-video plan on other frames of the same count and size (e.g. a first stage's output, planned
        before that stage ran); anything else is refused."""
        if self.frames is None or tuple(frames.shape) != tuple(self.frames.shape):
            raise InputError(f"frames of shape {tuple(frames.shape)} given to a plan made for "
                             f"{None if self.frames is None else tuple(self.frames.shape)}; plan the call again")
        return replace(self, frames=frames)


def planned_call(plan: Callable) -> Callable:
    """``__call__`` as ``run(plan(...))``, with ``plan``'s signature and docstring (what inspect and help() show)."""

    @functools.wraps(plan)
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(self.plan(*args, **kwargs))

    __call__.__name__ = __call__.__qualname__ = "__call__"
    return __call__
