"""fp16 end to end: whole generations with the fp16 graphs against the same generations in fp32.

Tolerances measured on the tiny model with every layer active (random_model.activate), ONNX Runtime CPU, 4 steps,
about 2.5x the largest figure measured (December 2026):
- text-to-video: latents relative L2 2.3e-3 to 2.8e-3, frames max |diff| 3.0e-3 to 4.1e-3 (about 1/255);
- video-to-video (strength 0.5 and 0.8): latents 4.6e-3 to 7.2e-3, frames max |diff| 8.4e-3 to 1.8e-2 (the
  encoder's fp16 posterior adds to the UNet's error).
A lower bound keeps the test from passing if the fp16 graphs were not used.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2vrt import Pipeline
from t2vrt.runtime.video2video import VideoToVideoPipeline
from tests.runtime.test_video2video import moving_pattern

T2V_LATENT_TOL, T2V_FRAME_TOL = 7e-3, 1e-2
V2V_LATENT_TOL, V2V_FRAME_TOL = 2e-2, 4.5e-2
FP16_DIFFERS = 1e-4  # fp16 graphs change the latents by at least this much (measured: >2e-3)


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def text_to_video(tiny_engines):
    return Pipeline.load(tiny_engines, precision="fp32"), Pipeline.load(tiny_engines, precision="fp16")


@pytest.fixture(scope="module")
def video_to_video(tiny_v2v_engines):
    return (VideoToVideoPipeline.load(tiny_v2v_engines, precision="fp32"),
            VideoToVideoPipeline.load(tiny_v2v_engines, precision="fp16"))


def assert_close(fp16, fp32, latent_tol, frame_tol):
    assert fp16.images.shape == fp32.images.shape
    assert FP16_DIFFERS < rel_l2(fp16.latents, fp32.latents) < latent_tol
    assert np.abs(fp16.images - fp32.images).max() < frame_tol
    assert 0.02 < fp32.images.std() and ((fp32.images <= 0) | (fp32.images >= 1)).mean() < 0.05  # not saturated


# One shape each (the suite's time); the tolerances were measured on these and the other shapes above.
@pytest.mark.parametrize("num_frames,height,width", [(6, 64, 32)])
def test_text_to_video_in_fp16_follows_fp32(text_to_video, num_frames, height, width):
    p32, p16 = text_to_video
    assert (p32.precision, p16.precision) == ("fp32", "fp16")
    kw = dict(negative_prompt="blurry", seed=3, num_frames=num_frames, height=height, width=width,
              num_inference_steps=4, progress=False)
    assert_close(p16("a cat playing piano", **kw), p32("a cat playing piano", **kw), T2V_LATENT_TOL, T2V_FRAME_TOL)


@pytest.mark.parametrize("strength,num_frames,height,width", [(0.5, 6, 32, 48)])
def test_video_to_video_in_fp16_follows_fp32(video_to_video, strength, num_frames, height, width):
    v32, v16 = video_to_video
    video = [Image.fromarray(f) for f in moving_pattern(num_frames, height, width)]
    kw = dict(video=video, strength=strength, seed=1, num_inference_steps=4, progress=False)
    assert_close(v16("a panda", **kw), v32("a panda", **kw), V2V_LATENT_TOL, V2V_FRAME_TOL)
