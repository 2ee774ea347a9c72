"""Linear multistep (Adams-Bashforth in sigma, k-diffusion sample_lms / Karras et al. 2022 arXiv:2206.00364).

Matches diffusers' LMSDiscreteScheduler (order 4), whose coefficients integrate each Lagrange
basis polynomial over [sigma_i, sigma_{i+1}]; we integrate them exactly with Gauss-Legendre
quadrature instead of scipy's adaptive ``quad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, ve_derivative
from t2vrt.runtime.schedulers.tables import sigma_schedule

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
class LMSSolver:
    """The state holds the last derivatives, newest first, and the order ramps up with them.

    A run started at i0 > 0 therefore warms up from first order; diffusers instead takes the order
    from the absolute step index, applying 4th-order weights to a single derivative there (see the tests).
    """

    sigmas: tuple[float, ...]
    coeffs: tuple[tuple[tuple[float, ...], ...], ...]  # coeffs[i][order - 1]
    prediction_type: str

    def step(self, i: int, x: Any, out: Any, state: tuple, noise: Any):
        """x + sum_j c_j d_{i-j}: Adams-Bashforth over the derivatives (k-diffusion sample_lms)."""
        derivatives = ((ve_derivative(x, out, self.sigmas[i], self.prediction_type),) + state)[:MAX_ORDER]
        update = sum(c * dk for c, dk in zip(self.coeffs[i][len(derivatives) - 1], derivatives))
        return x + update, derivatives


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    ts, sig = sigma_schedule(cfg, steps, cfg.use_karras_sigmas)
    sigmas = tuple(float(s) for s in sig)
    coeffs = tuple(tuple(lms_coefficients(sigmas, i, k) for k in range(1, min(i + 1, MAX_ORDER) + 1))
                   for i in range(len(ts)))
    return spec.ve(cfg, ts, steps, LMSSolver(sigmas, coeffs, cfg.prediction_type), sig, initial_state=())


SPEC = Spec("lms", "LMSDiscreteScheduler", build, {"timestep_spacing": "linspace"}, ("use_karras_sigmas",),
            switches=("use_exponential_sigmas", "use_beta_sigmas"))
