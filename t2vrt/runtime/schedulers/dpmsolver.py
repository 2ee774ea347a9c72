"""DPM-Solver++ multistep, ODE and SDE (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, Algorithm 2).

Matches diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++" (2M by
default) and "sde-dpmsolver++" (2M SDE), solver orders 1-3, midpoint or heun 2nd-order term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.base import NoiseFn, draw_noise, prediction_to_x0, read_config
from t2vrt.runtime.schedulers.config import SchedulerConfig, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.multistep import multistep_sigmas, order_caps
from t2vrt.runtime.schedulers.sigmas import vp_alpha_sigma, vp_lambda

DEFAULTS = {"timestep_spacing": "linspace"}
CONFIG_OPTIONS = ("use_karras_sigmas", "solver_order", "solver_type", "lower_order_final", "euler_at_final",
                  "final_sigmas_type", "lambda_min_clipped")
SWITCHES = ("thresholding", "rescale_betas_zero_snr", "use_exponential_sigmas", "use_beta_sigmas",
            "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting")


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
    """One multistep DPM-Solver++ update from the newest ``c.order`` data predictions (oldest first)."""
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
class DPMSolver:
    """DPM-Solver++ multistep sampler; the state is (recent data predictions, oldest first; warm-up count).

    The SDE variant calls ``noise_like(x)`` once per step, every step; diffusers draws that noise
    with ``randn_tensor(model_output.shape, dtype=torch.float32)`` whatever the model's dtype.
    """

    config: SchedulerConfig
    timesteps: np.ndarray
    sigmas: tuple[float, ...]
    vp: tuple[tuple[float, float], ...]  # (alpha_t, sigma_t) at sigmas[i]
    coeffs: tuple[tuple[DPMCoeffs, ...], ...]  # coeffs[i][order - 1]
    caps: tuple[int, ...]  # highest order allowed at step i (lower_order_final)
    sde: bool
    init_noise_sigma: float = 1.0
    order: int = 1

    @property
    def num_inference_steps(self) -> int:
        return len(self.timesteps)

    @classmethod
    def from_config(cls, config: dict, steps: int, sde: bool = False, **options: Any) -> "DPMSolver":
        name = "dpmsolver++_sde" if sde else "dpmsolver++"
        cfg, _ = read_config(name, config, options, DEFAULTS, CONFIG_OPTIONS)
        return cls.build(cfg, steps, sde)

    @classmethod
    def build(cls, config: SchedulerConfig, steps: int, sde: bool = False) -> "DPMSolver":
        name = "dpmsolver++_sde" if sde else "dpmsolver++"
        reject_unsupported(config, name, SWITCHES)
        require_choice(name, "prediction_type", config.prediction_type, ("epsilon", "v_prediction", "sample"))
        require_choice(name, "solver_order", config.solver_order, (1, 2, 3))
        require_choice(name, "solver_type", config.solver_type, ("midpoint", "heun", "logrho", "bh1", "bh2"))
        if config.variance_type in ("learned", "learned_range"):
            raise SchedulerError(f"scheduler {name!r}: variance_type={config.variance_type!r} (a model that also "
                                 "predicts its variance) is not supported")
        ts, sig = multistep_sigmas(name, config, steps, clip_lambda=True, karras_bounds=False)
        sigmas = tuple(float(s) for s in sig)
        heun = config.solver_type == "heun"  # diffusers maps the other (UniPC/DEIS) solver types to midpoint
        coeffs = tuple(
            tuple(dpm_coefficients(_history(sigmas, i, k), k, sde, heun)
                  for k in range(1, min(config.solver_order, i + 1) + 1))
            for i in range(len(ts))
        )
        vp = tuple(vp_alpha_sigma(s) for s in sigmas)
        return cls(config, ts, sigmas, vp, coeffs, order_caps(config, len(ts)), sde)

    def scale_model_input(self, x: Any, i: int) -> Any:
        return x

    def init_state(self) -> tuple[tuple, int]:
        return (), 0

    def step(self, i: int, x: Any, model_output: Any, state: tuple[tuple, int], noise_like: NoiseFn | None = None):
        outputs, warm = state
        x0 = prediction_to_x0(x, model_output, self.config.prediction_type, *self.vp[i])
        outputs = (outputs + (x0,))[-self.config.solver_order :]
        noise = draw_noise(noise_like, x, "dpmsolver++_sde") if self.sde else None
        order = min(self.caps[i], warm + 1)
        x_next = dpm_update(x, outputs, self.coeffs[i][order - 1], noise)
        return x_next, (outputs, min(warm + 1, self.config.solver_order))

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        """alpha_t * x0 + sigma_t * noise at sigmas[i] (VP forward process)."""
        alpha, sigma = self.vp[i]
        return alpha * x0 + sigma * noise


def _history(sigmas: tuple[float, ...], i: int, order: int) -> tuple[float, ...]:
    """(sigma_{i+1}, sigma_i, sigma_{i-1}, ...) for a step at index i of the given order."""
    return tuple(sigmas[i + 1 - j] for j in range(order + 1))
