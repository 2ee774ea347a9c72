"""Parity of every sampler with the diffusers scheduler it reproduces.

Each run feeds both sides the same stand-in model (a smooth function of x and t) and, for
stochastic samplers, the same noise draws (a torch.Generator with diffusers' seed, shape and
dtype), and compares the final latents by relative L2 error.

float64: diffusers does its per-step scalar math on its float32 tables (alphas_cumprod,
sigmas); we do it in float64 from the same float32 values. To compare the algorithms rather
than that rounding, the float64 runs give diffusers float64 copies of its tables
(``upcast_tables``, values unchanged). Then they agree to ~1e-15, except where diffusers'
step casts the sample itself to float32 (Euler, Euler ancestral, DPM-Solver), which bounds
agreement at ~1e-7 per step; those are held to 1e-6. Unmodified diffusers in float64 is
checked at 2e-6 (its float32 coefficients, ~1e-7 per step). float32 runs: 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2vrt.runtime.schedulers import make_sampler
from t2vrt.runtime.schedulers.config import SchedulerConfig
from t2vrt.runtime.schedulers.tables import alphas_cumprod, betas, torch_linspace_f32
from tests.runtime.scheduler_cases import (
    CASES,
    SEED,
    Case,
    config,
    model_np,
    model_torch,
    rel_err,
    run_diffusers,
    run_ours,
    start_latents,
    upcast_tables,
)

# diffusers' own deprecation noise (numpy 2 __array__ copy keyword; LMS asks for scale_model_input)
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The `scale_model_input` function:UserWarning")]
SPACINGS = ("leading", "linspace", "trailing")
STEPS = (5, 25, 50)


def ref_seed(case: Case) -> int | None:
    """The generator seed for diffusers' step when the case is stochastic (noise_like uses the same)."""
    return SEED if case.noise else None


def _pair(case: Case, steps: int, **cfg_overrides):
    cfg = config(**case.config, **cfg_overrides)
    return make_sampler(case.name, cfg, steps, **case.options), case.diffusers(cfg, steps)


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_trajectory_matches_diffusers(case: Case, spacing: str, steps: int):
    ours, ref = _pair(case, steps, timestep_spacing=spacing)
    assert ours.timesteps.dtype == ref.timesteps.numpy().dtype
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.init_noise_sigma == float(ref.init_noise_sigma)

    x = start_latents(np.float64) * ours.init_noise_sigma
    got = run_ours(ours, x, noise_like=case.noise_like())
    upcast_tables(ref)
    want = run_diffusers(ref, x, seed=ref_seed(case), **case.options)
    assert rel_err(got, want) < (1e-6 if case.downcasts else 1e-12)

    ref = _pair(case, steps, timestep_spacing=spacing)[1]
    assert rel_err(got, run_diffusers(ref, x, seed=ref_seed(case), **case.options)) < 2e-6

    x32 = x.astype(np.float32)
    got32 = run_ours(ours, x32, noise_like=case.noise_like())
    ref = _pair(case, steps, timestep_spacing=spacing)[1]
    assert rel_err(got32, run_diffusers(ref, x32, seed=ref_seed(case), **case.options)) < 1e-4


V_CASES = [c for c in CASES if c.name in ("ddim", "pndm", "euler", "heun", "dpmsolver++", "unipc") and not c.options]


@pytest.mark.parametrize("case", V_CASES, ids=[c.id for c in V_CASES])
def test_v_prediction_matches_diffusers(case: Case):
    ours, ref = _pair(case, 25, prediction_type="v_prediction")
    x = start_latents(np.float64) * ours.init_noise_sigma
    upcast_tables(ref)
    assert rel_err(run_ours(ours, x), run_diffusers(ref, x)) < (1e-6 if case.downcasts else 1e-12)


KARRAS = [Case(n, c, {"use_karras_sigmas": True}, downcasts=n == "euler")
          for n, c in [("euler", "EulerDiscreteScheduler"), ("lms", "LMSDiscreteScheduler"),
                       ("heun", "HeunDiscreteScheduler"), ("unipc", "UniPCMultistepScheduler")]]


@pytest.mark.parametrize("case", KARRAS, ids=[c.id for c in KARRAS])
def test_karras_sigmas_match_diffusers(case: Case):
    ours, ref = _pair(case, 25)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    x = start_latents(np.float64) * ours.init_noise_sigma
    upcast_tables(ref)
    assert rel_err(run_ours(ours, x), run_diffusers(ref, x)) < (1e-6 if case.downcasts else 1e-12)


CONFIG_VARIANTS = [
    Case("dpmsolver++", "DPMSolverMultistepScheduler", {"solver_order": 3}, downcasts=True),
    Case("dpmsolver++", "DPMSolverMultistepScheduler",
         {"solver_type": "heun", "final_sigmas_type": "sigma_min", "lower_order_final": False}, downcasts=True),
    Case("dpmsolver++", "DPMSolverMultistepScheduler", {"lambda_min_clipped": -5.1}, downcasts=True),
    Case("dpmsolver++", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min"},
         downcasts=True),
    Case("dpmsolver++_sde", "DPMSolverMultistepScheduler", {"solver_order": 3},
         {"algorithm_type": "sde-dpmsolver++"}, noise="float32", downcasts=True),
    Case("unipc", "UniPCMultistepScheduler", {"solver_order": 3, "disable_corrector": [1, 2]}),
    Case("unipc", "UniPCMultistepScheduler", {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}),
    Case("unipc", "UniPCMultistepScheduler", {"predict_x0": False, "final_sigmas_type": "sigma_min"}),
    Case("unipc", "UniPCMultistepScheduler",
         {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min", "sigma_min": 0.1, "sigma_max": 10.0}),
    Case("euler", "EulerDiscreteScheduler",
         {"use_karras_sigmas": True, "final_sigmas_type": "sigma_min", "sigma_min": 0.1, "sigma_max": 10.0},
         downcasts=True),
    Case("euler", "EulerDiscreteScheduler", {"use_karras_sigmas": True, "beta_schedule": "squaredcos_cap_v2"},
         downcasts=True),
    Case("ddpm", "DDPMScheduler", {"variance_type": "fixed_large", "clip_sample": True}, noise="like"),
    Case("ddpm", "DDPMScheduler", {"variance_type": "fixed_small_log", "beta_schedule": "squaredcos_cap_v2"},
         noise="like"),
    Case("heun", "HeunDiscreteScheduler", {"clip_sample": True, "clip_sample_range": 0.5, "prediction_type": "sample"}),
    Case("lms", "LMSDiscreteScheduler", {"prediction_type": "v_prediction", "beta_schedule": "linear"}),
]


@pytest.mark.parametrize("steps", (7, 30))
@pytest.mark.parametrize("case", CONFIG_VARIANTS, ids=[c.id for c in CONFIG_VARIANTS])
def test_config_variants_match_diffusers(case: Case, steps: int):
    ours, ref = _pair(case, steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    assert ours.init_noise_sigma == float(ref.init_noise_sigma)
    x = start_latents(np.float64) * ours.init_noise_sigma
    upcast_tables(ref)
    got = run_ours(ours, x, noise_like=case.noise_like())
    want = run_diffusers(ref, x, seed=ref_seed(case))
    assert rel_err(got, want) < (1e-6 if case.downcasts else 1e-12)


def _video_to_video_start(case: Case, steps: int, strength: float) -> int:
    """diffusers' get_timesteps: t_start = steps - int(steps * strength), i0 = t_start * order."""
    order = 2 if case.name == "heun" else 1
    return (steps - int(steps * strength)) * order


I0_CASES = [c for c in CASES if c.name != "lms" and c.config.get("skip_prk_steps") is not False]


@pytest.mark.parametrize("case", I0_CASES, ids=[c.id for c in I0_CASES])
def test_video_to_video_start_matches_diffusers(case: Case):
    """add_noise at timesteps[i0], then the loop from i0 with a fresh state, as diffusers' img2img pipeline."""
    steps = 25
    i0 = _video_to_video_start(case, steps, strength=0.6)
    ours, ref = _pair(case, steps)
    upcast_tables(ref)
    x0 = start_latents(np.float64)
    noise = np.random.default_rng(1).standard_normal(x0.shape)
    if hasattr(ref, "set_begin_index"):
        ref.set_begin_index(i0)
    want_start = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[i0 : i0 + 1]).numpy()
    start = ours.add_noise(x0, noise, i0)
    assert rel_err(start, want_start) < 1e-12
    got = run_ours(ours, start, i0=i0, noise_like=case.noise_like())
    want = run_diffusers(ref, start, i0=i0, seed=ref_seed(case), **case.options)
    assert rel_err(got, want) < (1e-6 if case.downcasts else 1e-12)


def test_lms_video_to_video_warms_up_from_first_order():
    """Started at i0 > 0 our LMS takes an Euler (order 1) first step; diffusers applies 4th-order weights there.

    diffusers takes the order from the absolute step index (min(i + 1, 4)) but has only the
    derivatives gathered since i0, so its first steps use truncated high-order weights.
    """
    case = next(c for c in CASES if c.name == "lms")
    ours, ref = _pair(case, 25)
    i0 = 10
    x = start_latents(np.float64) * 3.0
    got, _ = ours.step(i0, x, x * 0.1, ours.init_state())
    sigma, sigma_next = ours.solver.sigmas[i0], ours.solver.sigmas[i0 + 1]
    np.testing.assert_allclose(got, x + 0.1 * x * (sigma_next - sigma), rtol=1e-12)
    ref.set_begin_index(i0)
    want = ref.step(torch.from_numpy(x * 0.1), ref.timesteps[i0], torch.from_numpy(x)).prev_sample.numpy()
    ratio = np.linalg.norm(want - x) / np.linalg.norm(got - x)
    assert ratio > 1.5  # diffusers' first step here is about twice the Euler step


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_training_schedule_is_bit_exact(schedule: str):
    cfg = config(beta_schedule=schedule)
    ref = scheduler_for_tables(cfg)
    ours = SchedulerConfig.from_dict(cfg)
    np.testing.assert_array_equal(betas(ours), ref.betas.numpy())
    np.testing.assert_array_equal(alphas_cumprod(ours), ref.alphas_cumprod.numpy())


def scheduler_for_tables(cfg: dict):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(cfg)


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="torch uses no FMA here")
@pytest.mark.parametrize("args", [(0.0001, 0.02, 1000), (0.00085**0.5, 0.012**0.5, 1000), (-6.0, 6.0, 999),
                                  (0.3, 0.01, 77)])
def test_torch_linspace_emulation(args):
    np.testing.assert_array_equal(torch_linspace_f32(*args), torch.linspace(*args, dtype=torch.float32).numpy())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_add_noise_matches_diffusers(case: Case):
    ours, ref = _pair(case, 25)
    x0 = start_latents(np.float64)
    noise = np.random.default_rng(2).standard_normal(x0.shape)
    for i in (0, 7, len(ours.timesteps) - 1):
        if hasattr(ref, "set_begin_index"):
            ref.set_begin_index(i)
        want = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[i : i + 1]).numpy()
        assert rel_err(ours.add_noise(x0, noise, i), want) < 1e-15


def test_unipc_bh1_last_step_stays_finite():
    """UniPC bh1 to sigma = 0: diffusers computes alpha * B(h) * 0 with B(h) = -inf (NaN); ours takes the limit.

    Up to the last step both agree; our last step returns the data prediction x0(x, eps).
    """
    case = Case("unipc", "UniPCMultistepScheduler", {"solver_type": "bh1"})
    ours, ref = _pair(case, 10)
    upcast_tables(ref)
    x, state = start_latents(np.float64), ours.init_state()
    xt = torch.from_numpy(x.copy())
    for i, t in enumerate(ref.timesteps):
        last_x, out = x, model_np(x, ours.timesteps[i])
        x, state = ours.step(i, x, out, state)
        xt = ref.step(model_torch(xt, t), t, xt).prev_sample
        if i < len(ours.timesteps) - 1:
            assert rel_err(x, xt.numpy()) < 1e-12
    assert not np.isfinite(xt.numpy()).all()
    alpha, sigma = ours.solver.vp[-2]
    np.testing.assert_allclose(x, (last_x - sigma * out) / alpha, rtol=1e-12)
