"""Every argument checked at the boundary (before any backend runs), and the NaN guard in the loop."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt import InputError, ManifestError, Pipeline
from t2vrt.errors import NumericalError
from t2vrt.runtime import guard
from tests.helpers import forbid_backends

CALL = dict(num_frames=2, height=32, width=32, num_inference_steps=2, progress=False)


@pytest.fixture(scope="module")
def pipe(tiny_engines):
    return Pipeline.load(tiny_engines)


@pytest.fixture()
def no_backend(pipe, monkeypatch):
    return forbid_backends(pipe, monkeypatch)


@pytest.mark.parametrize("kwargs, message", [
    (dict(guidance_scale=float("nan")), r"^guidance_scale=nan must be a finite number"),
    (dict(guidance_scale=float("inf")), r"^guidance_scale=inf must be a finite number"),
    (dict(eta=float("nan")), r"^eta=nan must be a finite number"),
    (dict(eta=5.0), r"^eta=5 must be in \[0, 1\] \(DDIM: .*complex\)$"),
    (dict(eta=-0.5), r"^eta=-0.5 must be in \[0, 1\]"),
    (dict(height=0), r"^height=0 must be >= 1; omit it \(None\) for the model's native size$"),
    (dict(width=-32), r"^width=-32 must be >= 1"),
    (dict(num_inference_steps=2.5), r"^num_inference_steps=2.5 must be an integer, not float"),
    (dict(num_inference_steps=0), r"^num_inference_steps=0 must be in \[1, 1000\]"),
    (dict(num_inference_steps=1001), r"^num_inference_steps=1001 must be in \[1, 1000\]"),
    (dict(num_frames="4"), r"^num_frames='4' must be an integer, not str"),
    (dict(num_frames=True), r"^num_frames=True must be an integer, not bool"),
    (dict(seed="abc"), r"^seed='abc' must be an integer, not str"),
    (dict(seed=1.5), r"^seed=1.5 must be an integer, not float"),
    (dict(seed=2**64), r"^seed=18446744073709551616 must be in \[-9223372036854775808, 18446744073709551615\] \(torch"),
    (dict(seed=-(2**63) - 1), r"must be in \[-9223372036854775808"),
    (dict(decode_chunk_size=2.0), r"^decode_chunk_size=2.0 must be an integer, not float"),
    (dict(prompt=3), r"^prompt must be a string or a list of strings; got int"),
    (dict(negative_prompt=[None]), r"^negative_prompt must be a string or a list of strings"),
    (dict(latents=np.full((1, 4, 2, 4, 4), np.nan, np.float32)), r"^latents contain NaN or infinite values"),
    # the diffusers-style parameters (issue 13) and the context windows (issue 15), checked by name too
    (dict(prompt=None, prompt_embeds=np.full((1, 77, 32), np.inf, np.float32)),
     r"^prompt_embeds contain NaN or infinite values; give finite"),
    (dict(negative_prompt_embeds=np.full((1, 77, 32), np.nan, np.float32)), r"^negative_prompt_embeds contain NaN"),
    (dict(context_frames=2.5), r"^context_frames=2.5 must be an integer, not float"),
    (dict(context_stride=0), r"^context_stride=0 must be >= 1"),
    (dict(return_dict="no"), r"^return_dict='no' must be True or False, not str"),
    (dict(free_noise=1), r"^free_noise=1 must be True or False, not int"),
    (dict(output_type="uint8"), r"^output_type='uint8'; choose one of np, pil, pt, latent"),
])
def test_bad_arguments_refused_before_any_backend(no_backend, kwargs, message):
    args = {"prompt": "a cat", **CALL, **kwargs}
    with pytest.raises(InputError, match=message):
        no_backend(**args)


def test_numpy_ints_and_extreme_seeds_accepted(pipe):
    a = pipe("a cat", **{**CALL, "num_frames": np.int64(2), "num_inference_steps": np.int32(2)}, seed=np.uint64(7))
    b = pipe("a cat", **CALL, seed=7)
    np.testing.assert_array_equal(a.frames, b.frames)
    extremes = [pipe("a cat", **CALL, seed=seed, output_type="latent").latents for seed in (2**64 - 1, -(2**63))]
    again = pipe("a cat", **CALL, seed=2**64 - 1, output_type="latent").latents
    for latents in extremes:
        assert latents.shape == (1, 4, 2, 4, 4) and np.isfinite(latents).all()
    np.testing.assert_array_equal(extremes[0], again)  # the seed is used, not dropped: same seed, same latents
    assert not np.array_equal(extremes[0], extremes[1])


def test_missing_vae_decoder_refused_before_the_loop(tiny_engines, tmp_path, monkeypatch):
    import json
    import shutil

    copy = tmp_path / "engines"
    shutil.copytree(tiny_engines, copy)
    m = json.loads((copy / "manifest.json").read_text())
    del m["components"]["vae_decoder"]
    (copy / "manifest.json").write_text(json.dumps(m))
    p = Pipeline.load(copy)
    monkeypatch.setattr(p, "runner", lambda name: pytest.fail(f"{name} ran"))
    with pytest.raises(ManifestError, match="has no vae_decoder, so it can only return latents"):
        p("a cat", **CALL)
    del m["components"]["unet"]
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="has no unet, which generation needs"):
        Pipeline.load(copy)


def _poison(pipe, monkeypatch, name: str, at_call: int):
    """Make component ``name`` return NaN from its ``at_call``-th call on."""
    runner = pipe.runner(name)
    real, calls = runner.infer, []

    def infer(feed):
        calls.append(1)
        out = real(feed)
        return {k: v * np.nan for k, v in out.items()} if len(calls) >= at_call else out

    monkeypatch.setattr(runner, "infer", infer)
    return calls


def test_nan_guard_stops_at_the_step(pipe, monkeypatch):
    calls = _poison(pipe, monkeypatch, "unet", at_call=2)
    decode = []
    monkeypatch.setattr(pipe, "decode", lambda *a: decode.append(1))
    with pytest.raises(NumericalError,
                       match=r"^the unet output became NaN or infinite at step 2 of 4 \(fp32 on onnxruntime\); fp32 is "
                       r"already"):
        pipe("a cat", **{**CALL, "num_inference_steps": 4})
    assert len(calls) == 2 and decode == []  # stopped at once: no further step, no decode


def test_nan_guard_on_the_decoder(pipe, monkeypatch):
    _poison(pipe, monkeypatch, "vae_decoder", at_call=1)
    with pytest.raises(NumericalError, match=r"^the vae_decoder output became NaN or infinite"):
        pipe("a cat", **CALL)


def test_nan_guard_suggests_fp32_when_in_fp16():
    from t2vrt.engines.backends import get_backend

    class Fp16:
        precision, backend, backend_impl = "fp16", "tensorrt", get_backend("tensorrt")

    with pytest.raises(NumericalError, match=r"at step 3 of 9 \(fp16 on tensorrt\); run in fp32 .*keep unet in fp32"):
        guard.check_step(Fp16(), 2, 9, np.array([np.inf]), np.array([np.nan]))
    guard.check_step(Fp16(), 0, 9, np.zeros(3), np.zeros(3))  # finite: nothing
