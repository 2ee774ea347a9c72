"""PNDM / PLMS (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models", arXiv:2202.09778).

Matches diffusers' PNDMScheduler: a 4-stage pseudo Runge-Kutta warm-up over the first 3
steps (12 model evaluations) then 4th-order linear multistep, or with ``skip_prk_steps``
the PLMS warm-up of the paper's code (one timestep evaluated twice).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec
from t2vrt.runtime.schedulers.tables import alphas_cumprod, spaced_timesteps

Pair = tuple[float, float, float, float]  # (sqrt(a_prev / a_t), transfer coefficient, sqrt a_t, sqrt(1 - a_t))


def pndm_transfer(x, eps, c: Pair, prediction_type: str = "epsilon"):
    """The transfer phi(x_t, eps_t, t, t_prev) of the paper, eq. (11)."""
    sample_coeff, k, sqrt_a, sqrt_b = c
    if prediction_type == "v_prediction":
        eps = sqrt_a * eps + sqrt_b * x
    return sample_coeff * x - k * eps


def plms_combine(ets: tuple) -> Any:
    """Adams-Bashforth combination of the last 1 to 4 noise predictions (eq. 12), oldest first."""
    if len(ets) == 1:
        return ets[0]
    if len(ets) == 2:
        return (3 * ets[-1] - ets[-2]) / 2
    if len(ets) == 3:
        return (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
    return (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])


@dataclass(frozen=True)
class PNDMState:
    counter: int = 0  # evaluations since the run started (diffusers' counter)
    ets: tuple = ()  # last <= 4 noise predictions, oldest first
    cur_sample: Any = None  # x at the start of the current Runge-Kutta step / PLMS warm-up
    cur_output: Any = 0  # Runge-Kutta weighted sum of outputs so far


@dataclass(frozen=True)
class PNDMSolver:
    """Like diffusers, the warm-up is counted from the first step taken. Its PLMS warm-up expects
    the duplicated timestep at positions 1-2, so a run started at i0 > 0 (video-to-video, with
    ``skip_prk_steps``) replays diffusers exactly: from i0 + 2 on the model is told the next
    timestep while x still carries the previous one's noise. Without ``skip_prk_steps``,
    whose Runge-Kutta table is indexed by that counter, starting at i0 > 0 raises.
    """

    prk_evals: int
    normal: tuple[Pair | None, ...]  # transfer timesteps[i] -> timesteps[i] - T // N (or the RK stage's pair)
    redo: tuple[Pair | None, ...]  # warm-up redo: timesteps[i] + T // N -> timesteps[i]
    prediction_type: str

    def step(self, i: int, x: Any, out: Any, state: PNDMState, noise: Any):
        if state.counter < self.prk_evals:
            if state.counter != i:
                raise SchedulerError(
                    f"pndm with its Runge-Kutta warm-up cannot start mid-schedule (i={i}); "
                    "set skip_prk_steps=True or use another scheduler for video-to-video"
                )
            return self._step_prk(i, x, out, state)
        return self._step_plms(i, x, out, state)

    def _step_prk(self, i: int, x: Any, e: Any, state: PNDMState):
        """One stage of the pseudo 4th-order Runge-Kutta step (eq. 13 of the paper)."""
        stage = state.counter % 4
        if stage == 0:
            state = replace(state, cur_output=(1 / 6) * e, ets=(state.ets + (e,))[-4:], cur_sample=x)
        elif stage < 3:
            state = replace(state, cur_output=state.cur_output + (1 / 3) * e)
        else:
            e = state.cur_output + (1 / 6) * e
            state = replace(state, cur_output=0)
        x_prev = pndm_transfer(state.cur_sample, e, self.normal[i], self.prediction_type)
        return x_prev, replace(state, counter=state.counter + 1)

    def _step_plms(self, i: int, x: Any, e: Any, state: PNDMState):
        """Pseudo linear multistep (eq. 12); the second evaluation of a fresh run redoes the first step."""
        pair = self.normal[i]
        if state.counter == 1:
            e, x, pair = (e + state.ets[-1]) / 2, state.cur_sample, self.redo[i]
            state = replace(state, cur_sample=None)
        else:
            state = replace(state, ets=(state.ets[-3:] + (e,)))
            if state.counter == 0:
                state = replace(state, cur_sample=x)
            e = plms_combine(state.ets)
        x_prev = pndm_transfer(x, e, pair, self.prediction_type)
        return x_prev, replace(state, counter=state.counter + 1)


def _timesteps(cfg: SchedulerConfig, steps: int) -> tuple[np.ndarray, int]:
    """(timesteps, Runge-Kutta evaluations): N + 9 entries (N + 1 with ``skip_prk_steps``)."""
    base = spaced_timesteps(cfg, steps)[::-1]  # PNDMScheduler's ascending _timesteps
    ratio = cfg.num_train_timesteps // steps
    if cfg.skip_prk_steps:
        return np.concatenate([base[:-1], base[-2:-1], base[-1:]])[::-1].astype(np.int64), 0
    if steps < 4:
        raise SchedulerError(f"pndm needs at least 4 steps for its Runge-Kutta warm-up (got {steps}); "
                             "set skip_prk_steps=True or use more steps")
    prk = np.repeat(base[-4:], 2) + np.tile([0, ratio // 2], 4)
    prk = np.repeat(prk[:-1], 2)[1:-1][::-1]
    return np.concatenate([prk, base[:-3][::-1]]).astype(np.int64), len(prk)


def build(spec: Spec, cfg: SchedulerConfig, steps: int) -> Sampler:
    ts, prk_evals = _timesteps(cfg, steps)
    ratio = cfg.num_train_timesteps // steps
    ac = alphas_cumprod(cfg).astype(np.float64)
    final = 1.0 if cfg.set_alpha_to_one else float(ac[0])

    def pair(t: int, prev: int) -> Pair | None:
        if not 0 <= t < cfg.num_train_timesteps:
            return None
        a_t, a_prev = float(ac[t]), float(ac[prev]) if prev >= 0 else final
        denom = a_t * (1 - a_prev) ** 0.5 + (a_t * (1 - a_t) * a_prev) ** 0.5
        return (a_prev / a_t) ** 0.5, (a_prev - a_t) / denom, a_t**0.5, (1 - a_t) ** 0.5

    normal = [pair(int(t), int(t) - ratio) for t in ts]
    for i in range(prk_evals):  # RK stage: from the step's first timestep to a half or whole step on
        normal[i] = pair(int(ts[i // 4 * 4]), int(ts[i]) - (0 if i % 2 else ratio // 2))
    redo = tuple(pair(int(t) + ratio, int(t)) for t in ts)
    solver = PNDMSolver(prk_evals, tuple(normal), redo, cfg.prediction_type)
    return spec.vp(cfg, ts, steps, solver, (float(ac[t]) for t in ts), initial_state=PNDMState())


SPEC = Spec("pndm", "PNDMScheduler", build, {"set_alpha_to_one": False, "skip_prk_steps": False},
            ("skip_prk_steps", "set_alpha_to_one"), choices={"prediction_type": ("epsilon", "v_prediction")})
