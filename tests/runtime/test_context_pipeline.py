"""Issue 15 through the Pipeline: long videos in context windows on the shared tiny engines (frames 1:8:16)."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt import Pipeline
from t2vrt.errors import InputError
from t2vrt.runtime.context import unet_calls_per_evaluation

PROMPT = "a panda eating bamboo on a rock"
SMALL = dict(height=32, width=32, num_inference_steps=2, seed=3, progress=False)


@pytest.fixture(scope="module")
def pipe(tiny_engines):
    p = Pipeline.load(tiny_engines)
    yield p
    p.close()


class SpyUnet:
    """The real UNet runner, recording the sample of every call."""

    def __init__(self, runner):
        self.runner, self.samples = runner, []

    def infer(self, feed):
        self.samples.append(np.array(feed["sample"]))
        return self.runner.infer(feed)


@pytest.fixture()
def spy(pipe):
    real = pipe.runner("unet")
    s = pipe._runners["unet"] = SpyUnet(real)
    yield s
    pipe._runners["unet"] = real


@pytest.mark.parametrize("free_noise", [False, True])
def test_one_window_is_plain_generation(pipe, free_noise):
    plain = pipe(PROMPT, num_frames=6, **SMALL)
    for w in (6, 8, 16):
        ctx = pipe(PROMPT, num_frames=6, context_frames=w, context_stride=2, free_noise=free_noise, **SMALL)
        np.testing.assert_array_equal(ctx.frames, plain.frames)
        np.testing.assert_array_equal(ctx.latents, plain.latents)


@pytest.mark.parametrize("mode", ["clamped", "cyclic"])
def test_spy_every_call_has_at_most_w_frames_and_every_frame_is_covered_every_step(pipe, spy, mode):
    f, w, s, steps = 21, 8, 3, 3
    latents = np.random.default_rng(1).standard_normal((1, 4, f, 4, 4)).astype(np.float32)
    xs = [latents]  # DDIM's model input is its latents: x before step i is what the windows must tile
    pipe(PROMPT, num_frames=f, latents=latents, context_frames=w, context_stride=s, context_mode=mode,
         scheduler="ddim", callback=lambda i, t, x: xs.append(np.array(x)), **{**SMALL, "num_inference_steps": steps})
    per_step = unet_calls_per_evaluation(f, w, s, mode)
    assert len(spy.samples) == steps * per_step
    for step in range(steps):
        covered = set()
        for sample in spy.samples[step * per_step : (step + 1) * per_step]:
            assert sample.shape[0] == 2 and sample.shape[2] <= w  # guidance still batched: [negative; prompt]
            np.testing.assert_array_equal(sample[0], sample[1])
            for frame in sample[0].transpose(1, 0, 2, 3):  # which frame of x is this?
                match = [t for t in range(f) if np.array_equal(frame, xs[step][0, :, t])]
                assert len(match) == 1
                covered.add(match[0])
        assert covered == set(range(f)), step


def test_free_noise_every_window_starts_from_the_first_windows_noise(pipe, spy):
    """DDIM's first model input is the initial noise: with FreeNoise every window (all start on the stride grid
    here) holds the first window's 8 noise frames, reordered; without it, none does."""
    for free_noise in (True, False):
        spy.samples.clear()
        pipe(PROMPT, num_frames=40, context_frames=8, context_stride=4, free_noise=free_noise, scheduler="ddim",
             **{**SMALL, "num_inference_steps": 1})
        first = sorted(f.tobytes() for f in spy.samples[0][0].transpose(1, 0, 2, 3))
        same = [sorted(f.tobytes() for f in s[0].transpose(1, 0, 2, 3)) == first for s in spy.samples]
        assert len(same) == 9 and (all(same) if free_noise else not any(same[1:]))


def test_above_the_profile_without_windows_suggests_them(pipe):
    with pytest.raises(InputError,
                       match=r"num_frames=17 is outside .*\[1, 16\]; .*--context-frames 8 --context-stride 2"):
        pipe(PROMPT, num_frames=17, **SMALL)
    with pytest.raises(InputError, match=r"context_frames=17 is outside this engine directory's range \[1, 16\]"):
        pipe(PROMPT, num_frames=40, context_frames=17, **SMALL)
    with pytest.raises(InputError, match=r"context_stride=9 must be in \[1, 8\]"):
        pipe(PROMPT, num_frames=40, context_frames=8, context_stride=9, **SMALL)


def test_256_frames_on_an_engine_for_16(pipe, spy):
    video = pipe(PROMPT, num_frames=256, context_frames=8, context_stride=4, free_noise=True,
                 **{**SMALL, "num_inference_steps": 1})
    assert video.images.shape[:2] == (1, 256) and np.isfinite(video.images).all()
    assert max(s.shape[2] for s in spy.samples) == 8 and len(spy.samples) == unet_calls_per_evaluation(256, 8, 4)
    assert video.images[0, :, 0, 0].std() > 0  # frames differ: not one window repeated


@pytest.mark.slow
def test_256_frames_on_an_engine_exported_for_8_16_24(tiny_model, tmp_path_factory):
    """The issue's own setting: an engine directory whose UNet takes 8 to 24 frames makes a 256-frame video."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    profile = Profile(batch=(1, 1, 1), frames=(8, 16, 24), height=(32, 32, 64), width=(32, 32, 64),
                      decode_chunk=(1, 8, 8))
    out = export_model(str(tiny_model), tmp_path_factory.mktemp("engines") / "tiny-8-16-24",
                       ExportOptions(profile=profile, validate=False, ort_fusion=False))
    p = Pipeline.load(out)
    with pytest.raises(InputError, match="--context-frames 16 --context-stride 4"):
        p(PROMPT, num_frames=256, **SMALL)
    video = p(PROMPT, num_frames=256, context_frames=16, context_stride=4, free_noise=True,
              **{**SMALL, "num_inference_steps": 1})
    assert video.images.shape[:2] == (1, 256) and np.isfinite(video.images).all()


def test_video_to_video_re_renders_a_long_input_window_by_window(tiny_v2v_engines):
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    t, y, x, c = np.ogrid[:40, :32, :32, :3]
    frames = (127.5 + 80 * np.sin(0.3 * x + 0.2 * (c + 1) * y + 0.5 * t + c)).round().astype(np.uint8)  # > 16 frames
    v2v = VideoToVideoPipeline.load(tiny_v2v_engines)
    with pytest.raises(InputError, match=r"num_frames=40 is outside .*--context-frames 8"):
        v2v(PROMPT, frames, num_inference_steps=2, seed=0, progress=False)
    spy = v2v._runners["unet"] = SpyUnet(v2v.runner("unet"))
    out = v2v(PROMPT, frames, strength=0.5, num_inference_steps=2, seed=0, progress=False, context_frames=8,
              context_stride=4)
    assert out.images.shape[:2] == (1, 40)
    assert len(spy.samples) == unet_calls_per_evaluation(40, 8, 4) and max(s.shape[2] for s in spy.samples) == 8
    short = frames[:8]
    spy.samples.clear()
    a = v2v(PROMPT, short, strength=0.5, num_inference_steps=2, seed=0, progress=False)
    b = v2v(PROMPT, short, strength=0.5, num_inference_steps=2, seed=0, progress=False, context_frames=8)
    np.testing.assert_array_equal(a.images, b.images)
    v2v.close()
