"""DPM-Solver++ multistep, ODE and SDE (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, Algorithm 2).

Matches diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++" (2M by
default) and "sde-dpmsolver++" (2M SDE), solver orders 1-3, midpoint or heun 2nd-order term.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SWITCHES, SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, prediction_to_x0
from t2vrt.runtime.schedulers.tables import multistep_schedule, vp_alpha_sigma, vp_lambda

LOWER_ORDER_BELOW = 15  # diffusers lowers the final orders only for schedules shorter than this


@dataclass(frozen=True)
class DPMCoeffs:
    """x_next = cx * x + d0 * D0 + d1 * D1 + d2 * D2 + noise * z, one step at one order (paper's D terms)."""

    order: int
    cx: float
    d0: float
    d1: float = 0.0
    d2: float = 0.0
    r0: float = 1.0  # h_{i-1} / h_i
    r1: float = 1.0  # h_{i-2} / h_i
    noise: float = 0.0


def dpm_coefficients(sig: tuple[float, ...], order: int, sde: bool, heun: bool) -> DPMCoeffs:
    """Coefficients for the step sig[1] -> sig[0], history sig[1], sig[2], ... (VE sigmas, newest first).

    Paper eqs. (5)-(7) for the ODE; the SDE variant (its Appendix) doubles the exponent and adds
    noise. Float64 NumPy scalars give torch's inf/nan semantics where a step has h = 0 or inf.
    """
    alpha_t, sigma_t = vp_alpha_sigma(sig[0])
    _, sigma_s = vp_alpha_sigma(sig[1])
    lam = np.array([vp_lambda(s) for s in sig[: order + 1]])
    with np.errstate(all="ignore"):
        h = lam[0] - lam[1]
        r0 = (lam[1] - lam[2]) / h if order > 1 else 1.0
        r1 = (lam[2] - lam[3]) / h if order > 2 else 1.0
        second_exact = heun or order == 3  # the exact 2nd-order phi term instead of the midpoint 1/2
        if sde:
            em = 1.0 - np.exp(-2.0 * h)
            d0 = alpha_t * em
            d1 = alpha_t * (em / (-2.0 * h) + 1.0) if second_exact else 0.5 * d0
            d2 = alpha_t * ((em - 2.0 * h) / (2.0 * h) ** 2 - 0.5) if order == 3 else 0.0
            x_c, noise = sigma_t / sigma_s * np.exp(-h), sigma_t * em**0.5
        else:
            phi = np.exp(-h) - 1.0
            d0 = -alpha_t * phi
            d1 = alpha_t * (phi / h + 1.0) if second_exact else 0.5 * d0
            d2 = -alpha_t * ((phi + h) / h**2 - 0.5) if order == 3 else 0.0
            x_c, noise = sigma_t / sigma_s, 0.0
    return DPMCoeffs(order, *(float(v) for v in (x_c, d0, d1, d2, r0, r1, noise)))


def dpm_update(x, outputs: tuple, c: DPMCoeffs, noise=None):
    """One multistep DPM-Solver++ update from the newest ``c.order`` data predictions (oldest first).

    Order 2 is the paper's Algorithm 2 (DPM-Solver++(2M)); order 3 is diffusers' multistep third-order update.
    """
    m0 = outputs[-1]
    x_next = c.cx * x + c.d0 * m0
    if c.order == 2:
        x_next = x_next + c.d1 * ((1.0 / c.r0) * (m0 - outputs[-2]))
    elif c.order == 3:
        d1_0 = (1.0 / c.r0) * (m0 - outputs[-2])
        d1_1 = (1.0 / c.r1) * (outputs[-2] - outputs[-3])
        d1 = d1_0 + (c.r0 / (c.r0 + c.r1)) * (d1_0 - d1_1)
        d2 = (1.0 / (c.r0 + c.r1)) * (d1_0 - d1_1)
        x_next = x_next + c.d1 * d1 + c.d2 * d2
    return x_next if noise is None else x_next + c.noise * noise


@dataclass(frozen=True)
class DPMSolverPP:
    """The state is (recent data predictions, oldest first; warm-up count).

    The SDE variant draws noise every step; diffusers draws it with
    ``randn_tensor(model_output.shape, dtype=torch.float32)`` whatever the model's dtype.
    """

    vp: tuple[tuple[float, float], ...]  # (alpha_t, sigma_t) at sigmas[i]
    coeffs: tuple[tuple[DPMCoeffs, ...], ...]  # coeffs[i][order - 1]
    caps: tuple[int, ...]  # highest order allowed at step i (lower_order_final)
    solver_order: int
    prediction_type: str

    def step(self, i: int, x: Any, out: Any, state: tuple[tuple, int], noise: Any):
        outputs, warm = state
        x0 = prediction_to_x0(x, out, self.prediction_type, *self.vp[i])
        outputs = (outputs + (x0,))[-self.solver_order :]
        order = min(self.caps[i], warm + 1)
        x_next = dpm_update(x, outputs, self.coeffs[i][order - 1], noise)
        return x_next, (outputs, min(warm + 1, self.solver_order))


def order_caps(cfg: SchedulerConfig, n: int) -> tuple[int, ...]:
    """The highest order at each step: 1 at the last step (2 at the one before) when lowered."""
    lower = cfg.lower_order_final and n < LOWER_ORDER_BELOW
    caps = [cfg.solver_order] * n
    if n >= 2 and lower:
        caps[-2] = min(caps[-2], 2)
    if cfg.euler_at_final or lower or cfg.final_sigmas_type == "zero":
        caps[-1] = 1
    return tuple(caps)


def _history(sigmas: tuple[float, ...], i: int, order: int) -> tuple[float, ...]:
    """(sigma_{i+1}, sigma_i, sigma_{i-1}, ...) for a step at index i of the given order."""
    return tuple(sigmas[i + 1 - j] for j in range(order + 1))


def build(spec: Spec, cfg: SchedulerConfig, steps: int, sde: bool = False) -> Sampler:
    if cfg.variance_type in ("learned", "learned_range"):
        raise SchedulerError(f"scheduler {spec.name!r}: variance_type={cfg.variance_type!r} (a model that also "
                             "predicts its variance) is not supported")
    ts, sig = multistep_schedule(cfg, steps, dpm=True)
    sigmas = tuple(float(s) for s in sig)
    heun = cfg.solver_type == "heun"  # diffusers maps the other (UniPC/DEIS) solver types to midpoint
    coeffs = tuple(tuple(dpm_coefficients(_history(sigmas, i, k), k, sde, heun)
                         for k in range(1, min(cfg.solver_order, i + 1) + 1)) for i in range(len(ts)))
    vp = tuple(vp_alpha_sigma(s) for s in sigmas)
    solver = DPMSolverPP(vp, coeffs, order_caps(cfg, len(ts)), cfg.solver_order, cfg.prediction_type)
    noisy = frozenset(range(len(ts)) if sde else ())
    return Sampler(spec.name, cfg, ts, steps, solver, vp[: len(ts)], noisy=noisy, initial_state=((), 0))


SPEC = Spec("dpmsolver++", "DPMSolverMultistepScheduler", build,
            {"timestep_spacing": "linspace", "variance_type": None},
            ("use_karras_sigmas", "solver_order", "solver_type", "lower_order_final", "euler_at_final",
             "final_sigmas_type", "lambda_min_clipped"),
            choices={"solver_order": (1, 2, 3), "solver_type": ("midpoint", "heun", "logrho", "bh1", "bh2"),
                     "final_sigmas_type": ("zero", "sigma_min")}, switches=SWITCHES)
SDE_SPEC = replace(SPEC, name="dpmsolver++_sde", build=partial(build, sde=True))
