"""What the sigma-parameterised samplers (Euler, Euler ancestral, LMS, Heun) share.

They integrate the probability-flow ODE dx/dsigma = (x - x0(x, sigma)) / sigma in the
variance-exploding parameterisation of Karras et al. 2022 (arXiv:2206.00364, eq. 3), so the
model input is scaled by 1 / sqrt(sigma^2 + 1) and the initial noise by sigma_max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig, require_choice
from t2vrt.runtime.schedulers.schedule import sigma_timesteps
from t2vrt.runtime.schedulers.sigmas import (
    interp_sigmas,
    karras_override,
    karras_sigmas,
    sigma_to_t,
    sqrt_f32,
    train_sigmas,
)


def sigma_schedule(name: str, cfg: SchedulerConfig, steps: int, karras: bool = False, karras_bounds: bool = False,
                   final: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """(float32 timesteps, float32 sigmas with the final sigma appended) as Euler/LMS/Heun build them."""
    require_choice(name, "final_sigmas_type", final, ("zero", "sigma_min"))
    ts = sigma_timesteps(cfg, steps)
    table = train_sigmas(cfg)
    sig = interp_sigmas(ts, table)
    if karras:
        lo, hi = karras_override(cfg, sig[-1], sig[0], karras_bounds)
        sig = karras_sigmas(lo, hi, steps)
        ts = sigma_to_t(sig, table).astype(np.float32)
    last = table[0] if final == "sigma_min" else 0.0
    return ts, np.concatenate([sig, [last]]).astype(np.float32)


def initial_sigma(sigmas: np.ndarray, spacing: str) -> float:
    """diffusers' init_noise_sigma: sigma_max, or sqrt(sigma_max^2 + 1) for "leading", in float32."""
    top = np.float32(sigmas.max())
    return float(top if spacing in ("linspace", "trailing") else sqrt_f32(top * top + np.float32(1)))


def denoised(x: Any, out: Any, sigma: float, prediction_type: str) -> Any:
    """x0 prediction in the VE parameterisation x = x0 + sigma * eps."""
    if prediction_type == "epsilon":
        return x - sigma * out
    if prediction_type == "v_prediction":
        return out * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
    return out  # "sample"


@dataclass(frozen=True)
class SigmaSampler:
    """Fields and the model-input / forward-noise maps of a sigma sampler; subclasses add ``step``."""

    config: SchedulerConfig
    timesteps: np.ndarray
    sigmas: tuple[float, ...]  # len(timesteps) + 1 noise levels, the last one final
    init_noise_sigma: float
    num_inference_steps: int

    @property
    def order(self) -> int:
        return 1

    def scale_model_input(self, x: Any, i: int) -> Any:
        """x / sqrt(sigma^2 + 1): the VP-normalised input the noise-prediction network expects."""
        return x / (self.sigmas[i] ** 2 + 1) ** 0.5

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        """x0 + sigma_i * noise (VE forward process)."""
        return x0 + self.sigmas[i] * noise
