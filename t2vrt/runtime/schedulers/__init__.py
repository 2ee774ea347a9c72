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

from typing import Any

from t2vrt.errors import SchedulerError
from t2vrt.runtime.schedulers import ddim, ddpm, dpmsolver, euler, heun, lms, pndm, unipc
from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.core import Sampler, Spec

__all__ = ["CLASS_NAMES", "SCHEDULERS", "Sampler", "SchedulerConfig", "default_scheduler", "make_sampler"]

# name -> Spec; calling one, spec(scheduler_config_dict, num_inference_steps, **options), builds the sampler.
SCHEDULERS: dict[str, Spec] = {
    spec.name: spec
    for spec in (ddim.SPEC, ddpm.SPEC, pndm.SPEC, lms.SPEC, euler.SPEC, euler.ANCESTRAL_SPEC, heun.SPEC,
                 dpmsolver.SPEC, dpmsolver.SDE_SPEC, unipc.SPEC)
}
ALIASES = {"dpm++2m": "dpmsolver++", "dpm++2m_sde": "dpmsolver++_sde", "euler_ancestral": "euler_a"}
# diffusers class name -> our name, so the model's own scheduler is the default (DPM-Solver: see default_scheduler).
CLASS_NAMES = {spec.diffusers_class: name for name, spec in reversed(SCHEDULERS.items())}


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
