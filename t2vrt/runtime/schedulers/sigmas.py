"""Sigma (noise-to-signal) schedules shared by the Euler, LMS, Heun, DPM-Solver and UniPC samplers.

sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t) is the variance-exploding view of the
DDPM schedule (Karras et al. 2022, "Elucidating the Design Space...", arXiv:2206.00364).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.schedule import alphas_cumprod

KARRAS_RHO = 7.0  # rho of Karras et al. eq. (5), the value the paper uses


def sqrt_f32(a: np.ndarray) -> np.ndarray:
    """float32 square root as torch's CPU kernel rounds it (torch when installed, else correctly rounded).

    torch's float32 sqrt is not correctly rounded (it differs from IEEE sqrt by one ulp in
    about 1 in 6 values), and diffusers takes sigma tables from it; without torch we can
    only come within that ulp.
    """
    a = np.asarray(a, dtype=np.float32)
    if importlib.util.find_spec("torch") is None:
        return np.sqrt(a)
    import torch

    return torch.from_numpy(a.copy()).sqrt().numpy()


def train_sigmas(cfg: SchedulerConfig) -> np.ndarray:
    """sigma for each of the training timesteps, ascending, float32 as diffusers computes it."""
    ac = alphas_cumprod(cfg)
    return sqrt_f32((np.float32(1.0) - ac) / ac)


def interp_sigmas(timesteps: np.ndarray, table: np.ndarray) -> np.ndarray:
    """sigma at (possibly fractional) timesteps by linear interpolation of the training table, float64."""
    return np.interp(timesteps, np.arange(0, len(table)), table)


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int) -> np.ndarray:
    """Karras et al. 2022 eq. (5): sigmas evenly spaced in sigma^(1/rho), descending, float64."""
    ramp = np.linspace(0, 1, steps)
    min_inv_rho = sigma_min ** (1 / KARRAS_RHO)
    max_inv_rho = sigma_max ** (1 / KARRAS_RHO)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** KARRAS_RHO


def sigma_to_t(sigmas: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The fractional training timestep of each sigma, interpolating log-sigma (as diffusers' _sigma_to_t)."""
    log_table = np.log(table)
    log_sigma = np.log(np.maximum(np.asarray(sigmas, dtype=np.float64), 1e-10))
    dists = log_sigma[None, :] - log_table[:, None]
    low = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=len(log_table) - 2)
    w = np.clip((log_table[low] - log_sigma) / (log_table[low] - log_table[low + 1]), 0, 1)
    return (1 - w) * low + w * (low + 1)


def karras_override(cfg: SchedulerConfig, in_min: float, in_max: float, use_config_bounds: bool) -> tuple[float, float]:
    """(sigma_min, sigma_max) for the Karras ramp: the config's bounds where that class reads them."""
    lo = cfg.sigma_min if use_config_bounds and cfg.sigma_min is not None else in_min
    hi = cfg.sigma_max if use_config_bounds and cfg.sigma_max is not None else in_max
    return float(lo), float(hi)


def vp_alpha_sigma(sigma: float) -> tuple[float, float]:
    """(alpha_t, sigma_t) of the variance-preserving process at VE noise level sigma."""
    alpha = 1.0 / (sigma**2 + 1.0) ** 0.5
    return alpha, sigma * alpha


def vp_lambda(sigma: float) -> float:
    """Half log-SNR lambda_t = log(alpha_t / sigma_t) (DPM-Solver, Lu et al. 2022); +inf at sigma = 0."""
    if sigma == 0.0:
        return float("inf")
    alpha, sig = vp_alpha_sigma(sigma)
    return float(np.log(alpha) - np.log(sig))
