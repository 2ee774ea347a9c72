"""The NaN guard: stop at the first stage or step whose output is not finite, and say where and what to try.

Cost: one reduction per denoising step over the latents (``isfinite(x).all()``), on the array's own device; on a
GPU that is one scalar copied to the host per step. The model output is inspected only after the latents fail,
to name the component. Without the guard a NaN would run the whole loop and write a black video.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from t2vrt.errors import NumericalError
from t2vrt.runtime.arrays import is_torch


def all_finite(x: Any) -> bool:
    if is_torch(x):
        import torch

        return bool(torch.isfinite(x).all())
    return bool(np.isfinite(x).all())


def precision_name(pipe) -> str:
    return pipe.backend_impl.precision_label(pipe.precision)


def fail(pipe, component: str, where: str) -> None:
    prec = precision_name(pipe)
    hint = ("fp32 is already used: check the model's weights (t2vrt verify DIR) and the inputs" if prec == "fp32" else
            f"run in fp32 (precision='fp32', --precision fp32), or keep {component} in fp32; fp16 overflow is the "
            "usual cause")
    raise NumericalError(f"the {component} output became NaN or infinite {where} ({prec} on {pipe.backend}); {hint}")


def check_stage(pipe, component: str, out: Any) -> Any:
    """``out`` unchanged when finite; else NumericalError naming ``component``."""
    if not all_finite(out):
        fail(pipe, component, "")
    return out


def check_step(pipe, i: int, n: int, x: Any, eps: Any) -> None:
    """After denoising step ``i`` of ``n``: the latents are finite, else name the UNet or the sampler."""
    if all_finite(x):
        return
    if not all_finite(eps):
        fail(pipe, "unet", f"at step {i + 1} of {n}")
    fail(pipe, "sampler step", f"at step {i + 1} of {n} (the unet output was finite)")
