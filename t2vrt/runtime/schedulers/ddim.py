"""DDIM (Song et al. 2020, arXiv:2010.02502), matching diffusers' DDIMScheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.base import NoiseFn, SchedulerConfig, alphas_cumprod, spaced_timesteps


def ddim_step(x, eps, alpha_t: float, alpha_prev: float, eta: float = 0.0, noise=None, prediction_type="epsilon"):
    """One DDIM update x_t -> x_{t-1}; alphas are alpha-bar (cumulative) values. Formula (12) of the paper."""
    beta_t = 1.0 - alpha_t
    if prediction_type == "epsilon":
        x0 = (x - beta_t**0.5 * eps) / alpha_t**0.5
    elif prediction_type == "v_prediction":
        x0 = alpha_t**0.5 * x - beta_t**0.5 * eps
        eps = alpha_t**0.5 * eps + beta_t**0.5 * x
    else:  # "sample"
        x0 = eps
        eps = (x - alpha_t**0.5 * x0) / beta_t**0.5
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)  # formula (16)
    sigma = eta * math.sqrt(variance)
    x_prev = alpha_prev**0.5 * x0 + (1 - alpha_prev - sigma**2) ** 0.5 * eps
    if eta > 0 and noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev


@dataclass(frozen=True)
class DDIM:
    """A DDIM sampler for one step count, built once."""

    config: SchedulerConfig
    timesteps: np.ndarray
    alpha_t: tuple[float, ...]
    alpha_prev: tuple[float, ...]
    eta: float = 0.0
    init_noise_sigma: float = 1.0
    order: int = 1

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int, eta: float = 0.0) -> "DDIM":
        ac = alphas_cumprod(config)
        ts = spaced_timesteps(config, steps)
        final = 1.0 if config.set_alpha_to_one else float(ac[0])
        prev = ts - config.num_train_timesteps // steps
        a_t = tuple(float(ac[t]) for t in ts)
        a_prev = tuple(float(ac[p]) if p >= 0 else final for p in prev)
        return cls(config, ts, a_t, a_prev, eta)

    def scale_model_input(self, x: Any, i: int) -> Any:
        return x

    def init_state(self) -> None:
        return None

    def step(self, i: int, x: Any, model_output: Any, state: None, noise_like: NoiseFn | None = None):
        noise = noise_like(x) if self.eta > 0 and noise_like is not None else None
        x_prev = ddim_step(x, model_output, self.alpha_t[i], self.alpha_prev[i], self.eta, noise, self.config.prediction_type)
        return x_prev, state

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        a = self.alpha_t[i]
        return a**0.5 * x0 + (1 - a) ** 0.5 * noise
