"""UniPC multistep predictor-corrector (Zhao et al. 2023, arXiv:2302.04867, Algorithms 2-3, B(h) = bh1/bh2).

Matches diffusers' UniPCMultistepScheduler (UniP-p predictor, UniC-p corrector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SWITCHES, SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec, prediction_to_x0
from t2vrt.runtime.schedulers.tables import multistep_schedule, vp_alpha_sigma, vp_lambda


@dataclass(frozen=True)
class UniCoeffs:
    """x_new = cx * x_ref + m0 * M0 + sum_k d[k] * (M_{k+1} - M0) + new * (M_new - M0); M are converted outputs."""

    cx: float
    m0: float
    d: tuple[float, ...]
    new: float = 0.0


def unipc_coefficients(sig: tuple[float, ...], order: int, predict_x0: bool, bh2: bool,
                       corrector: bool) -> UniCoeffs:
    """Coefficients of the step sig[1] -> sig[0] with history sig[1], sig[2], ... (VE sigmas, newest first)."""
    alpha_t, sigma_t = vp_alpha_sigma(sig[0])
    alpha_s, sigma_s = vp_alpha_sigma(sig[1])
    lam = np.array([vp_lambda(s) for s in sig[: order + 1]])
    with np.errstate(all="ignore"):  # steps with h = 0 or inf give torch's inf/nan, as in diffusers
        h = lam[0] - lam[1]
        rks = np.append((lam[2:] - lam[1]) / h, 1.0)
        hh = -h if predict_x0 else h
        h_phi_1 = np.expm1(hh)
        b_h = np.expm1(hh) if bh2 else hh
        factorials = np.cumprod(np.arange(1, order + 1, dtype=np.float64))  # i!
        h_phi, b = h_phi_1 / hh - 1, []
        for i in range(1, order + 1):
            b.append(h_phi * factorials[i - 1] / b_h)
            h_phi = h_phi / hh - 1 / (factorials[i - 1] * (i + 1))
        rhos = _rhos(np.stack([rks ** (i - 1) for i in range(1, order + 1)]), np.array(b), order, corrector)
        scale = -(alpha_t if predict_x0 else sigma_t) * b_h
        d = tuple(float(scale * rho / rk) for rho, rk in zip(rhos, rks[:-1]))
        m0_c = -(alpha_t if predict_x0 else sigma_t) * h_phi_1
    x_c = sigma_t / sigma_s if predict_x0 else alpha_t / alpha_s
    return UniCoeffs(x_c, float(m0_c), d, float(scale * rhos[-1]) if corrector else 0.0)


def _rhos(r: np.ndarray, b: np.ndarray, order: int, corrector: bool) -> np.ndarray:
    """Solve R rho = b (paper eq. 8); order 1 corrector and order 2 predictor use rho = 1/2 as diffusers does."""
    if corrector and order == 1 or not corrector and order == 2:
        return np.array([0.5])
    if not corrector and order == 1:
        return np.array([])
    try:
        return np.linalg.solve(r, b) if corrector else np.linalg.solve(r[:-1, :-1], b[:-1])
    except np.linalg.LinAlgError:
        raise SchedulerError(
            f"unipc: the order-{order} step to sigma = 0 is singular (diffusers fails there too); "
            "set lower_order_final=True or final_sigmas_type='sigma_min'"
        ) from None


def unipc_update(x_ref, outputs: tuple, c: UniCoeffs, new=None):
    """Apply UniCoeffs to the stored outputs (oldest first) and, for the corrector, the new output.

    The predictor UniP-p without ``new``, the corrector UniC-p with it.
    """
    m0 = outputs[-1]
    x = c.cx * x_ref + c.m0 * m0
    for k, dk in enumerate(c.d):
        x = x + dk * (outputs[-(k + 2)] - m0)
    return x if new is None else x + c.new * (new - m0)


@dataclass(frozen=True)
class UniPCState:
    outputs: tuple = ()  # converted model outputs, oldest first, at most solver_order
    warm: int = 0  # diffusers' lower_order_nums
    last_sample: Any = None  # x the last predictor started from, for the corrector
    last_order: int = 0


@dataclass(frozen=True)
class UniPCSolver:
    """Each step corrects the previous prediction with the new model output (UniC), then predicts (UniP)."""

    vp: tuple[tuple[float, float], ...]  # (alpha_t, sigma_t) at sigmas[i]
    pred: tuple[tuple[UniCoeffs, ...], ...]  # pred[i][order - 1]
    corr: tuple[tuple[UniCoeffs, ...], ...]  # corr[i][order - 1], correcting step i - 1
    caps: tuple[int, ...]
    corrects: frozenset[int]  # steps that correct the previous one (not the first, not disable_corrector's)
    solver_order: int
    predict_x0: bool
    prediction_type: str

    def _convert(self, x: Any, out: Any, i: int) -> Any:
        """The data prediction (predict_x0) or the noise prediction, from the model output."""
        alpha, sigma = self.vp[i]
        if self.predict_x0:
            return prediction_to_x0(x, out, self.prediction_type, alpha, sigma)
        if self.prediction_type == "v_prediction":
            return alpha * out + sigma * x
        return out if self.prediction_type == "epsilon" else (x - alpha * out) / sigma

    def step(self, i: int, x: Any, out: Any, state: UniPCState, noise: Any):
        m = self._convert(x, out, i)
        if i in self.corrects and state.last_sample is not None:
            x = unipc_update(state.last_sample, state.outputs, self.corr[i][state.last_order - 1], m)
        outputs = (state.outputs + (m,))[-self.solver_order :]
        order = min(self.caps[i], state.warm + 1)
        x_next = unipc_update(x, outputs, self.pred[i][order - 1])
        return x_next, UniPCState(outputs, min(state.warm + 1, self.solver_order), x, order)


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    if not cfg.predict_x0 and cfg.final_sigmas_type == "zero":
        raise SchedulerError("unipc: predict_x0=False with final_sigmas_type='zero' ends in NaN (in diffusers "
                             "too); set final_sigmas_type='sigma_min' or predict_x0=True")
    ts, sig = multistep_schedule(cfg, steps, dpm=False)
    s = tuple(float(v) for v in sig)
    n, p, bh2 = len(ts), cfg.solver_order, cfg.solver_type != "bh1"  # diffusers maps others to bh2

    def hist(start: int, k: int) -> tuple[float, ...]:
        return tuple(s[start - j] for j in range(k + 1))

    caps = tuple(min(p, n - i) if cfg.lower_order_final else p for i in range(n))
    pred = tuple(tuple(unipc_coefficients(hist(i + 1, k), k, cfg.predict_x0, bh2, False)
                       for k in range(1, min(caps[i], i + 1) + 1)) for i in range(n))
    corr = tuple(tuple(unipc_coefficients(hist(i, k), k, cfg.predict_x0, bh2, True)
                       for k in range(1, min(caps[i - 1] if i else 0, i) + 1)) for i in range(n))
    corrects = frozenset(i for i in range(1, n) if i - 1 not in cfg.disable_corrector)
    vp = tuple(vp_alpha_sigma(v) for v in s)
    solver = UniPCSolver(vp, pred, corr, caps, corrects, p, cfg.predict_x0, cfg.prediction_type)
    return Sampler(spec.name, cfg, ts, steps, solver, vp[:n], initial_state=UniPCState())


SPEC = Spec("unipc", "UniPCMultistepScheduler", build, {"timestep_spacing": "linspace", "solver_type": "bh2"},
            ("use_karras_sigmas", "solver_order", "solver_type", "lower_order_final", "final_sigmas_type",
             "predict_x0", "disable_corrector", "sigma_min", "sigma_max"),
            choices={"solver_type": ("bh1", "bh2", "midpoint", "heun", "logrho"),
                     "final_sigmas_type": ("zero", "sigma_min")},
            switches=tuple(k for k in SWITCHES if k != "use_lu_lambdas"))
