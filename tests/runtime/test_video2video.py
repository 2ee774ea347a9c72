"""Video-to-video acceptance: our runtime over ONNX Runtime fp32 against diffusers' VideoToVideoSDPipeline in
torch fp32, same seed: the posterior sample's noise, then the added noise, then DDIM's eta noise, in that order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from t2vrt.runtime.video2video import VideoToVideoPipeline, start_index
from tests.helpers import diffusers_run

PROMPT, NEGATIVE = "a panda eating bamboo on a rock", "blurry"
LATENT_TOL, FRAME_TOL = 1e-4, 1 / 255


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def moving_pattern(f: int, h: int, w: int) -> np.ndarray:
    """Deterministic uint8 frames in [47, 208]: coloured waves that drift from frame to frame, never saturated."""
    t, y, x, c = np.ogrid[:f, :h, :w, :3]
    return (127.5 + 80 * np.sin(0.3 * x + 0.2 * (c + 1) * y + 0.5 * t + c)).round().astype(np.uint8)


@pytest.fixture(scope="module")
def ours(tiny_v2v_engines):
    return VideoToVideoPipeline.load(tiny_v2v_engines, backend="onnxruntime")


@pytest.fixture(scope="module")
def reference_pipe(tiny_model):
    from diffusers import VideoToVideoSDPipeline

    pipe = VideoToVideoSDPipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference(pipe, video, seed, output_type, **kw):
    out = pipe(PROMPT, video=video, generator=torch.Generator("cpu").manual_seed(seed), output_type=output_type,
               **kw).frames
    return out.numpy() if output_type == "latent" else out


# Frame counts unlike the export trace's (b=2, f=5); 6 frames make two encoder chunks (4 + 2) at the profile's opt.
# The second case resizes 36x52 frames to 48x32 here, and with diffusers' own VaeImageProcessor.resize there.
@pytest.mark.parametrize(
    "strength,num_frames,size_in,size_out,eta",
    [(0.5, 6, (32, 48), None, 0.0), (0.8, 3, (36, 52), (48, 32), 0.5)],
)
def test_matches_diffusers(ours, reference_pipe, strength, num_frames, size_in, size_out, eta):
    from diffusers.video_processor import VideoProcessor

    frames = moving_pattern(num_frames, *size_in)
    height, width = size_out or size_in
    pil = [Image.fromarray(fr) for fr in frames]
    if size_out:
        pil = [VideoProcessor().resize(im, height, width) for im in pil]  # diffusers' resize: PIL Lanczos
    kw = dict(strength=strength, num_inference_steps=5, guidance_scale=7.5, negative_prompt=NEGATIVE, eta=eta)
    video = ours(PROMPT, frames, height=height, width=width, seed=3, progress=False, **kw)
    ref_latents, ref_frames = diffusers_run(reference_pipe, PROMPT, 3, video=pil, **kw)
    # Neither input nor output may saturate: a comparison of clamped frames could not fail.
    assert ((ref_frames <= 0) | (ref_frames >= 1)).mean() < 0.05 and ref_frames.std() > 0.02
    assert rel_l2(video.latents, ref_latents) < LATENT_TOL
    assert video.images.shape == ref_frames.shape == (1, num_frames, height, width, 3)
    assert np.abs(video.images - ref_frames).max() < FRAME_TOL


def test_the_input_matters(ours):
    """Same seed, two inputs: different results (strength < 1 keeps part of the input)."""
    kw = dict(strength=0.5, num_inference_steps=4, seed=1, output_type="latent", progress=False)
    a = ours(PROMPT, moving_pattern(2, 32, 32), **kw).latents
    b = ours(PROMPT, moving_pattern(2, 32, 32)[:, ::-1], **kw).latents
    assert rel_l2(a, b) > 0.05


def test_input_kinds_agree(ours, tmp_path):
    """uint8 array, PIL images, float frames in [0, 1] and a folder of pngs are the same input."""
    from t2vrt.runtime.media.video import write_video

    frames = moving_pattern(3, 32, 48)
    write_video(frames, tmp_path / "pngs")
    kw = dict(strength=0.6, num_inference_steps=3, seed=2, output_type="latent", progress=False)
    want = ours(PROMPT, frames, **kw).latents
    for video in ([Image.fromarray(f) for f in frames], frames.astype(np.float32) / 255, tmp_path / "pngs",
                  str(tmp_path / "pngs")):
        np.testing.assert_array_equal(ours(PROMPT, video, **kw).latents, want)


def test_chunked_encode_equals_whole(ours):
    kw = dict(strength=0.7, num_inference_steps=3, seed=4, progress=False)
    frames = moving_pattern(5, 32, 32)
    a, b = ours(PROMPT, frames, decode_chunk_size=1, **kw), ours(PROMPT, frames, decode_chunk_size=8, **kw)
    np.testing.assert_allclose(a.latents, b.latents, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.images, b.images, atol=1e-5)


@pytest.mark.parametrize("strength,evaluations", [(1.0, 4), (0.5, 2), (0.3, 1)])
def test_strength_truncates_the_schedule(ours, monkeypatch, strength, evaluations):
    """diffusers' get_timesteps: int(steps * strength) steps run, the noise added at the first of them."""
    timesteps = []
    unet = ours.runner("unet")
    real = unet.infer
    monkeypatch.setattr(unet, "infer", lambda feed: timesteps.append(float(feed["timestep"][0])) or real(feed))
    ours(PROMPT, moving_pattern(2, 32, 32), strength=strength, num_inference_steps=4, seed=0, output_type="latent",
         progress=False)
    assert timesteps == [751.0, 501.0, 251.0, 1.0][4 - evaluations :]
    assert start_index(4, strength) == 4 - evaluations and start_index(4, strength, order=2) == 2 * (4 - evaluations)


def test_same_seed_same_video_and_no_reload(ours):
    kw = dict(strength=0.6, num_inference_steps=3, progress=False)
    frames = moving_pattern(2, 32, 32)
    a = ours(PROMPT, frames, seed=9, **kw)
    runners = dict(ours._runners)
    b = ours(PROMPT, moving_pattern(4, 48, 32), seed=9, **kw)
    c = ours(PROMPT, frames, seed=9, **kw)
    np.testing.assert_array_equal(a.frames, c.frames)
    assert b.frames.shape == (1, 4, 48, 32, 3)
    assert all(ours._runners[k] is v for k, v in runners.items())


def test_dpm_solver_matches_diffusers(ours, reference_pipe, monkeypatch):
    """The Zeroscope XL recipe's scheduler (DPM-Solver++ multistep) over a truncated schedule."""
    from diffusers import DPMSolverMultistepScheduler

    pipe = reference_pipe  # its scheduler swapped for this test only
    monkeypatch.setattr(pipe, "scheduler", DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    frames = moving_pattern(3, 32, 48)
    kw = dict(strength=0.6, num_inference_steps=6, guidance_scale=7.5, negative_prompt=NEGATIVE)
    video = ours(PROMPT, frames, seed=2, scheduler="dpmsolver++", output_type="latent", progress=False, **kw)
    ref = reference(pipe, [Image.fromarray(f) for f in frames], 2, "latent", **kw)
    assert rel_l2(video.latents, ref) < LATENT_TOL


def test_positional_call_and_callback_as_diffusers(ours, reference_pipe):
    """diffusers' order: (prompt, video, strength, num_inference_steps, guidance_scale, negative_prompt, eta,
    generator); callback(step, timestep, latents) over the truncated schedule; frames[0] is the first video."""
    frames = moving_pattern(2, 32, 32)
    pil = [Image.fromarray(fr) for fr in frames]
    seen, ref = [], []
    out = ours(PROMPT, frames, 0.5, 4, 7.5, NEGATIVE, 0.0, torch.Generator("cpu").manual_seed(4),
               callback=lambda i, t, x: seen.append((i, int(t))))
    want = reference_pipe(PROMPT, pil, 0.5, 4, 7.5, NEGATIVE, 0.0, torch.Generator("cpu").manual_seed(4),
                          callback=lambda i, t, x: ref.append((i, int(t)))).frames
    assert seen == ref and len(seen) == 2
    assert out.frames.shape == want.shape == (1, 2, 32, 32, 3) and np.abs(out.frames - want).max() < FRAME_TOL
