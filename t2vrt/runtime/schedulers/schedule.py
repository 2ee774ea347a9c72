"""Noise schedules and timestep spacings, computed in NumPy exactly as diffusers computes them.

diffusers builds betas with ``torch.linspace(..., dtype=torch.float32)`` and ``torch.cumprod``;
we reproduce both bit for bit (see ``torch_linspace_f32``) so no torch is needed at run time.
The spacings follow Table 2 of "Common Diffusion Noise Schedules and Sample Steps are Flawed"
(Lin et al. 2023, arXiv:2305.08891), with each diffusers scheduler's own variant.
"""

from __future__ import annotations

import math

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SchedulerConfig, require_choice

SPACINGS = ("leading", "linspace", "trailing")


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


def _check_steps(cfg: SchedulerConfig, steps: int) -> None:
    n = cfg.num_train_timesteps
    if not 1 <= steps <= n:
        raise SchedulerError(f"num_inference_steps={steps} is outside [1, {n}]")
    require_choice(None, "timestep_spacing", cfg.timestep_spacing, SPACINGS)


def spaced_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """Integer timesteps, descending, as DDIMScheduler / DDPMScheduler space them."""
    _check_steps(cfg, steps)
    n = cfg.num_train_timesteps
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    if cfg.timestep_spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + cfg.steps_offset
    return np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1


def pndm_base_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """PNDMScheduler's ``_timesteps``: ascending, and "linspace" is not reversed before use."""
    _check_steps(cfg, steps)
    n = cfg.num_train_timesteps
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps).round().astype(np.int64)
    if cfg.timestep_spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round().astype(np.int64) + cfg.steps_offset
    return np.round(np.arange(n, 0, -n / steps))[::-1].astype(np.int64) - 1


def sigma_timesteps(cfg: SchedulerConfig, steps: int) -> np.ndarray:
    """Float32 timesteps, descending, as the sigma schedulers (Euler, LMS, Heun) space them."""
    _check_steps(cfg, steps)
    n = cfg.num_train_timesteps
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, n - 1, steps, dtype=np.float32)[::-1].copy()
    if cfg.timestep_spacing == "leading":
        ts = (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.float32)
        return ts + np.float32(cfg.steps_offset)
    return np.arange(n, 0, -n / steps).round().astype(np.float32) - np.float32(1)


def multistep_timesteps(cfg: SchedulerConfig, steps: int, last: int | None = None) -> np.ndarray:
    """Integer timesteps, descending, as DPMSolverMultistep / UniPC space them (steps + 1 points, last dropped)."""
    _check_steps(cfg, steps)
    n = cfg.num_train_timesteps
    last = n if last is None else last
    if cfg.timestep_spacing == "linspace":
        return np.linspace(0, last - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    if cfg.timestep_spacing == "leading":
        ts = (np.arange(0, steps + 1) * (last // (steps + 1))).round()[::-1][:-1].astype(np.int64)
        return ts + cfg.steps_offset
    return np.arange(last, 0, -n / steps).round().astype(np.int64) - 1
