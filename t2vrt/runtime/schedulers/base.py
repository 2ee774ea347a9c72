"""The sampler interface and the noise schedule shared by every scheduler.

A sampler is built once from a frozen config and a step count; nothing has to be
"set" before use. The denoising loop is the same for all of them::

    sampler = make_sampler("ddim", config, num_inference_steps)
    x = noise * sampler.init_noise_sigma
    state = sampler.init_state()
    for i in range(len(sampler.timesteps)):
        eps = model(sampler.scale_model_input(x, i), sampler.timesteps[i])
        x, state = sampler.step(i, x, eps, state, noise_like)

Arrays are NumPy arrays or torch tensors: coefficients are Python floats and
arrays are only combined with ``+ - *`` and ``/``, so the same lines run on both.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Protocol

import numpy as np

from t2vrt.errors import SchedulerError

NoiseFn = Callable[[Any], Any]  # noise_like(x) -> standard normal array shaped and typed like x


@dataclass(frozen=True)
class SchedulerConfig:
    """The fields of a diffusers ``scheduler_config.json`` that the samplers read."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: tuple[float, ...] | None = None
    prediction_type: str = "epsilon"
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    timestep_spacing: str = "leading"
    class_name: str = "DDIMScheduler"

    @classmethod
    def from_dict(cls, d: dict) -> "SchedulerConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("trained_betas") is not None:
            kw["trained_betas"] = tuple(kw["trained_betas"])
        if "_class_name" in d:
            kw["class_name"] = d["_class_name"]
        return cls(**kw)


def betas(cfg: SchedulerConfig) -> np.ndarray:
    """The training noise schedule, in float32 as diffusers computes it."""
    n = cfg.num_train_timesteps
    if cfg.trained_betas is not None:
        return np.asarray(cfg.trained_betas, dtype=np.float32)
    if cfg.beta_schedule == "linear":
        return np.linspace(cfg.beta_start, cfg.beta_end, n, dtype=np.float64).astype(np.float32)
    if cfg.beta_schedule == "scaled_linear":
        return (np.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, n, dtype=np.float64).astype(np.float32)) ** 2
    raise SchedulerError(f"beta_schedule={cfg.beta_schedule!r} is not supported; use 'linear' or 'scaled_linear'")


def alphas_cumprod(cfg: SchedulerConfig) -> np.ndarray:
    """Cumulative product of (1 - beta), float32 (DDPM paper, alpha-bar)."""
    return np.cumprod(1.0 - betas(cfg), dtype=np.float32)


def spaced_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """Inference timesteps, descending, for the "leading", "linspace" and "trailing" spacings."""
    n = cfg.num_train_timesteps
    if not 1 <= steps <= n:
        raise SchedulerError(f"num_inference_steps={steps} is outside [1, {n}]")
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    if cfg.timestep_spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + cfg.steps_offset
    if cfg.timestep_spacing == "trailing":
        return np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
    raise SchedulerError(
        f"timestep_spacing={cfg.timestep_spacing!r} is not supported; use 'leading', 'linspace' or 'trailing'"
    )


class Sampler(Protocol):
    """What the pipeline needs of a scheduler; see the module docstring for the loop."""

    timesteps: np.ndarray  # one model timestep per model evaluation
    init_noise_sigma: float

    def scale_model_input(self, x: Any, i: int) -> Any: ...

    def init_state(self) -> Any: ...

    def step(self, i: int, x: Any, model_output: Any, state: Any, noise_like: NoiseFn | None) -> tuple[Any, Any]: ...

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any: ...
