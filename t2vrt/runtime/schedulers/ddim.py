"""DDIM (Song et al. 2020, arXiv:2010.02502), matching diffusers' DDIMScheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.base import NoiseFn, clip, draw_noise, prediction_to_x0, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.schedule import alphas_cumprod, spaced_timesteps

PREDICTIONS = ("epsilon", "v_prediction", "sample")
DEFAULTS: dict = {}  # SchedulerConfig's defaults are DDIMScheduler's
CONFIG_OPTIONS = ("clip_sample", "clip_sample_range", "set_alpha_to_one")


def ddim_step(x, out, alpha_t: float, alpha_prev: float, eta: float = 0.0, noise=None,
              prediction_type: str = "epsilon", clip_range: float | None = None):
    """One DDIM update x_t -> x_prev; alphas are alpha-bar values. Formula (12) of the paper."""
    beta_t = 1.0 - alpha_t
    x0 = prediction_to_x0(x, out, prediction_type, alpha_t**0.5, beta_t**0.5)
    if prediction_type == "v_prediction":
        eps = alpha_t**0.5 * out + beta_t**0.5 * x
    elif prediction_type == "sample":
        eps = (x - alpha_t**0.5 * x0) / beta_t**0.5
    else:
        eps = out
    if clip_range is not None:
        x0 = clip(x0, clip_range)
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)  # formula (16)
    sigma = eta * math.sqrt(variance)
    x_prev = alpha_prev**0.5 * x0 + (1 - alpha_prev - sigma**2) ** 0.5 * eps
    if noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev


@dataclass(frozen=True)
class DDIM:
    """A DDIM sampler for one step count, built once.

    With ``eta > 0`` it calls ``noise_like(x)`` once per step, after the model output, as
    diffusers' ``DDIMScheduler.step`` draws ``randn_tensor(model_output.shape)`` in the
    model output's dtype.
    """

    config: SchedulerConfig
    timesteps: np.ndarray
    alpha_t: tuple[float, ...]
    alpha_prev: tuple[float, ...]
    eta: float = 0.0
    init_noise_sigma: float = 1.0
    order: int = 1

    @property
    def num_inference_steps(self) -> int:
        return len(self.timesteps)

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "DDIM":
        cfg, extras = read_config("ddim", config, options, DEFAULTS, CONFIG_OPTIONS, ("eta",))
        return cls.build(cfg, steps, **extras)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int, eta: float = 0.0) -> "DDIM":
        reject_unsupported(config, "ddim", ("thresholding", "rescale_betas_zero_snr"))
        require_choice("ddim", "prediction_type", config.prediction_type, PREDICTIONS)
        ac = alphas_cumprod(config).astype(np.float64)
        ts = spaced_timesteps(config, steps)
        final = 1.0 if config.set_alpha_to_one else float(ac[0])
        prev = ts - config.num_train_timesteps // steps
        a_t = tuple(float(ac[t]) for t in ts)
        a_prev = tuple(float(ac[p]) if p >= 0 else final for p in prev)
        return cls(config, ts, a_t, a_prev, float(eta))

    def scale_model_input(self, x: Any, i: int) -> Any:
        return x

    def init_state(self) -> None:
        return None

    def step(self, i: int, x: Any, model_output: Any, state: None, noise_like: NoiseFn | None = None):
        noise = draw_noise(noise_like, x, "ddim") if self.eta > 0 else None
        cfg = self.config
        clip_range = cfg.clip_sample_range if cfg.clip_sample else None
        x_prev = ddim_step(x, model_output, self.alpha_t[i], self.alpha_prev[i], self.eta, noise,
                           cfg.prediction_type, clip_range)
        return x_prev, state

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        """Forward process q(x_t | x_0) at timesteps[i] (DDPM paper eq. 4)."""
        a = self.alpha_t[i]
        return a**0.5 * x0 + (1 - a) ** 0.5 * noise
