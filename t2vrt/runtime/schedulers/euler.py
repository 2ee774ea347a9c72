"""Euler and Euler ancestral samplers (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 / k-diffusion).

Match diffusers' EulerDiscreteScheduler (with s_churn = 0) and EulerAncestralDiscreteScheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, ve_derivative
from t2vrt.runtime.schedulers.tables import sigma_schedule


def ancestral_sigmas(sigma_from: float, sigma_to: float) -> tuple[float, float]:
    """(sigma_down, sigma_up): the deterministic target and the noise re-injected (k-diffusion get_ancestral_step)."""
    up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    return (sigma_to**2 - up**2) ** 0.5, up


@dataclass(frozen=True)
class EulerSolver:
    """x + d * (sigma_next - sigma), one explicit Euler step of the probability-flow ODE (Karras et al. eq. 3)."""

    sigmas: tuple[float, ...]  # one per timestep, then the final one
    prediction_type: str

    def step(self, i: int, x: Any, out: Any, state: None, noise: Any):
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        return x + ve_derivative(x, out, sigma, self.prediction_type) * (sigma_next - sigma), state


@dataclass(frozen=True)
class EulerAncestralSolver:
    """Euler to sigma_down, then noise up to sigma_next (k-diffusion sample_euler_ancestral, eta = 1).

    Every step draws noise, the last one included, as diffusers draws ``randn_tensor(model_output.shape)``
    in the model output's dtype after the Euler update.
    """

    sigmas: tuple[float, ...]
    down: tuple[float, ...]
    up: tuple[float, ...]
    prediction_type: str

    def step(self, i: int, x: Any, out: Any, state: None, noise: Any):
        sigma = self.sigmas[i]
        x_next = x + ve_derivative(x, out, sigma, self.prediction_type) * (self.down[i] - sigma)
        return x_next + noise * self.up[i], state


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    ts, sig = sigma_schedule(cfg, steps, cfg.use_karras_sigmas, True, cfg.final_sigmas_type)
    return spec.ve(cfg, ts, steps, EulerSolver(tuple(float(s) for s in sig), cfg.prediction_type), sig)


def build_ancestral(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    ts, sig = sigma_schedule(cfg, steps)
    sigmas = tuple(float(s) for s in sig)
    down, up = zip(*(ancestral_sigmas(sigmas[i], sigmas[i + 1]) for i in range(len(ts))))
    solver = EulerAncestralSolver(sigmas, down, up, cfg.prediction_type)
    return spec.ve(cfg, ts, steps, solver, sig, noisy=frozenset(range(len(ts))))


SPEC = Spec("euler", "EulerDiscreteScheduler", build, {"timestep_spacing": "linspace"},
            ("use_karras_sigmas", "sigma_min", "sigma_max", "final_sigmas_type"),
            choices={"interpolation_type": ("linear",), "timestep_type": ("discrete",),
                     "final_sigmas_type": ("zero", "sigma_min")},
            switches=("rescale_betas_zero_snr", "use_exponential_sigmas", "use_beta_sigmas"))
ANCESTRAL_SPEC = Spec("euler_a", "EulerAncestralDiscreteScheduler", build_ancestral, {"timestep_spacing": "linspace"},
                      choices={"prediction_type": ("epsilon", "v_prediction")}, switches=("rescale_betas_zero_snr",))
