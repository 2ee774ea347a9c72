"""DDPM ancestral sampling (Ho et al. 2020, arXiv:2006.11239), matching diffusers' DDPMScheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.base import NoiseFn, clip, draw_noise, prediction_to_x0, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.schedule import alphas_cumprod, spaced_timesteps

DEFAULTS = {"variance_type": "fixed_small", "clip_sample": True}
CONFIG_OPTIONS = ("variance_type", "clip_sample", "clip_sample_range")
VARIANCES = ("fixed_small", "fixed_small_log", "fixed_large")


def ddpm_step(x, out, c: tuple[float, float, float, float], noise=None,
              prediction_type: str = "epsilon", clip_range: float | None = None):
    """Posterior mean of q(x_prev | x_t, x0) (eq. 7 of the paper) plus noise (already scaled by its std).

    c = (sqrt(a_t), sqrt(1 - a_t), x0 coefficient, x_t coefficient).
    """
    sqrt_a, sqrt_b, c_x0, c_xt = c
    x0 = prediction_to_x0(x, out, prediction_type, sqrt_a, sqrt_b)
    if clip_range is not None:
        x0 = clip(x0, clip_range)
    return c_x0 * x0 + c_xt * x if noise is None else c_x0 * x0 + c_xt * x + noise


def _coefficients(a_t: float, a_prev: float, variance_type: str) -> tuple[tuple[float, ...], float]:
    """(sqrt a_t, sqrt(1 - a_t), posterior x0 and x_t coefficients), and the noise std."""
    beta_t, beta_prev = 1 - a_t, 1 - a_prev
    cur_alpha = a_t / a_prev
    cur_beta = 1 - cur_alpha
    c_x0 = a_prev**0.5 * cur_beta / beta_t
    c_xt = cur_alpha**0.5 * beta_prev / beta_t
    variance = max(beta_prev / beta_t * cur_beta, 1e-20)  # beta-tilde, eq. 7
    if variance_type == "fixed_large":
        std = cur_beta**0.5
    elif variance_type == "fixed_small_log":
        std = math.exp(0.5 * math.log(variance))
    else:
        std = variance**0.5
    return (a_t**0.5, beta_t**0.5, c_x0, c_xt), std


@dataclass(frozen=True)
class DDPM:
    """Ancestral DDPM sampler.

    Calls ``noise_like(x)`` once per step whose timestep is > 0 (diffusers draws
    ``randn_tensor(model_output.shape)`` in the model output's dtype only when ``t > 0``).
    """

    config: SchedulerConfig
    timesteps: np.ndarray
    coeffs: tuple[tuple[float, ...], ...]
    stds: tuple[float, ...]
    init_noise_sigma: float = 1.0
    order: int = 1

    @property
    def num_inference_steps(self) -> int:
        return len(self.timesteps)

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "DDPM":
        cfg, _ = read_config("ddpm", config, options, DEFAULTS, CONFIG_OPTIONS)
        return cls.build(cfg, steps)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int) -> "DDPM":
        reject_unsupported(config, "ddpm", ("thresholding", "rescale_betas_zero_snr"))
        require_choice("ddpm", "variance_type", config.variance_type, VARIANCES)
        require_choice("ddpm", "prediction_type", config.prediction_type, ("epsilon", "v_prediction", "sample"))
        ac = alphas_cumprod(config).astype(np.float64)
        ts = spaced_timesteps(config, steps)
        prev = np.append(ts[1:], -1)  # diffusers' previous_timestep: the next entry of the schedule
        pairs = [_coefficients(float(ac[t]), float(ac[p]) if p >= 0 else 1.0, config.variance_type)
                 for t, p in zip(ts, prev)]
        return cls(config, ts, tuple(c for c, _ in pairs), tuple(s for _, s in pairs))

    def scale_model_input(self, x: Any, i: int) -> Any:
        return x

    def init_state(self) -> None:
        return None

    def step(self, i: int, x: Any, model_output: Any, state: None, noise_like: NoiseFn | None = None):
        cfg = self.config
        noise = self.stds[i] * draw_noise(noise_like, x, "ddpm") if self.timesteps[i] > 0 else None
        clip_range = cfg.clip_sample_range if cfg.clip_sample else None
        return ddpm_step(x, model_output, self.coeffs[i], noise, cfg.prediction_type, clip_range), state

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        """Forward process q(x_t | x_0) at timesteps[i] (eq. 4)."""
        sqrt_a, sqrt_b = self.coeffs[i][:2]
        return sqrt_a * x0 + sqrt_b * noise
