"""The acceptance test: our runtime over ONNX Runtime fp32 against diffusers' TextToVideoSDPipeline in torch fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2vrt import Pipeline
from tests.helpers import diffusers_run

PROMPT, NEGATIVE = "a cat playing piano, high quality", "blurry"
LATENT_TOL, FRAME_TOL = 1e-4, 1 / 255


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def reference(pipe, prompt, negative, seed, output_type, **kw):
    gen = torch.Generator("cpu").manual_seed(seed)
    out = pipe(prompt, negative_prompt=negative, generator=gen, output_type=output_type, **kw).frames
    return out.numpy() if output_type == "latent" else out


@pytest.fixture(scope="module")
def ours(tiny_engines):
    return Pipeline.load(tiny_engines, backend="onnxruntime")


# Frame counts and sizes unlike the export's trace (b=2, f=5, 32x48 pixels).
@pytest.mark.parametrize("num_frames,height,width", [(3, 48, 64), (6, 64, 32)])
def test_matches_diffusers(ours, diffusers_pipe, num_frames, height, width):
    kw = dict(num_frames=num_frames, height=height, width=width, num_inference_steps=4, guidance_scale=7.5)
    video = ours(PROMPT, negative_prompt=NEGATIVE, seed=3, progress=False, **kw)
    ref_latents, ref_frames = diffusers_run(diffusers_pipe, PROMPT, 3, negative_prompt=NEGATIVE, **kw)
    # The fixture must not saturate: a comparison of clamped frames could not fail.
    assert ((ref_frames <= 0) | (ref_frames >= 1)).mean() < 0.05
    assert ref_frames.std() > 0.02
    assert rel_l2(video.latents, ref_latents) < LATENT_TOL
    assert video.images.shape == ref_frames.shape == (1, num_frames, height, width, 3)
    assert np.abs(video.images - ref_frames).max() < FRAME_TOL
    assert video.frames[0].shape == (num_frames, height, width, 3) and video.frames.dtype == np.float32  # diffusers' np
    assert video.uint8.shape == (1, num_frames, height, width, 3) and video.uint8.dtype == np.uint8


def test_batch_of_prompts_and_no_guidance(ours, diffusers_pipe, monkeypatch):
    prompts = ["a dog running through the snow", "fireworks in the sky"]
    kw = dict(num_frames=2, height=32, width=32, num_inference_steps=4, guidance_scale=1.0)
    batches = []
    unet = ours.runner("unet")
    real = unet.infer
    monkeypatch.setattr(unet, "infer", lambda feed: batches.append(feed["sample"].shape[0]) or real(feed))
    video = ours(prompts, seed=5, progress=False, output_type="latent", **kw)
    ref = reference(diffusers_pipe, prompts, None, 5, "latent", **kw)
    assert rel_l2(video.latents, ref) < LATENT_TOL
    assert batches == [2] * 4  # no unconditional half when guidance_scale <= 1


def test_given_latents_and_eta(ours, diffusers_pipe):
    kw = dict(num_frames=2, height=32, width=48, num_inference_steps=4, guidance_scale=5.0, eta=0.5)
    latents = torch.randn(1, 4, 2, 4, 6, generator=torch.Generator().manual_seed(11))
    video = ours(PROMPT, seed=7, latents=latents.numpy(), output_type="latent", progress=False, **kw)
    gen = torch.Generator("cpu").manual_seed(7)
    ref = diffusers_pipe(PROMPT, generator=gen, latents=latents, output_type="latent", **kw).frames.numpy()
    assert rel_l2(video.latents, ref) < LATENT_TOL


def test_chunked_decode_equals_whole(ours):
    kw = dict(num_frames=5, height=32, width=32, num_inference_steps=2, seed=1, progress=False)
    a = ours(PROMPT, decode_chunk_size=1, **kw).images
    b = ours(PROMPT, decode_chunk_size=8, **kw).images
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_same_seed_same_video_and_reuse(ours):
    kw = dict(num_frames=2, height=32, width=32, num_inference_steps=2, progress=False)
    runners = dict(ours._runners)
    a, b = ours(PROMPT, seed=9, **kw), ours(PROMPT, seed=9, num_frames=3, height=32, width=32, num_inference_steps=2,
                                            progress=False)
    c = ours(PROMPT, seed=9, **kw)
    np.testing.assert_array_equal(a.frames, c.frames)
    assert b.frames.shape[:2] == (1, 3)
    assert all(ours._runners[k] is v for k, v in runners.items())  # nothing reloaded across calls


@pytest.mark.parametrize(
    "name,cls",
    [("dpmsolver++", "DPMSolverMultistepScheduler"), ("euler_a", "EulerAncestralDiscreteScheduler")],
)
def test_other_schedulers_match_diffusers(ours, diffusers_pipe, monkeypatch, name, cls):
    """A swapped scheduler (stochastic ones drawing the same noise) reproduces diffusers' pipeline."""
    import diffusers

    pipe = diffusers_pipe  # the session's pipeline, its scheduler swapped for this test only
    monkeypatch.setattr(pipe, "scheduler", getattr(diffusers, cls).from_config(pipe.scheduler.config))
    kw = dict(num_frames=3, height=48, width=32, num_inference_steps=5, guidance_scale=6.0)
    video = ours(PROMPT, negative_prompt=NEGATIVE, seed=4, scheduler=name, progress=False, **kw)
    ref_latents, ref_frames = diffusers_run(pipe, PROMPT, 4, negative_prompt=NEGATIVE, **kw)
    assert rel_l2(video.latents, ref_latents) < LATENT_TOL
    assert np.abs(video.images - ref_frames).max() < FRAME_TOL
