"""The sampler interface shared by every scheduler.

A sampler is built once from a frozen config and a step count; nothing has to be
"set" before use. The denoising loop is the same for all of them::

    sampler = make_sampler("ddim", config, num_inference_steps)
    x = noise * sampler.init_noise_sigma
    state = sampler.init_state()
    for i in range(len(sampler.timesteps)):  # one entry per model evaluation
        eps = model(sampler.scale_model_input(x, i), sampler.timesteps[i])
        x, state = sampler.step(i, x, eps, state, noise_like)

Video-to-video starts at ``i0 = t_start * sampler.order`` with a fresh ``init_state()``
on ``sampler.add_noise(x0, noise, i0)``.

Arrays are NumPy arrays or torch tensors: coefficients are Python floats and arrays are
only combined with ``+ - *`` and ``/`` (and ``clip``), so the same lines run on both.
Multistep history lives in the returned state, never in the sampler.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.schedule import alphas_cumprod, betas, spaced_timesteps

__all__ = [
    "NoiseFn",
    "Sampler",
    "SchedulerConfig",
    "alphas_cumprod",
    "betas",
    "clip",
    "draw_noise",
    "spaced_timesteps",
]

NoiseFn = Callable[[Any], Any]  # noise_like(x) -> standard normal array shaped and typed like x


class Sampler(Protocol):
    """What the pipeline needs of a scheduler; see the module docstring for the loop."""

    timesteps: np.ndarray  # model timestep per model evaluation (int64, or float32 for sigma samplers)
    init_noise_sigma: float
    order: int  # model evaluations per inference step (2 for Heun)
    num_inference_steps: int

    def scale_model_input(self, x: Any, i: int) -> Any: ...

    def init_state(self) -> Any: ...

    def step(self, i: int, x: Any, model_output: Any, state: Any, noise_like: NoiseFn | None) -> tuple[Any, Any]: ...

    def add_noise(self, x0: Any, noise: Any, i: int) -> Any: ...


def clip(x: Any, bound: float) -> Any:
    """Clamp to [-bound, bound]; ``clip`` is a method of both NumPy arrays and torch tensors."""
    return x.clip(-bound, bound)


def draw_noise(noise_like: NoiseFn | None, x: Any, name: str) -> Any:
    """One standard-normal draw shaped like x; stochastic samplers fail loudly without a source."""
    if noise_like is None:
        raise SchedulerError(f"scheduler {name!r} is stochastic: pass noise_like to step()")
    return noise_like(x)


GENERIC_OPTIONS = ("timestep_spacing", "steps_offset", "prediction_type")


def read_config(
    name: str,
    config: dict,
    options: dict,
    defaults: dict,
    config_options: tuple[str, ...],
    extra_options: tuple[str, ...] = (),
) -> tuple[SchedulerConfig, dict]:
    """The sampler's config (its diffusers class defaults, the file, then ``options``) and its extra options.

    ``config_options`` are config keys a caller may override; ``extra_options`` go to ``build``.
    """
    accepted = GENERIC_OPTIONS + config_options + extra_options
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise SchedulerError(
            f"scheduler {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(accepted))}"
        )
    overrides = {k: v for k, v in options.items() if k not in extra_options}
    extras = {k: v for k, v in options.items() if k in extra_options}
    merged = {k: v for k, v in config.items() if k not in overrides}
    merged.update(overrides)
    if "_use_default_values" in merged:
        merged["_use_default_values"] = [k for k in merged["_use_default_values"] if k not in overrides]
    return SchedulerConfig.from_dict(merged, defaults), extras


def prediction_to_x0(x: Any, out: Any, prediction_type: str, alpha: float, sigma: float) -> Any:
    """The clean-sample prediction from the model output, for x = alpha * x0 + sigma * eps."""
    if prediction_type == "epsilon":
        return (x - sigma * out) / alpha
    if prediction_type == "v_prediction":  # Salimans & Ho 2022, arXiv:2202.00512, v = alpha*eps - sigma*x0
        return alpha * x - sigma * out
    return out  # "sample"
