"""Per-step scheduler overhead: t2vrt samplers vs diffusers' schedulers, on the latent shape of a real run.

The UNet is replaced by a constant, so the numbers are the sampler's own cost per model
evaluation (the part the denoising loop adds around each TensorRT/ONNX Runtime call).
Warm-up run, then the median of several measured runs, per sampler and array backend::

    PYTHONPATH=. python benchmarks/scheduler_overhead.py --frames 16 --size 256 --steps 25
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import numpy as np

from t2vrt.presets import SCHEDULER_CONFIG
from t2vrt.runtime.schedulers import SCHEDULERS, make_sampler

log = logging.getLogger("scheduler_overhead")
DIFFUSERS = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "pndm": "PNDMScheduler",
             "lms": "LMSDiscreteScheduler", "euler": "EulerDiscreteScheduler",
             "euler_a": "EulerAncestralDiscreteScheduler", "heun": "HeunDiscreteScheduler",
             "dpmsolver++": "DPMSolverMultistepScheduler", "dpmsolver++_sde": "DPMSolverMultistepScheduler",
             "unipc": "UniPCMultistepScheduler"}


def _ours(name: str, x0, out, steps: int, noise_like) -> float:
    s = make_sampler(name, SCHEDULER_CONFIG, steps)
    x, state = x0 * s.init_noise_sigma, s.init_state()
    start = time.perf_counter()
    for i in range(len(s.timesteps)):
        x, state = s.step(i, s.scale_model_input(x, i), out, state, noise_like)
    return (time.perf_counter() - start) / len(s.timesteps)


def _diffusers(name: str, x0, out, steps: int) -> float:
    import diffusers
    import torch

    cfg = dict(SCHEDULER_CONFIG)
    if name == "dpmsolver++_sde":
        cfg["algorithm_type"] = "sde-dpmsolver++"
    sched = getattr(diffusers, DIFFUSERS[name]).from_config(cfg)
    sched.set_timesteps(steps)
    x, gen = x0 * sched.init_noise_sigma, torch.Generator().manual_seed(0)
    kwargs = {"generator": gen} if name in ("ddpm", "euler_a", "dpmsolver++_sde") else {}
    start = time.perf_counter()
    for t in sched.timesteps:
        x = sched.step(out, t, sched.scale_model_input(x, t), **kwargs).prev_sample
    return (time.perf_counter() - start) / len(sched.timesteps)


def _median(fn, runs: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="video height = width in pixels (latents are /8)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)  # the per-step ops are small; threads only add jitter on a shared machine
    shape = (1, 4, args.frames, args.size // 8, args.size // 8)
    rng = np.random.default_rng(0)
    x_np, out_np = rng.standard_normal(shape, dtype=np.float32), 0.1 * rng.standard_normal(shape, dtype=np.float32)
    x_t, out_t = torch.from_numpy(x_np), torch.from_numpy(out_np)
    gen = torch.Generator().manual_seed(0)

    def noise_np(x):
        return rng.standard_normal(x.shape, dtype=np.float32)

    def noise_t(x):
        return torch.randn(x.shape, generator=gen, dtype=x.dtype)

    log.info("%s, Python %s, numpy %s, torch %s; latents %s float32, %d steps, median of %d runs",
             platform.processor() or platform.machine(), platform.python_version(), np.__version__,
             torch.__version__, shape, args.steps, args.runs)
    log.info("%-16s %14s %14s %14s", "sampler", "ours numpy ms", "ours torch ms", "diffusers ms")
    for name in SCHEDULERS:
        ours_np = _median(lambda: _ours(name, x_np, out_np, args.steps, noise_np), args.runs)
        ours_t = _median(lambda: _ours(name, x_t, out_t, args.steps, noise_t), args.runs)
        try:
            ref = f"{_median(lambda: _diffusers(name, x_t, out_t, args.steps), args.runs) * 1e3:14.3f}"
        except ImportError as e:  # e.g. LMS without scipy
            ref = f"{'n/a':>14}"
            log.debug("diffusers %s unavailable: %s", name, e)
        log.info("%-16s %14.3f %14.3f %s", name, ours_np * 1e3, ours_t * 1e3, ref)


if __name__ == "__main__":
    main()
