"""Euler and Euler ancestral samplers (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 / k-diffusion).

Match diffusers' EulerDiscreteScheduler (with s_churn = 0) and EulerAncestralDiscreteScheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2vrt.runtime.schedulers.base import NoiseFn, draw_noise, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.sigma_sampler import SigmaSampler, denoised, initial_sigma, sigma_schedule

EULER_DEFAULTS = {"timestep_spacing": "linspace"}
EULER_OPTIONS = ("use_karras_sigmas", "sigma_min", "sigma_max", "final_sigmas_type")
EULER_SWITCHES = ("rescale_betas_zero_snr", "use_exponential_sigmas", "use_beta_sigmas")


def euler_step(x, d, dt: float):
    """x + d * dt, one explicit Euler step of the probability-flow ODE (Karras et al. eq. 3)."""
    return x + d * dt


def ancestral_sigmas(sigma_from: float, sigma_to: float) -> tuple[float, float]:
    """(sigma_down, sigma_up): the deterministic target and the noise re-injected (k-diffusion get_ancestral_step)."""
    up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    return (sigma_to**2 - up**2) ** 0.5, up


@dataclass(frozen=True)
class Euler(SigmaSampler):
    """Deterministic Euler sampler over the (optionally Karras) sigma schedule."""

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "Euler":
        cfg, _ = read_config("euler", config, options, EULER_DEFAULTS, EULER_OPTIONS)
        return cls.build(cfg, steps)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int) -> "Euler":
        reject_unsupported(config, "euler", EULER_SWITCHES)
        require_choice("euler", "interpolation_type", config.interpolation_type, ("linear",))
        require_choice("euler", "timestep_type", config.timestep_type, ("discrete",))
        require_choice("euler", "prediction_type", config.prediction_type, ("epsilon", "v_prediction", "sample"))
        ts, sig = sigma_schedule("euler", config, steps, config.use_karras_sigmas, True, config.final_sigmas_type)
        init = initial_sigma(sig, config.timestep_spacing)
        return cls(config, ts, tuple(float(s) for s in sig), init, steps)

    def init_state(self) -> None:
        return None

    def step(self, i: int, x: Any, model_output: Any, state: None, noise_like: NoiseFn | None = None):
        sigma, sigma_next = self.sigmas[i], self.sigmas[i + 1]
        d = (x - denoised(x, model_output, sigma, self.config.prediction_type)) / sigma
        return euler_step(x, d, sigma_next - sigma), state


@dataclass(frozen=True)
class EulerAncestral(SigmaSampler):
    """Euler ancestral sampler (k-diffusion sample_euler_ancestral, eta = 1).

    Calls ``noise_like(x)`` once per step, every step including the last, as diffusers draws
    ``randn_tensor(model_output.shape)`` in the model output's dtype after the Euler update.
    """

    down: tuple[float, ...] = ()
    up: tuple[float, ...] = ()

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "EulerAncestral":
        cfg, _ = read_config("euler_a", config, options, EULER_DEFAULTS, ())
        return cls.build(cfg, steps)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int) -> "EulerAncestral":
        reject_unsupported(config, "euler_a", ("rescale_betas_zero_snr",))
        require_choice("euler_a", "prediction_type", config.prediction_type, ("epsilon", "v_prediction"))
        ts, sig = sigma_schedule("euler_a", config, steps)
        sigmas = tuple(float(s) for s in sig)
        pairs = [ancestral_sigmas(sigmas[i], sigmas[i + 1]) for i in range(len(ts))]
        init = initial_sigma(sig, config.timestep_spacing)
        return cls(config, ts, sigmas, init, steps, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    def init_state(self) -> None:
        return None

    def step(self, i: int, x: Any, model_output: Any, state: None, noise_like: NoiseFn | None = None):
        sigma = self.sigmas[i]
        d = (x - denoised(x, model_output, sigma, self.config.prediction_type)) / sigma
        x_next = euler_step(x, d, self.down[i] - sigma)
        return x_next + draw_noise(noise_like, x, "euler_a") * self.up[i], state
