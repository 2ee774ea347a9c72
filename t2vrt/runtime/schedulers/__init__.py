"""Schedulers as samplers built once from the model's scheduler config.

Names (``make_sampler(name, ...)``) and the diffusers class each one reproduces:

========================  ==========================================================
``ddim``                  DDIMScheduler (option ``eta``; eta > 0 is stochastic)
``ddpm``                  DDPMScheduler (stochastic)
``pndm``                  PNDMScheduler (PLMS; the Runge-Kutta warm-up unless
                          ``skip_prk_steps``)
``lms``                   LMSDiscreteScheduler
``euler``                 EulerDiscreteScheduler
``euler_a``               EulerAncestralDiscreteScheduler (stochastic)
``heun``                  HeunDiscreteScheduler (2 model evaluations per step)
``dpmsolver++``           DPMSolverMultistepScheduler, algorithm_type="dpmsolver++"
                          (DPM-Solver++ 2M by default; ``use_karras_sigmas``,
                          ``solver_order``)
``dpmsolver++_sde``       DPMSolverMultistepScheduler, algorithm_type="sde-dpmsolver++"
                          (DPM-Solver++ 2M SDE, stochastic)
``unipc``                 UniPCMultistepScheduler
========================  ==========================================================

Aliases: ``dpm++2m`` = ``dpmsolver++``, ``dpm++2m_sde`` = ``dpmsolver++_sde``,
``euler_ancestral`` = ``euler_a``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers.base import Sampler
from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.ddim import DDIM
from t2vrt.runtime.schedulers.ddpm import DDPM
from t2vrt.runtime.schedulers.dpmsolver import DPMSolver
from t2vrt.runtime.schedulers.euler import Euler, EulerAncestral
from t2vrt.runtime.schedulers.heun import Heun
from t2vrt.runtime.schedulers.lms import LMS
from t2vrt.runtime.schedulers.pndm import PNDM
from t2vrt.runtime.schedulers.unipc import UniPC

__all__ = ["CLASS_NAMES", "SCHEDULERS", "Sampler", "SchedulerConfig", "default_scheduler", "make_sampler"]

# name -> factory(scheduler_config_dict, num_inference_steps, **options)
SCHEDULERS: dict[str, Callable[..., Sampler]] = {
    "ddim": DDIM.from_config,
    "ddpm": DDPM.from_config,
    "pndm": PNDM.from_config,
    "lms": LMS.from_config,
    "euler": Euler.from_config,
    "euler_a": EulerAncestral.from_config,
    "heun": Heun.from_config,
    "dpmsolver++": DPMSolver.from_config,
    "dpmsolver++_sde": partial(DPMSolver.from_config, sde=True),
    "unipc": UniPC.from_config,
}
ALIASES = {"dpm++2m": "dpmsolver++", "dpm++2m_sde": "dpmsolver++_sde", "euler_ancestral": "euler_a"}
# diffusers class name -> our name, so the model's own scheduler is the default.
CLASS_NAMES = {
    "DDIMScheduler": "ddim",
    "DDPMScheduler": "ddpm",
    "PNDMScheduler": "pndm",
    "LMSDiscreteScheduler": "lms",
    "EulerDiscreteScheduler": "euler",
    "EulerAncestralDiscreteScheduler": "euler_a",
    "HeunDiscreteScheduler": "heun",
    "DPMSolverMultistepScheduler": "dpmsolver++",  # or dpmsolver++_sde, by algorithm_type
    "UniPCMultistepScheduler": "unipc",
}


def default_scheduler(config: dict) -> str:
    """Our name for the scheduler class (and DPM-Solver algorithm) a model's config names."""
    cls = config.get("_class_name", "DDIMScheduler")
    if cls == "DPMSolverMultistepScheduler":
        algorithm = config.get("algorithm_type", "dpmsolver++")
        if algorithm not in ("dpmsolver++", "sde-dpmsolver++"):
            raise SchedulerError(
                f"the model's DPMSolverMultistepScheduler uses algorithm_type={algorithm!r}, which t2vrt does not "
                "implement; pass scheduler 'dpmsolver++' or 'dpmsolver++_sde'"
            )
        return "dpmsolver++_sde" if algorithm == "sde-dpmsolver++" else "dpmsolver++"
    if cls not in CLASS_NAMES:
        raise SchedulerError(
            f"the model's scheduler {cls} has no t2vrt sampler; pass one of: {', '.join(sorted(SCHEDULERS))}"
        )
    return CLASS_NAMES[cls]


def make_sampler(name: str | None, config: dict, steps: int, **options: Any) -> Sampler:
    """Build the named sampler (the model's own when name is None) for ``steps`` inference steps.

    ``config`` is the model's scheduler_config.json as a dict; ``options`` override its keys
    (e.g. ``use_karras_sigmas=True``) or set sampler options (e.g. ``eta`` for ddim).
    """
    name = name or default_scheduler(config)
    name = ALIASES.get(name, name)
    if name not in SCHEDULERS:
        raise SchedulerError(f"unknown scheduler {name!r}; available: {', '.join(sorted(SCHEDULERS))}")
    return SCHEDULERS[name](config, steps, **options)
