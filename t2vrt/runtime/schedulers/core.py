"""What every sampler shares: its declaration (``Spec``), the built ``Sampler``, and the model-output conversions.

A sampler is built once from a frozen config and a step count; nothing has to be "set" before use.
The denoising loop is the same for all of them::

    sampler = make_sampler("ddim", config, num_inference_steps)
    x = noise * sampler.init_noise_sigma
    state = sampler.init_state()
    for i in range(len(sampler.timesteps)):  # one entry per model evaluation
        eps = model(sampler.scale_model_input(x, i), sampler.timesteps[i])
        x, state = sampler.step(i, x, eps, state, noise_like)

Video-to-video starts at ``i0 = t_start * sampler.order`` with a fresh ``init_state()`` on
``sampler.add_noise(x0, noise, i0)``.

Arrays are NumPy arrays or torch tensors: coefficients are Python floats, computed when the sampler
is built, and arrays are only combined with ``+ - *`` and ``/`` (and ``clip``), so the same lines run
on both. Multistep history lives in the returned state, never in the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SchedulerConfig, read_config, reject_unsupported, require_choice
from t2vrt.runtime.schedulers.tables import initial_sigma

NoiseFn = Callable[[Any], Any]  # noise_like(x) -> standard normal array shaped and typed like x
PREDICTIONS = ("epsilon", "v_prediction", "sample")
SPACINGS = ("leading", "linspace", "trailing")
GENERIC_OPTIONS = ("timestep_spacing", "steps_offset", "prediction_type")


class Solver(Protocol):
    """A sampler's own part: the coefficients it built and its update x_i -> x_{i+1}."""

    def step(self, i: int, x: Any, model_output: Any, state: Any, noise: Any) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class Sampler:
    """One scheduler built for one step count; see the module docstring for the loop."""

    name: str
    config: SchedulerConfig
    timesteps: np.ndarray  # model timestep per model evaluation (int64, or float32 for sigma samplers)
    num_inference_steps: int
    solver: Solver
    forward: tuple[tuple[float, float], ...]  # (a_i, s_i): add_noise gives a_i * x0 + s_i * noise at index i
    input_scale: tuple[float, ...] | None = None  # the model input is x / input_scale[i]; None: x itself
    noisy: frozenset[int] = frozenset()  # indices whose step draws one noise array, where diffusers draws one
    init_noise_sigma: float = 1.0
    order: int = 1  # model evaluations per inference step (2 for Heun)
    initial_state: Any = None

    def scale_model_input(self, x: Any, i: int) -> Any:
        return x if self.input_scale is None else x / self.input_scale[i]

    def init_state(self) -> Any:
        return self.initial_state

    def step(self, i: int, x: Any, model_output: Any, state: Any, noise_like: NoiseFn | None = None):
        """x at index i -> x at index i + 1, and the new state; stochastic samplers draw ``noise_like(x)``."""
        noise = None
        if i in self.noisy:
            if noise_like is None:
                raise SchedulerError(f"scheduler {self.name!r} is stochastic: pass noise_like to step()")
            noise = noise_like(x)
        return self.solver.step(i, x, model_output, state, noise)

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any:
        """The forward process at index i: the start of video-to-video."""
        a, s = self.forward[i]
        return a * x0 + s * noise


@dataclass(frozen=True)
class Spec:
    """What a sampler declares; calling it reads a model's scheduler config and builds the Sampler."""

    name: str
    diffusers_class: str  # the diffusers scheduler it reproduces
    build: Callable[..., Sampler]  # build(spec, config, steps, **extras)
    defaults: dict = field(default_factory=dict)  # its diffusers class's defaults where they differ from DDIM's
    options: tuple[str, ...] = ()  # config keys a caller may override besides GENERIC_OPTIONS
    extras: tuple[str, ...] = ()  # options that are not config keys, passed to build
    choices: dict = field(default_factory=dict)  # config key -> allowed values, besides spacing and prediction
    switches: tuple[str, ...] = ()  # config switches its diffusers class reads that t2vrt does not implement

    def __call__(self, config: dict, steps: int, **options: Any) -> Sampler:
        cfg, extras = read_config(self.name, config, options, self.defaults, GENERIC_OPTIONS + self.options,
                                  self.extras)
        reject_unsupported(cfg, self.name, self.switches)
        for key, allowed in {"prediction_type": PREDICTIONS, "timestep_spacing": SPACINGS, **self.choices}.items():
            require_choice(self.name, key, getattr(cfg, key), allowed)
        if not 1 <= steps <= cfg.num_train_timesteps:
            raise SchedulerError(f"num_inference_steps={steps} is outside [1, {cfg.num_train_timesteps}]")
        sampler, why = self._checked(cfg, steps, extras)
        if why:
            raise SchedulerError(self._limit_message(cfg, steps, extras, why))
        return sampler

    def _checked(self, cfg: SchedulerConfig, steps: int, extras: dict) -> tuple[Sampler | None, str]:
        """The sampler and "" if it builds and runs ``steps`` steps to a finite result; else None and why not."""
        try:
            with np.errstate(divide="raise", invalid="raise", over="raise"):
                sampler = self.build(self, cfg, steps, **extras)
                return sampler, dry_run(sampler)
        except (IndexError, ZeroDivisionError, FloatingPointError, OverflowError) as e:
            return None, f"{type(e).__name__}: {e}"

    def _limit_message(self, cfg: SchedulerConfig, steps: int, extras: dict, why: str) -> str:
        """The one line for a step count this sampler cannot take with this config: the largest one below it that
        works (the limit, lowered), and the spacing that takes any count."""
        below = range(steps - 1, max(0, steps - 64), -1)
        limit = next((n for n in below if not self._checked(cfg, n, extras)[1]), None)
        spacing = cfg.timestep_spacing
        fix = f"use at most {limit} steps" if limit else "use fewer steps"
        if spacing != "trailing":
            fix += ", or timestep_spacing='trailing'"
        return (f"scheduler {self.name!r} cannot run num_inference_steps={steps} with timestep_spacing={spacing!r} "
                f"(steps_offset {cfg.steps_offset}) on the model's {cfg.num_train_timesteps} training timesteps "
                f"({why[:120]}); {fix}")

    def vp(self, cfg: SchedulerConfig, timesteps: np.ndarray, steps: int, solver: Solver,
           alphas: Iterable[float], **kw: Any) -> Sampler:
        """A sampler on the DDPM process x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, a = alpha-bar at each index."""
        forward = tuple((a**0.5, (1 - a) ** 0.5) for a in alphas)
        return Sampler(self.name, cfg, timesteps, steps, solver, forward, **kw)

    def ve(self, cfg: SchedulerConfig, timesteps: np.ndarray, steps: int, solver: Solver, sigmas: np.ndarray,
           **kw: Any) -> Sampler:
        """A sampler on the VE process x = x0 + sigma eps (Karras et al. 2022, arXiv:2206.00364, eq. 3).

        The model sees x / sqrt(sigma^2 + 1), the VP-normalised input a noise-prediction network expects.
        """
        sig = [float(s) for s in sigmas[: len(timesteps)]]
        forward, scale = tuple((1.0, s) for s in sig), tuple((s**2 + 1) ** 0.5 for s in sig)
        init = initial_sigma(sigmas, cfg.timestep_spacing)
        return Sampler(self.name, cfg, timesteps, steps, solver, forward, scale, init_noise_sigma=init, **kw)


def dry_run(sampler: Sampler) -> str:
    """Run every step of ``sampler`` on one number with a stand-in model (eps = x / 10, noise 0.5): "" when each
    integer timestep lies in the training range and the result is finite, else why not (the sigma samplers'
    float timesteps may pass the last one, as diffusers' do: the sigma is clamped). Catches schedules that index past
    the training table or repeat a timestep (a zero step size), which would fail or give NaN mid-generation."""
    t, last = np.asarray(sampler.timesteps), sampler.config.num_train_timesteps - 1
    if t.size and t.dtype.kind == "i" and (t.min() < 0 or t.max() > last):  # integer: an index into the tables
        bad = t.max() if t.max() > last else t.min()
        return f"its schedule reaches timestep {bad:g}, outside the training timesteps 0..{last}"
    x, state = np.ones(1) * sampler.init_noise_sigma, sampler.init_state()
    for i in range(len(sampler.timesteps)):
        x, state = sampler.step(i, x, sampler.scale_model_input(x, i) / 10, state, lambda a: np.full(a.shape, 0.5))
    return "" if np.isfinite(x).all() else "the result is not finite"


def clip_range(cfg: SchedulerConfig) -> float | None:
    """The bound x0 predictions are clipped to, or None."""
    return cfg.clip_sample_range if cfg.clip_sample else None


def prediction_to_x0(x: Any, out: Any, prediction_type: str, alpha: float, sigma: float) -> Any:
    """The clean-sample prediction from the model output, for x = alpha * x0 + sigma * eps."""
    if prediction_type == "epsilon":
        return (x - sigma * out) / alpha
    if prediction_type == "v_prediction":  # Salimans & Ho 2022, arXiv:2202.00512, v = alpha*eps - sigma*x0
        return alpha * x - sigma * out
    return out  # "sample"


def ve_derivative(x: Any, out: Any, sigma: float, prediction_type: str, clip: float | None = None) -> Any:
    """dx/dsigma = (x - x0) / sigma, the probability-flow ODE in the VE view (Karras et al. 2022, eq. 3)."""
    if prediction_type == "epsilon":
        x0 = x - sigma * out
    elif prediction_type == "v_prediction":
        x0 = out * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
    else:
        x0 = out  # "sample"
    if clip is not None:
        x0 = x0.clip(-clip, clip)
    return (x - x0) / sigma
