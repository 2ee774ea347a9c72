"""DDIM (Song et al. 2020, arXiv:2010.02502), matching diffusers' DDIMScheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, clip_range, prediction_to_x0
from t2vrt.runtime.schedulers.tables import alphas_cumprod, spaced_timesteps


def ddim_step(x, out, alpha_t: float, alpha_prev: float, eta: float = 0.0, noise=None,
              prediction_type: str = "epsilon", clip: float | None = None):
    """One DDIM update x_t -> x_prev; alphas are alpha-bar values. Formula (12) of the paper."""
    beta_t = 1.0 - alpha_t
    x0 = prediction_to_x0(x, out, prediction_type, alpha_t**0.5, beta_t**0.5)
    if prediction_type == "v_prediction":
        eps = alpha_t**0.5 * out + beta_t**0.5 * x
    elif prediction_type == "sample":
        eps = (x - alpha_t**0.5 * x0) / beta_t**0.5
    else:
        eps = out
    if clip is not None:
        x0 = x0.clip(-clip, clip)
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)  # formula (16)
    sigma = eta * math.sqrt(variance)
    x_prev = alpha_prev**0.5 * x0 + (1 - alpha_prev - sigma**2) ** 0.5 * eps
    if noise is not None:
        x_prev = x_prev + sigma * noise
    return x_prev


@dataclass(frozen=True)
class DDIMSolver:
    """With ``eta > 0`` a step draws noise after the model output, as diffusers' ``DDIMScheduler.step``
    draws ``randn_tensor(model_output.shape)`` in the model output's dtype."""

    alphas: tuple[tuple[float, float], ...]  # alpha-bar at timesteps[i] and at the timestep it steps to
    eta: float
    prediction_type: str
    clip: float | None

    def step(self, i: int, x: Any, out: Any, state: None, noise: Any):
        return ddim_step(x, out, *self.alphas[i], self.eta, noise, self.prediction_type, self.clip), state


def build(spec: Spec, cfg: SchedulerConfig, steps: int, eta: float = 0.0) -> Sampler:
    ac = alphas_cumprod(cfg).astype(np.float64)
    ts = spaced_timesteps(cfg, steps)
    final = 1.0 if cfg.set_alpha_to_one else float(ac[0])
    prev = ts - cfg.num_train_timesteps // steps
    alphas = tuple((float(ac[t]), float(ac[p]) if p >= 0 else final) for t, p in zip(ts, prev))
    solver = DDIMSolver(alphas, float(eta), cfg.prediction_type, clip_range(cfg))
    noisy = frozenset(range(len(ts)) if eta > 0 else ())
    return spec.vp(cfg, ts, steps, solver, (a for a, _ in alphas), noisy=noisy)


SPEC = Spec("ddim", "DDIMScheduler", build, options=("clip_sample", "clip_sample_range", "set_alpha_to_one"),
            extras=("eta",), switches=("thresholding", "rescale_betas_zero_snr"))
