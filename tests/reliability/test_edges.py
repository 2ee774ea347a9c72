"""The edges of what we accept: every sampler at 1, 2, 999 and 1000 steps in every spacing; prompts as UTF-8."""

from __future__ import annotations

import re

import numpy as np
import pytest

from t2vrt.errors import InputError, SchedulerError
from t2vrt.runtime.schedulers import SCHEDULERS, make_sampler

# ModelScope's scheduler config (DDIMScheduler, scaled-linear betas, steps_offset 1): the one these models ship
CONFIG = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
          "num_train_timesteps": 1000, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


def _run(sampler, rng) -> np.ndarray:
    """The denoising loop with a stand-in model (eps = a fixed linear map of the input) on a small latent."""
    x = rng.standard_normal((1, 4, 2, 3, 3)).astype(np.float32) * sampler.init_noise_sigma
    state = sampler.init_state()
    for i in range(len(sampler.timesteps)):
        eps = 0.3 * sampler.scale_model_input(x, i)
        x, state = sampler.step(i, x, eps, state, lambda a: rng.standard_normal(a.shape).astype(a.dtype))
    return x


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_sampler_runs_every_step_count_it_accepts(name):
    """At 1, 2, 999 and 1000 steps in each spacing a sampler runs to a finite result, or refuses in one line
    naming the limit (lowered), and runs at that limit."""
    rng = np.random.default_rng(0)
    for spacing in ("leading", "linspace", "trailing"):
        for steps in (1, 2, 999, 1000):
            try:
                sampler = make_sampler(name, CONFIG, steps, timestep_spacing=spacing)
            except SchedulerError as e:
                msg = str(e)
                assert "\n" not in msg
                if "Runge-Kutta warm-up" in msg:  # pndm's own lower limit without skip_prk_steps
                    assert steps < 4
                    assert np.isfinite(_run(make_sampler(name, CONFIG, 4, timestep_spacing=spacing), rng)).all()
                    continue
                limit = int(re.search(r"use at most (\d+) steps", msg).group(1))
                assert limit < steps, msg
                sampler = make_sampler(name, CONFIG, limit, timestep_spacing=spacing)
            assert np.isfinite(_run(sampler, rng)).all(), (name, spacing, steps)


def test_trailing_has_steps_timesteps_where_diffusers_float_arange_gives_one_more():
    s = make_sampler("ddim", CONFIG, 908, timestep_spacing="trailing")
    assert len(s.timesteps) == 908 and s.timesteps.min() >= 0


def test_the_service_and_batch_refuse_an_impossible_step_count_before_any_model(tiny_engines):
    from t2vrt.serve.request import RequestChecker, parse_request

    check = RequestChecker(tiny_engines)
    with pytest.raises(InputError, match=r"cannot run num_inference_steps=1000 .*use at most 999 steps"):
        check(parse_request({"prompt": "a cat", "num_inference_steps": 1000, "scheduler": "ddim", "num_frames": 2,
                             "height": 32, "width": 32}))


def test_pipeline_refuses_it_before_any_backend(tiny_engines, monkeypatch):
    from t2vrt import Pipeline
    from tests.helpers import forbid_backends

    pipe = forbid_backends(Pipeline.load(tiny_engines), monkeypatch)
    with pytest.raises(SchedulerError, match="use at most 999 steps"):
        pipe("a cat", num_frames=2, height=32, width=32, num_inference_steps=1000, scheduler="ddim")


def test_lone_surrogate_prompt_is_refused_before_any_backend(tiny_engines, monkeypatch):
    from t2vrt import Pipeline
    from tests.helpers import forbid_backends

    pipe = forbid_backends(Pipeline.load(tiny_engines), monkeypatch)
    with pytest.raises(InputError, match=r"^prompt: a lone surrogate U\+D800 at character 2 is not a character"):
        pipe("a\ud800cat", num_frames=2, height=32, width=32)
    with pytest.raises(InputError, match=r"^negative_prompt\[1\]: "):
        pipe(["a", "b"], negative_prompt=["x", "y\udcff"], num_frames=2, height=32, width=32)


def test_a_json_body_with_a_lone_surrogate_is_refused():
    from t2vrt.jsonio import loads
    from t2vrt.serve.request import parse_request

    with pytest.raises(InputError, match=r"^prompt: a lone surrogate U\+D800"):
        parse_request(loads('{"prompt": "a\\ud800cat"}'))


def test_bytes_that_are_not_utf8_on_the_command_line(tiny_engines, tmp_path, capsys, monkeypatch):
    from t2vrt import Pipeline
    from t2vrt.cli import main

    monkeypatch.setattr(Pipeline, "load", lambda *a, **k: pytest.fail("the model loaded"))
    arg = b"a\xffcat".decode("utf-8", "surrogateescape")  # how Python hands $'a\xffcat' to the program (PEP 383)
    assert main(["generate", str(tiny_engines), arg, "-o", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: argument 3 ('a\\\\udcffcat'): byte 0xff at character 2 is not UTF-8; "
                   "give text that encodes as UTF-8")
