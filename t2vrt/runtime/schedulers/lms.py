"""Linear multistep (Adams-Bashforth in sigma, k-diffusion sample_lms / Karras et al. 2022 arXiv:2206.00364).

Matches diffusers' LMSDiscreteScheduler (order 4), whose coefficients integrate each Lagrange
basis polynomial over [sigma_i, sigma_{i+1}]; we integrate them exactly with Gauss-Legendre
quadrature instead of scipy's adaptive ``quad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.base import NoiseFn, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.sigma_sampler import SigmaSampler, denoised, initial_sigma, sigma_schedule

DEFAULTS = {"timestep_spacing": "linspace"}
CONFIG_OPTIONS = ("use_karras_sigmas",)
MAX_ORDER = 4
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(MAX_ORDER)  # exact for the degree <= 3 integrands


def lms_coefficients(sigmas: tuple[float, ...], i: int, order: int) -> tuple[float, ...]:
    """Integral over [sigma_i, sigma_{i+1}] of the Lagrange basis on sigma_i, sigma_{i-1}, ...; newest first."""
    a, b = sigmas[i], sigmas[i + 1]
    tau = (b - a) / 2 * _NODES + (a + b) / 2
    coeffs = []
    for j in range(order):
        basis = np.ones_like(tau)
        for k in range(order):
            if k != j:
                basis *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
        coeffs.append(float((b - a) / 2 * np.dot(_WEIGHTS, basis)))
    return tuple(coeffs)


@dataclass(frozen=True)
class LMS(SigmaSampler):
    """Order-4 linear multistep sampler; the state holds the last derivatives, newest first.

    The order ramps up with the derivatives the state holds, so a run started at i0 > 0
    warms up from first order. diffusers instead takes the order from the absolute step
    index, applying 4th-order weights to a single derivative there (see the tests).
    """

    coeffs: tuple[tuple[tuple[float, ...], ...], ...] = ()  # coeffs[i][order - 1]

    @classmethod
    def from_config(cls, config: dict, steps: int, **options: Any) -> "LMS":
        cfg, _ = read_config("lms", config, options, DEFAULTS, CONFIG_OPTIONS)
        return cls.build(cfg, steps)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int) -> "LMS":
        reject_unsupported(config, "lms", ("use_exponential_sigmas", "use_beta_sigmas"))
        require_choice("lms", "prediction_type", config.prediction_type, ("epsilon", "v_prediction", "sample"))
        ts, sig = sigma_schedule("lms", config, steps, config.use_karras_sigmas)
        sigmas = tuple(float(s) for s in sig)
        coeffs = tuple(
            tuple(lms_coefficients(sigmas, i, k) for k in range(1, min(i + 1, MAX_ORDER) + 1)) for i in range(len(ts))
        )
        return cls(config, ts, sigmas, initial_sigma(sig, config.timestep_spacing), steps, coeffs)

    def init_state(self) -> tuple:
        return ()

    def step(self, i: int, x: Any, model_output: Any, state: tuple, noise_like: NoiseFn | None = None):
        sigma = self.sigmas[i]
        d = (x - denoised(x, model_output, sigma, self.config.prediction_type)) / sigma
        derivatives = ((d,) + state)[:MAX_ORDER]
        update = sum(c * dk for c, dk in zip(self.coeffs[i][len(derivatives) - 1], derivatives))
        return x + update, derivatives
