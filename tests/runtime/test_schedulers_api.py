"""The scheduler registry, config reading, option handling, errors, and the torch-tensor path."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from t2vrt.errors import SchedulerError
from t2vrt.presets import SCHEDULER_CONFIG
from t2vrt.runtime.schedulers import SCHEDULERS, default_scheduler, make_sampler
from t2vrt.runtime.schedulers.config import SWITCHES, SchedulerConfig
from tests.runtime.scheduler_cases import (
    CASES,
    Case,
    config,
    model_np,
    noise_source,
    run_ours,
    scheduler_class,
    start_latents,
)

# diffusers' own deprecation noise (numpy 2 __array__ copy keyword; LMS asks for scale_model_input)
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The `scale_model_input` function:UserWarning")]
CUDA_ONLY = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ALL_NAMES = ["ddim", "ddpm", "pndm", "lms", "euler", "euler_a", "heun", "dpmsolver++", "dpmsolver++_sde", "unipc"]


def test_registry_has_the_issue_3_set():
    assert sorted(SCHEDULERS) == sorted(ALL_NAMES)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_spec_declares_its_diffusers_class(name: str):
    """A spec's defaults are its diffusers class's own, its options keys that class reads, and every
    unsupported switch that class reads is rejected (so a model's config is read as diffusers reads it)."""
    spec = SCHEDULERS[name]
    theirs = dict(scheduler_class(spec.diffusers_class)().config)
    ours = SchedulerConfig.from_dict({}, spec.defaults)
    for key in set(theirs) & {f.name for f in fields(SchedulerConfig)}:
        value = theirs[key]
        assert getattr(ours, key) == (tuple(value) if isinstance(value, list) else value), key
    assert set(spec.options) <= set(theirs)
    assert {s for s in SWITCHES if s in theirs} == set(spec.switches)


def test_vp_samplers_hand_the_model_x_itself():
    """No copy per step where diffusers' scale_model_input is the identity; the sigma samplers divide."""
    x = start_latents(np.float32)
    for name in ALL_NAMES:
        s = make_sampler(name, SCHEDULER_CONFIG, 10)
        if name in ("euler", "euler_a", "heun", "lms"):
            np.testing.assert_allclose(s.scale_model_input(x, 1), x / (s.solver.sigmas[1] ** 2 + 1) ** 0.5)
        else:
            assert s.scale_model_input(x, 1) is x, name


def test_unknown_name_lists_available():
    with pytest.raises(SchedulerError, match="unknown scheduler 'dpm2'; available: ddim, ddpm, dpmsolver\\+\\+"):
        make_sampler("dpm2", SCHEDULER_CONFIG, 25)


def test_unknown_option_lists_accepted():
    with pytest.raises(SchedulerError, match="'euler' does not take option\\(s\\) eta; it accepts: .*use_karras"):
        make_sampler("euler", SCHEDULER_CONFIG, 25, eta=0.5)


def test_unsupported_config_switch_says_what_to_do():
    with pytest.raises(SchedulerError, match="thresholding=True is not supported.*set it to false"):
        make_sampler("ddim", config(thresholding=True), 25)
    make_sampler("euler", config(thresholding=True), 25)  # EulerDiscreteScheduler has no thresholding


def test_bad_choice_lists_allowed_values():
    with pytest.raises(SchedulerError, match="timestep_spacing='middle' is not supported; use one of 'leading'"):
        make_sampler("ddim", config(timestep_spacing="middle"), 25)
    with pytest.raises(SchedulerError, match="outside \\[1, 1000\\]"):
        make_sampler("ddim", SCHEDULER_CONFIG, 0)


def test_default_is_the_models_own_scheduler():
    assert default_scheduler(SCHEDULER_CONFIG) == "ddim"
    assert make_sampler(None, SCHEDULER_CONFIG, 25).name == "ddim"
    dpm = {**SCHEDULER_CONFIG, "_class_name": "DPMSolverMultistepScheduler"}
    assert default_scheduler(dpm) == "dpmsolver++"
    assert default_scheduler({**dpm, "algorithm_type": "sde-dpmsolver++"}) == "dpmsolver++_sde"
    with pytest.raises(SchedulerError, match="algorithm_type='dpmsolver'.*pass scheduler 'dpmsolver\\+\\+'"):
        default_scheduler({**dpm, "algorithm_type": "dpmsolver"})
    with pytest.raises(SchedulerError, match="KDPM2DiscreteScheduler has no t2vrt sampler; pass one of: ddim"):
        default_scheduler({"_class_name": "KDPM2DiscreteScheduler"})


def test_aliases():
    cfg = SCHEDULER_CONFIG
    np.testing.assert_array_equal(make_sampler("dpm++2m", cfg, 20).timesteps,
                                  make_sampler("dpmsolver++", cfg, 20).timesteps)
    assert make_sampler("dpm++2m_sde", cfg, 20).name == "dpmsolver++_sde"


def test_options_override_the_config():
    ours = make_sampler("dpmsolver++", config(use_karras_sigmas=False), 20, use_karras_sigmas=True)
    d = DPMSolverMultistepScheduler.from_config(config(use_karras_sigmas=True))
    d.set_timesteps(20)
    np.testing.assert_array_equal(ours.timesteps, d.timesteps.numpy())


def test_missing_keys_take_the_target_class_defaults():
    """As diffusers' from_config: a key the model's file lacks takes the new scheduler's default."""
    raw = {k: v for k, v in SCHEDULER_CONFIG.items() if k != "timestep_spacing"}
    loaded = DDIMScheduler.from_config(raw).config  # records timestep_spacing in _use_default_values
    euler = EulerDiscreteScheduler.from_config(loaded)
    euler.set_timesteps(10)
    for cfg in (raw, dict(loaded)):
        np.testing.assert_array_equal(make_sampler("euler", cfg, 10).timesteps, euler.timesteps.numpy())
    assert make_sampler("ddim", raw, 10).timesteps[0] == 901  # DDIM's own default: "leading" + offset 1


def test_stochastic_sampler_needs_noise():
    s = make_sampler("euler_a", SCHEDULER_CONFIG, 5)
    x = start_latents(np.float32)
    with pytest.raises(SchedulerError, match="'euler_a' is stochastic: pass noise_like"):
        s.step(0, x, x, s.init_state(), None)


def test_pndm_runge_kutta_cannot_start_mid_schedule():
    s = make_sampler("pndm", config(skip_prk_steps=False), 25)
    x = start_latents(np.float32)
    with pytest.raises(SchedulerError, match="cannot start mid-schedule \\(i=3\\); set skip_prk_steps=True"):
        s.step(3, x, x, s.init_state())


def test_unipc_nan_configuration_is_refused():
    with pytest.raises(SchedulerError, match="predict_x0=False with final_sigmas_type='zero' ends in NaN"):
        make_sampler("unipc", config(predict_x0=False), 25)


def test_samplers_are_frozen_and_reusable():
    s = make_sampler("dpmsolver++", SCHEDULER_CONFIG, 10)
    with pytest.raises(AttributeError):
        s.timesteps = None
    x = start_latents(np.float64)
    np.testing.assert_array_equal(run_ours(s, x), run_ours(s, x))  # no state left behind in the sampler


DEVICES = [
    pytest.param(("cpu", torch.float64), id="cpu-f64"),
    pytest.param(("cpu", torch.float32), id="cpu-f32"),
    pytest.param(("cuda", torch.float64), id="cuda-f64", marks=[pytest.mark.gpu, CUDA_ONLY]),
    pytest.param(("cuda", torch.float32), id="cuda-f32", marks=[pytest.mark.gpu, CUDA_ONLY]),
]


@pytest.mark.parametrize("where", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_torch_tensors_follow_the_same_lines(case: Case, where):
    """The same sampler on torch tensors (CPU or CUDA) gives the NumPy result: one array code for both."""
    device, dtype = where
    s = make_sampler(case.name, config(**case.config), 6, **case.options)
    x_np = start_latents(np.float64) * s.init_noise_sigma
    want = run_ours(s, x_np, noise_like=case.noise_like())
    noise_np = case.noise_like()

    def to_torch(a):
        return torch.from_numpy(a).to(device, dtype)

    x, state = to_torch(x_np.copy()), s.init_state()
    for i in range(len(s.timesteps)):
        x_in = s.scale_model_input(x, i).double().cpu().numpy()
        x, state = s.step(i, x, to_torch(model_np(x_in, s.timesteps[i])), state,
                          noise_np and (lambda t: to_torch(noise_np(t.double().cpu().numpy()))))
        assert isinstance(x, torch.Tensor) and x.dtype == dtype and x.device.type == device
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(x.double().cpu().numpy(), want, rtol=tol, atol=tol)
    added = s.add_noise(to_torch(x_np), torch.ones(x_np.shape, dtype=dtype, device=device), 2)
    np.testing.assert_allclose(added.double().cpu().numpy(), s.add_noise(x_np, np.ones(x_np.shape), 2),
                               rtol=tol, atol=tol)


def test_noise_is_drawn_once_per_step_where_diffusers_draws():
    """DDPM draws only for t > 0; the others every step (the pipeline's generator must stay in step)."""
    for name, cfg, draws in [("ddpm", config(timestep_spacing="linspace"), 9), ("ddpm", SCHEDULER_CONFIG, 10),
                             ("euler_a", SCHEDULER_CONFIG, 10), ("dpmsolver++_sde", SCHEDULER_CONFIG, 10)]:
        s, calls, source = make_sampler(name, cfg, 10), [], noise_source(0, None)
        x, state = start_latents(np.float64), s.init_state()
        for i in range(len(s.timesteps)):
            x, state = s.step(i, x, x * 0.1, state, lambda a: calls.append(i) or source(a))
        assert len(calls) == draws and len(set(calls)) == draws, name


def test_the_lms_reference_integrates_with_scipy():
    """The LMS reference is diffusers' own: its coefficients come from scipy.integrate.quad, not from a copy of
    the Gauss-Legendre rule our lms.py uses (scipy is in the test extra)."""
    import scipy.integrate
    from diffusers.schedulers import scheduling_lms_discrete as lms

    assert scheduler_class("LMSDiscreteScheduler") is lms.LMSDiscreteScheduler
    assert lms.integrate is scipy.integrate
