"""Noise schedules, timestep spacings and sigma tables, computed in NumPy exactly as diffusers computes them.

diffusers builds betas with ``torch.linspace(..., dtype=torch.float32)`` and ``torch.cumprod``; we
reproduce both bit for bit (see ``torch_linspace_f32``) so no torch is needed at run time. The spacings
follow Table 2 of Lin et al. 2023 (arXiv:2305.08891), with each diffusers scheduler's own variant.
sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t) is the variance-exploding view of the DDPM schedule
(Karras et al. 2022, arXiv:2206.00364).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SchedulerConfig

KARRAS_RHO = 7.0  # rho of Karras et al. eq. (5), the value the paper uses


def torch_linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps, dtype=torch.float32)`` on an x86 CPU with AVX2/AVX-512.

    torch computes ``start + step * i`` for the first half and ``end - step * (steps - 1 - i)``
    for the second in float32, fused into one multiply-add by the compiler (one rounding);
    float64 arithmetic followed by one rounding to float32 is exact here.
    """
    f32 = np.float32
    lo, hi = f32(start), f32(end)
    step = f32((hi - lo) / f32(steps - 1)) if steps > 1 else f32(0.0)
    i = np.arange(steps, dtype=np.float64)
    first = (np.float64(lo) + np.float64(step) * i).astype(f32)
    second = (np.float64(hi) - np.float64(step) * (steps - 1 - i)).astype(f32)
    return np.where(np.arange(steps) < steps // 2, first, second).astype(f32)


def _cosine_betas(n: int, max_beta: float = 0.999) -> np.ndarray:
    """Glide's squaredcos_cap_v2 schedule (Nichol & Dhariwal 2021, arXiv:2102.09672, eq. 17)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)], np.float32)


def betas(cfg: SchedulerConfig) -> np.ndarray:
    """The training noise schedule beta_t, float32, bit-identical to diffusers'."""
    n = cfg.num_train_timesteps
    if cfg.trained_betas is not None:
        return np.asarray(cfg.trained_betas, dtype=np.float32)
    if cfg.beta_schedule == "linear":
        return torch_linspace_f32(cfg.beta_start, cfg.beta_end, n)
    if cfg.beta_schedule == "scaled_linear":
        return torch_linspace_f32(cfg.beta_start**0.5, cfg.beta_end**0.5, n) ** 2
    if cfg.beta_schedule == "squaredcos_cap_v2":
        return _cosine_betas(n)
    raise SchedulerError(
        f"beta_schedule={cfg.beta_schedule!r} is not supported; use 'linear', 'scaled_linear' or 'squaredcos_cap_v2'"
    )


def alphas_cumprod(cfg: SchedulerConfig) -> np.ndarray:
    """alpha-bar_t = prod(1 - beta) (DDPM paper, Ho et al. 2020), float32 as torch.cumprod gives it.

    torch's CPU cumprod accumulates float32 inputs in float64 and rounds each output.
    """
    alphas = np.float32(1.0) - betas(cfg)
    return np.cumprod(alphas.astype(np.float64)).astype(np.float32)


# -- timesteps -------------------------------------------------------------------------------------------------
def spaced_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """Integer timesteps, descending, as DDIMScheduler / DDPMScheduler / PNDMScheduler space them."""
    n = cfg.num_train_timesteps
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    if cfg.timestep_spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + cfg.steps_offset
    # "trailing": diffusers' float arange can yield steps + 1 points (908 of 1000: a timestep -1); the first steps
    # are diffusers' own wherever its schedule has steps points
    return np.round(np.arange(n, 0, -n / steps))[:steps].astype(np.int64) - 1


def sigma_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """Float32 timesteps, descending, as the sigma schedulers (Euler, LMS, Heun) space them: "linspace" unrounded."""
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, cfg.num_train_timesteps - 1, steps, dtype=np.float32)[::-1].copy()
    return spaced_timesteps(cfg, steps).astype(np.float32)


def multistep_timesteps(cfg: SchedulerConfig, steps: int, last: int) -> np.ndarray:
    """Integer timesteps, descending, as DPMSolverMultistep / UniPC space them (steps + 1 points, last dropped)."""
    n = cfg.num_train_timesteps
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, last - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    if cfg.timestep_spacing == "leading":
        ts = (np.arange(0, steps + 1) * (last // (steps + 1))).round()[::-1][:-1].astype(np.int64)
        return ts + cfg.steps_offset
    return np.arange(last, 0, -n / steps).round()[:steps].astype(np.int64) - 1  # [:steps]: as spaced_timesteps


# -- sigmas ----------------------------------------------------------------------------------------------------
def sqrt_f32(a: np.ndarray) -> np.ndarray:
    """float32 square root as torch's CPU kernel rounds it (torch when installed, else correctly rounded).

    torch's float32 sqrt is not correctly rounded (one ulp off in about 1 in 6 values) and diffusers
    takes sigma tables from it; without torch we can only come within that ulp.
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


def _karras(cfg: SchedulerConfig, steps: int, lo: float, hi: float, config_bounds: bool) -> np.ndarray:
    """The Karras ramp between (lo, hi), or the config's sigma_min / sigma_max where that class reads them."""
    if config_bounds:
        lo = lo if cfg.sigma_min is None else cfg.sigma_min
        hi = hi if cfg.sigma_max is None else cfg.sigma_max
    return karras_sigmas(float(lo), float(hi), steps)


def sigma_schedule(cfg: SchedulerConfig, steps: int, karras: bool = False, karras_bounds: bool = False,
                   final: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """(float32 timesteps, float32 sigmas with the final sigma appended) as Euler/LMS/Heun build them."""
    ts = sigma_timesteps(cfg, steps)
    table = train_sigmas(cfg)
    sig = np.interp(ts, np.arange(0, len(table)), table)
    if karras:
        sig = _karras(cfg, steps, sig[-1], sig[0], karras_bounds)
        ts = sigma_to_t(sig, table).astype(np.float32)
    last = table[0] if final == "sigma_min" else 0.0
    return ts, np.concatenate([sig, [last]]).astype(np.float32)


def initial_sigma(sigmas: np.ndarray, spacing: str) -> float:
    """diffusers' init_noise_sigma: sigma_max, or sqrt(sigma_max^2 + 1) for "leading", in float32."""
    top = np.float32(sigmas.max())
    return float(top if spacing in ("linspace", "trailing") else sqrt_f32(top * top + np.float32(1)))


def _last_timestep(cfg: SchedulerConfig) -> int:
    """DPM-Solver's lambda_min_clipped: the schedule stops where lambda first exceeds the bound."""
    if cfg.lambda_min_clipped == float("-inf"):
        return cfg.num_train_timesteps
    ac = alphas_cumprod(cfg)
    lam = np.log(sqrt_f32(ac)) - np.log(sqrt_f32(np.float32(1) - ac))
    return cfg.num_train_timesteps - int(np.searchsorted(lam[::-1], cfg.lambda_min_clipped))


def multistep_schedule(cfg: SchedulerConfig, steps: int, dpm: bool) -> tuple[np.ndarray, np.ndarray]:
    """(int64 timesteps, float32 sigmas with the final sigma appended) as DPM-Solver (dpm) or UniPC build them.

    DPM-Solver clips lambda (lambda_min_clipped) and ramps Karras sigmas over the training table;
    UniPC reads the config's sigma_min / sigma_max and ends a "sigma_min" schedule on its own ramp.
    """
    ts = multistep_timesteps(cfg, steps, _last_timestep(cfg) if dpm else cfg.num_train_timesteps)
    table = train_sigmas(cfg)
    last_sigma = float(table[0]) if cfg.final_sigmas_type == "sigma_min" else 0.0
    if cfg.use_karras_sigmas:
        sig = _karras(cfg, steps, table[0], table[-1], not dpm)
        t = sigma_to_t(sig, table)
        ts = (t if dpm and cfg.beta_schedule == "squaredcos_cap_v2" else t.round()).astype(np.int64)
        if not dpm and cfg.final_sigmas_type == "sigma_min":
            last_sigma = float(sig[-1])
    else:
        sig = np.interp(ts, np.arange(0, len(table)), table)
    return ts, np.concatenate([sig, [last_sigma]]).astype(np.float32)


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
