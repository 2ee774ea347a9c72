"""Schedules shared by the multistep VP solvers (DPM-Solver++, UniPC).

Both space steps + 1 points and drop the last, integrate in half log-SNR lambda, and lower
the solver order near the end of short schedules ("lower_order_final").
"""

from __future__ import annotations

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig, require_choice
from t2vrt.runtime.schedulers.schedule import alphas_cumprod, multistep_timesteps
from t2vrt.runtime.schedulers.sigmas import (
    interp_sigmas,
    karras_override,
    karras_sigmas,
    sigma_to_t,
    sqrt_f32,
    train_sigmas,
)

LOWER_ORDER_BELOW = 15  # diffusers lowers the final orders only for schedules shorter than this


def _last_timestep(cfg: SchedulerConfig) -> int:
    """DPM-Solver's lambda_min_clipped: the schedule stops where lambda first exceeds the bound."""
    if cfg.lambda_min_clipped == float("-inf"):
        return cfg.num_train_timesteps
    ac = alphas_cumprod(cfg)
    lam = np.log(sqrt_f32(ac)) - np.log(sqrt_f32(np.float32(1) - ac))
    return cfg.num_train_timesteps - int(np.searchsorted(lam[::-1], cfg.lambda_min_clipped))


def multistep_sigmas(name: str, cfg: SchedulerConfig, steps: int, clip_lambda: bool,
                     karras_bounds: bool) -> tuple[np.ndarray, np.ndarray]:
    """(int64 timesteps, float32 sigmas with the final sigma appended) as DPM-Solver / UniPC build them.

    ``clip_lambda`` and ``karras_bounds`` select DPM-Solver's (lambda_min_clipped, Karras ramp
    from the training table) or UniPC's (config sigma_min/sigma_max) behaviour.
    """
    require_choice(name, "final_sigmas_type", cfg.final_sigmas_type, ("zero", "sigma_min"))
    last = _last_timestep(cfg) if clip_lambda else None
    ts = multistep_timesteps(cfg, steps, last)
    table = train_sigmas(cfg)
    last_sigma = float(table[0]) if cfg.final_sigmas_type == "sigma_min" else 0.0
    if cfg.use_karras_sigmas:
        lo, hi = karras_override(cfg, float(table[0]), float(table[-1]), karras_bounds)
        sig = karras_sigmas(lo, hi, steps)
        t = sigma_to_t(sig, table)
        ts = (t if clip_lambda and cfg.beta_schedule == "squaredcos_cap_v2" else t.round()).astype(np.int64)
        if not clip_lambda and cfg.final_sigmas_type == "sigma_min":  # UniPC ends on its own ramp
            last_sigma = float(sig[-1])
    else:
        sig = interp_sigmas(ts, table)
    return ts, np.concatenate([sig, [last_sigma]]).astype(np.float32)


def order_caps(cfg: SchedulerConfig, n: int) -> tuple[int, ...]:
    """DPM-Solver's highest order at each step: 1 at the last step (2 at the one before) when lowered."""
    lower = cfg.lower_order_final and n < LOWER_ORDER_BELOW
    caps = [cfg.solver_order] * n
    if n >= 2 and lower:
        caps[-2] = min(caps[-2], 2)
    if cfg.euler_at_final or lower or cfg.final_sigmas_type == "zero":
        caps[-1] = 1
    return tuple(caps)
