"""Schedulers as samplers built once from the engine directory's scheduler config."""

from __future__ import annotations

from typing import Any, Callable

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.base import Sampler, SchedulerConfig
from t2vrt.runtime.schedulers.ddim import DDIM

# name -> factory(config, steps, **options); the first name of each diffusers class is its default.
SCHEDULERS: dict[str, Callable[..., Sampler]] = {
    "ddim": DDIM.build,
}
# diffusers class name -> our name, so the model's own scheduler is the default.
CLASS_NAMES = {"DDIMScheduler": "ddim"}


def default_scheduler(config: dict) -> str:
    """Our name for the scheduler class a model's config names."""
    return CLASS_NAMES.get(config.get("_class_name", "DDIMScheduler"), "ddim")


def make_sampler(name: str | None, config: dict, steps: int, **options: Any) -> Sampler:
    """Build the named sampler (the model's own when name is None) for ``steps`` inference steps."""
    name = name or default_scheduler(config)
    if name not in SCHEDULERS:
        raise SchedulerError(f"unknown scheduler {name!r}; available: {', '.join(sorted(SCHEDULERS))}")
    try:
        return SCHEDULERS[name](SchedulerConfig.from_dict(config), steps, **options)
    except TypeError as e:
        raise SchedulerError(f"scheduler {name!r} does not take these options {sorted(options)}: {e}") from None
