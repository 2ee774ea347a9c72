"""The scheduler config: the keys of a diffusers ``scheduler_config.json`` that our samplers read.

diffusers' ``from_config`` semantics: a key present in the file is used by any scheduler
class that accepts it; a key absent from the file (or listed in ``_use_default_values``)
takes the *target* class's own default. Each sampler's ``Spec`` therefore declares its diffusers
class's defaults, and ``read_config`` passes them to :meth:`SchedulerConfig.from_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from t2vrt.errors import SchedulerError


@dataclass(frozen=True)
class SchedulerConfig:
    """Scheduler settings; field defaults are DDIMScheduler's (see ``from_dict`` for other classes)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    trained_betas: tuple[float, ...] | None = None
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    timestep_spacing: str = "leading"
    class_name: str = "DDIMScheduler"
    # features we reject when switched on (see reject_unsupported)
    thresholding: bool = False
    rescale_betas_zero_snr: bool = False
    use_exponential_sigmas: bool = False
    use_beta_sigmas: bool = False
    use_lu_lambdas: bool = False
    use_flow_sigmas: bool = False
    use_dynamic_shifting: bool = False
    # scheduler-specific keys
    variance_type: str | None = "fixed_small"  # DDPM
    skip_prk_steps: bool = False  # PNDM
    use_karras_sigmas: bool = False
    sigma_min: float | None = None
    sigma_max: float | None = None
    interpolation_type: str = "linear"  # Euler
    timestep_type: str = "discrete"  # Euler
    final_sigmas_type: str = "zero"
    solver_order: int = 2  # DPM-Solver, UniPC
    algorithm_type: str = "dpmsolver++"  # DPM-Solver
    solver_type: str = "midpoint"  # DPM-Solver: midpoint|heun; UniPC: bh1|bh2
    lower_order_final: bool = True
    euler_at_final: bool = False
    lambda_min_clipped: float = float("-inf")
    predict_x0: bool = True  # UniPC
    disable_corrector: tuple[int, ...] = ()  # UniPC

    @classmethod
    def from_dict(cls, d: dict, defaults: dict | None = None) -> SchedulerConfig:
        """Read a diffusers scheduler config dict; keys it lacks take ``defaults`` (the target class's)."""
        names = {f.name for f in fields(cls)}
        defaulted = set(d.get("_use_default_values", ()))
        kw: dict[str, Any] = dict(defaults or {})
        kw.update({k: v for k, v in d.items() if k in names and k not in defaulted})
        for key in ("trained_betas", "disable_corrector"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        if kw.get("lambda_min_clipped") is None:
            kw.pop("lambda_min_clipped", None)
        if "_class_name" in d:
            kw["class_name"] = d["_class_name"]
        return cls(**kw)


# Config switches that change the math in ways we do not implement.
SWITCHES = (
    "thresholding",
    "rescale_betas_zero_snr",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "use_lu_lambdas",
    "use_flow_sigmas",
    "use_dynamic_shifting",
)


def reject_unsupported(cfg: SchedulerConfig, name: str, switches: tuple[str, ...]) -> None:
    """Raise if the config switches on a feature (that sampler's diffusers class reads) we do not implement."""
    on = [s for s in switches if getattr(cfg, s)]
    if on:
        raise SchedulerError(
            f"scheduler {name!r}: {', '.join(f'{s}=True' for s in on)} is not supported by t2vrt's samplers; "
            "set it to false in scheduler_config.json or pick another scheduler"
        )


def require_choice(name: str, key: str, value: Any, allowed: tuple) -> None:
    """Raise a SchedulerError naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise SchedulerError(f"scheduler {name!r}: {key}={value!r} is not supported; "
                             f"use one of {', '.join(map(repr, allowed))}")


def read_config(name: str, config: dict, options: dict, defaults: dict,
                accepted: tuple[str, ...], extras: tuple[str, ...]) -> tuple[SchedulerConfig, dict]:
    """The sampler's config (its diffusers class defaults, the file, then ``options``) and its extra options.

    ``accepted`` are config keys a caller may override; ``extras`` are options that are not config keys.
    """
    unknown = sorted(set(options) - set(accepted) - set(extras))
    if unknown:
        raise SchedulerError(
            f"scheduler {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(accepted + extras))}"
        )
    overrides = {k: v for k, v in options.items() if k not in extras}
    merged = {k: v for k, v in config.items() if k not in overrides}
    merged.update(overrides)
    if "_use_default_values" in merged:
        merged["_use_default_values"] = [k for k in merged["_use_default_values"] if k not in overrides]
    return SchedulerConfig.from_dict(merged, defaults), {k: v for k, v in options.items() if k in extras}
