"""Helpers shared by the scheduler parity tests (no tests here): a stand-in model and the two loops."""

from __future__ import annotations

import math

import numpy as np
import torch

from t2vrt.export.tiny import SCHEDULER_CONFIG

SHAPE = (2, 4, 3, 4, 4)  # b, c, f, h, w: small and unlike any export shape
SEED = 1234


def model_np(x: np.ndarray, t) -> np.ndarray:
    """A deterministic stand-in for the UNet: a smooth function of x and t."""
    t = float(t)
    return 0.1 * math.cos(t / 300) * x + 0.05 * np.sin(x + t / 1000)


def model_torch(x: torch.Tensor, t) -> torch.Tensor:
    t = float(t)
    return 0.1 * math.cos(t / 300) * x + 0.05 * torch.sin(x + t / 1000)


def start_latents(dtype) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE).astype(dtype)


def noise_source(seed: int, dtype: torch.dtype | None):
    """noise_like drawing what diffusers' randn_tensor(shape, generator) draws; dtype None: like x."""
    g = torch.Generator().manual_seed(seed)

    def noise_like(x):
        draw_dtype = dtype or torch.from_numpy(np.zeros(0, x.dtype)).dtype
        n = torch.randn(x.shape, generator=g, dtype=draw_dtype)
        return n.numpy().astype(x.dtype)

    return noise_like


def run_ours(sampler, x: np.ndarray, i0: int = 0, noise_like=None) -> np.ndarray:
    state = sampler.init_state()
    dtype = x.dtype
    for i in range(i0, len(sampler.timesteps)):
        out = model_np(sampler.scale_model_input(x, i), sampler.timesteps[i])
        x, state = sampler.step(i, x, out, state, noise_like)
        assert x.dtype == dtype, f"step {i} changed the dtype to {x.dtype}"
    return x


def upcast_tables(sched) -> None:
    """Give diffusers' per-step scalar math float64 tables with the same (float32) values as ours."""
    for name in ("alphas_cumprod", "final_alpha_cumprod", "one", "sigmas", "betas", "alphas"):
        value = getattr(sched, name, None)
        if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
            setattr(sched, name, value.double())


def run_diffusers(sched, x: np.ndarray, i0: int = 0, seed: int | None = None, **step_kw) -> np.ndarray:
    xt = torch.from_numpy(x.copy())
    if seed is not None:
        step_kw["generator"] = torch.Generator().manual_seed(seed)
    if i0 and hasattr(sched, "set_begin_index"):
        sched.set_begin_index(i0)
    for t in sched.timesteps[i0:]:
        out = model_torch(sched.scale_model_input(xt, t), t)
        xt = sched.step(out, t, xt, **step_kw).prev_sample
    return xt.numpy()


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a64 - b64) / np.linalg.norm(b64))


def config(**overrides) -> dict:
    return {**SCHEDULER_CONFIG, **overrides}


def lms_scheduler_class():
    """diffusers' LMSDiscreteScheduler; without scipy its ``integrate.quad`` is replaced by Gauss-Legendre.

    The coefficients integrate polynomials of degree <= 3 over one interval, which a 4-point
    Gauss-Legendre rule does exactly, as scipy's adaptive quad does to rounding.
    """
    from types import SimpleNamespace

    from diffusers.schedulers import scheduling_lms_discrete as lms

    if not hasattr(lms, "integrate"):
        nodes, weights = np.polynomial.legendre.leggauss(4)

        def quad(f, a, b, epsrel=None):
            a, b = float(a), float(b)
            values = [float(f((b - a) / 2 * x + (a + b) / 2)) for x in nodes]
            return (b - a) / 2 * float(np.dot(weights, values)), 0.0

        lms.integrate = SimpleNamespace(quad=quad)
    return lms.LMSDiscreteScheduler
