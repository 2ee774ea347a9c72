"""Heun's 2nd-order sampler (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 without churn).

Matches diffusers' HeunDiscreteScheduler: 2N - 1 model evaluations for N steps (the last
step, down to sigma = 0, is a plain Euler step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, clip_range, ve_derivative
from t2vrt.runtime.schedulers.tables import sigma_schedule


@dataclass(frozen=True)
class HeunState:
    """The first (Euler) stage of a Heun step, kept for its correction."""

    derivative: Any
    dt: float
    sample: Any


@dataclass(frozen=True)
class HeunSolver:
    """Like diffusers, the stage is decided by the state: with no pending first stage a step is an Euler
    predictor, otherwise the trapezoidal corrector. Video-to-video starts at an even index, on a predictor.
    """

    sigmas: tuple[float, ...]  # one per model evaluation (every sigma but the first twice), then the final one
    prediction_type: str
    clip: float | None

    def step(self, i: int, x: Any, out: Any, state: HeunState | None, noise: Any):
        """Karras et al. 2022, Algorithm 1: an Euler predictor, then the trapezoidal corrector."""
        if state is None:  # predictor: Euler step sigma_i -> sigma_{i+1}
            sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
            d = ve_derivative(x, out, sigma, self.prediction_type, self.clip)
            dt = sigma_next - sigma
            return x + d * dt, HeunState(d, dt, x)
        d = ve_derivative(x, out, self.sigmas[i], self.prediction_type, self.clip)  # at the predicted point
        return state.sample + (state.derivative + d) / 2 * state.dt, None


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    """``timesteps`` repeats every timestep but the first: one entry per model evaluation."""
    ts, sig = sigma_schedule(cfg, steps, cfg.use_karras_sigmas)
    sig = np.concatenate([sig[:1], np.repeat(sig[1:-1], 2), sig[-1:]])
    ts = np.concatenate([ts[:1], np.repeat(ts[1:], 2)])
    solver = HeunSolver(tuple(float(s) for s in sig), cfg.prediction_type, clip_range(cfg))
    return spec.ve(cfg, ts, steps, solver, sig, order=2)


SPEC = Spec("heun", "HeunDiscreteScheduler", build,
            {"timestep_spacing": "linspace", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False},
            ("use_karras_sigmas", "clip_sample", "clip_sample_range"),
            switches=("use_exponential_sigmas", "use_beta_sigmas"))
