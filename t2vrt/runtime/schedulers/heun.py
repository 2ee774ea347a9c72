"""Heun's 2nd-order sampler (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 without churn).

Matches diffusers' HeunDiscreteScheduler: 2N - 1 model evaluations for N steps (the last
step, down to sigma = 0, is a plain Euler step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.base import NoiseFn, clip, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.sigma_sampler import SigmaSampler, denoised, initial_sigma, sigma_schedule

DEFAULTS = {"timestep_spacing": "linspace", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False}
CONFIG_OPTIONS = ("use_karras_sigmas", "clip_sample", "clip_sample_range")


@dataclass(frozen=True)
class HeunState:
    """The first (Euler) stage of a Heun step, kept for its correction."""

    derivative: Any
    dt: float
    sample: Any


@dataclass(frozen=True)
class Heun(SigmaSampler):
    """Heun sampler; ``timesteps`` repeats every timestep but the first (one entry per evaluation).

    Like diffusers, the stage is decided by the state: with no pending first stage a step is
    an Euler predictor, otherwise the trapezoidal corrector. Video-to-video starts at an even
    index (``t_start * order``), on a predictor.
    """

    @property
    def order(self) -> int:
        return 2

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "Heun":
        cfg, _ = read_config("heun", config, options, DEFAULTS, CONFIG_OPTIONS)
        return cls.build(cfg, steps)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int) -> "Heun":
        reject_unsupported(config, "heun", ("use_exponential_sigmas", "use_beta_sigmas"))
        require_choice("heun", "prediction_type", config.prediction_type, ("epsilon", "v_prediction", "sample"))
        ts, sig = sigma_schedule("heun", config, steps, config.use_karras_sigmas)
        sig = np.concatenate([sig[:1], np.repeat(sig[1:-1], 2), sig[-1:]])
        ts = np.concatenate([ts[:1], np.repeat(ts[1:], 2)])
        sigmas = tuple(float(s) for s in sig)
        return cls(config, ts, sigmas, initial_sigma(sig, config.timestep_spacing), steps)

    def init_state(self) -> None:
        return None

    def _x0(self, x: Any, out: Any, sigma: float) -> Any:
        x0 = denoised(x, out, sigma, self.config.prediction_type)
        return clip(x0, self.config.clip_sample_range) if self.config.clip_sample else x0

    def step(self, i: int, x: Any, model_output: Any, state: HeunState | None, noise_like: NoiseFn | None = None):
        if state is None:  # predictor: Euler step sigma_i -> sigma_{i+1}
            sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
            d = (x - self._x0(x, model_output, sigma)) / sigma
            dt = sigma_next - sigma
            return x + d * dt, HeunState(d, dt, x)
        sigma_next = self.sigmas[i]  # corrector, evaluated at the predicted point
        d = (x - self._x0(x, model_output, sigma_next)) / sigma_next
        d = (state.derivative + d) / 2
        return state.sample + d * state.dt, None
