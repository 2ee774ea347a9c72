"""Helpers shared by the scheduler parity tests (a module, not a test file): a stand-in model and the two loops."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import diffusers
import numpy as np
import torch

from t2vrt.presets import SCHEDULER_CONFIG

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


@dataclass(frozen=True)
class Case:
    """One of our samplers and the diffusers scheduler (and settings) it must reproduce."""

    name: str  # ours
    cls: str  # diffusers class
    config: dict = field(default_factory=dict)  # overrides for both sides
    diffusers_config: dict = field(default_factory=dict)  # only for diffusers (e.g. its algorithm_type)
    options: dict = field(default_factory=dict)  # make_sampler options, passed to diffusers' step too
    noise: str | None = None  # None: deterministic; "like": noise in the model dtype; "float32"
    downcasts: bool = False  # diffusers' step casts the sample to float32 whatever its dtype

    @property
    def id(self) -> str:
        extra = "-".join(f"{k}={v}" for k, v in {**self.config, **self.options}.items())
        return f"{self.name}[{extra}]" if extra else self.name

    def diffusers(self, cfg: dict, steps: int):
        d = scheduler_class(self.cls).from_config({**cfg, **self.diffusers_config})
        d.set_timesteps(steps)
        return d

    def noise_like(self, seed: int = SEED):
        if self.noise is None:
            return None
        return noise_source(seed, torch.float32 if self.noise == "float32" else None)


CASES = [
    Case("ddim", "DDIMScheduler"),
    Case("ddim", "DDIMScheduler", options={"eta": 0.8}, noise="like"),
    Case("ddpm", "DDPMScheduler", noise="like"),
    Case("pndm", "PNDMScheduler", {"skip_prk_steps": True}),
    Case("pndm", "PNDMScheduler", {"skip_prk_steps": False}),
    Case("lms", "LMSDiscreteScheduler"),
    Case("euler", "EulerDiscreteScheduler", downcasts=True),
    Case("euler_a", "EulerAncestralDiscreteScheduler", noise="like", downcasts=True),
    Case("heun", "HeunDiscreteScheduler"),
    Case("dpmsolver++", "DPMSolverMultistepScheduler", downcasts=True),
    Case("dpmsolver++", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, downcasts=True),
    Case("dpmsolver++_sde", "DPMSolverMultistepScheduler", diffusers_config={"algorithm_type": "sde-dpmsolver++"},
         noise="float32", downcasts=True),
    Case("unipc", "UniPCMultistepScheduler"),
]


def scheduler_class(name: str):
    """diffusers' scheduler class ``name``, as diffusers runs it (LMS integrates its coefficients with
    scipy.integrate.quad: scipy is in the test extra, so the reference shares no code with our lms.py)."""
    return getattr(diffusers, name)


