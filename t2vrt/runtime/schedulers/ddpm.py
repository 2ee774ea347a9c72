"""DDPM ancestral sampling (Ho et al. 2020, arXiv:2006.11239), matching diffusers' DDPMScheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, clip_range, prediction_to_x0
from t2vrt.runtime.schedulers.tables import alphas_cumprod, spaced_timesteps

Coeffs = tuple[float, float, float, float]  # sqrt(a_t), sqrt(1 - a_t), x0 coefficient, x_t coefficient


def ddpm_step(x, out, c: Coeffs, noise=None, prediction_type: str = "epsilon", clip: float | None = None):
    """Posterior mean of q(x_prev | x_t, x0) (eq. 7 of the paper) plus noise (already scaled by its std)."""
    sqrt_a, sqrt_b, c_x0, c_xt = c
    x0 = prediction_to_x0(x, out, prediction_type, sqrt_a, sqrt_b)
    if clip is not None:
        x0 = x0.clip(-clip, clip)
    return c_x0 * x0 + c_xt * x if noise is None else c_x0 * x0 + c_xt * x + noise


def _coefficients(a_t: float, a_prev: float, variance_type: str) -> tuple[Coeffs, float]:
    """The step's Coeffs, and the noise std."""
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
class DDPMSolver:
    """A step whose timestep is > 0 draws noise, as diffusers draws ``randn_tensor(model_output.shape)``
    in the model output's dtype only when ``t > 0``."""

    coeffs: tuple[Coeffs, ...]
    stds: tuple[float, ...]
    prediction_type: str
    clip: float | None

    def step(self, i: int, x: Any, out: Any, state: None, noise: Any):
        noise = None if noise is None else self.stds[i] * noise
        return ddpm_step(x, out, self.coeffs[i], noise, self.prediction_type, self.clip), state


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    ac = alphas_cumprod(cfg).astype(np.float64)
    ts = spaced_timesteps(cfg, steps)
    prev = np.append(ts[1:], -1)  # diffusers' previous_timestep: the next entry of the schedule
    pairs = [_coefficients(float(ac[t]), float(ac[p]) if p >= 0 else 1.0, cfg.variance_type)
             for t, p in zip(ts, prev)]
    solver = DDPMSolver(tuple(c for c, _ in pairs), tuple(s for _, s in pairs), cfg.prediction_type, clip_range(cfg))
    noisy = frozenset(i for i, t in enumerate(ts) if t > 0)
    return spec.vp(cfg, ts, steps, solver, (float(ac[t]) for t in ts), noisy=noisy)


SPEC = Spec("ddpm", "DDPMScheduler", build, {"variance_type": "fixed_small", "clip_sample": True},
            ("variance_type", "clip_sample", "clip_sample_range"),
            choices={"variance_type": ("fixed_small", "fixed_small_log", "fixed_large")},
            switches=("thresholding", "rescale_betas_zero_snr"))
