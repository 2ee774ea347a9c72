"""Proof of the drop-in: diffusers' documented text-to-video example with only the pipeline construction changed
writes the same video as diffusers' own pipeline from the same folder and seed.

The documented lines (diffusers' text-to-video page, the Zeroscope flow, with the tiny model's sizes)::

    pipe = DiffusionPipeline.from_pretrained(model, torch_dtype=...)           # <- the one line that changes
    video_frames = pipe(prompt, num_inference_steps=..., height=..., width=..., num_frames=...).frames[0]
    video_path = export_to_video(video_frames, path)

from_pretrained's export is served by the session's engines (the cache entry for this model and profile points at
them), so the test exports nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2vrt import Pipeline
from t2vrt.components import Profile
from tests.helpers import TINY_PROFILE

PROFILE = Profile(**TINY_PROFILE)


@pytest.fixture(scope="module")
def seeded_cache(tiny_model, tiny_engines, tmp_path_factory):
    """A t2vrt cache whose entry for (tiny model, PROFILE) is the session's engine directory."""
    from t2vrt.runtime.pretrained import cache_path, export_options

    cache = tmp_path_factory.mktemp("t2vrt-cache")
    options, _ = export_options(Pipeline.COMPONENTS, None, None, PROFILE, None, None, {})
    cache_path(str(tiny_model), options, cache).symlink_to(tiny_engines, target_is_directory=True)
    return cache


def run_example(make_pipe, path, generator_seed: int):
    """diffusers' example, verbatim but for the construction and the seed (which makes the two runs comparable)."""
    from diffusers.utils import export_to_video

    pipe = make_pipe()
    prompt = "Spiderman is surfing"
    generator = torch.Generator("cpu").manual_seed(generator_seed)
    video_frames = pipe(prompt, num_inference_steps=2, height=48, width=64, num_frames=6, generator=generator).frames[0]
    return export_to_video(video_frames, str(path))


def test_documented_example_writes_the_same_video(tiny_model, diffusers_pipe, seeded_cache, monkeypatch, tmp_path):
    import imageio.v3 as iio

    monkeypatch.setenv("T2VRT_CACHE", str(seeded_cache))
    monkeypatch.setattr("t2vrt.export.export_model", lambda *a, **k: pytest.fail("from_pretrained exported again"))
    make_ours = lambda: Pipeline.from_pretrained(str(tiny_model), export=True, profile=PROFILE)  # noqa: E731
    ours = run_example(make_ours, tmp_path / "ours.mp4", 0)
    ref = run_example(lambda: diffusers_pipe, tmp_path / "diffusers.mp4", 0)
    a, b = iio.imread(ours, index=None).astype(np.int16), iio.imread(ref, index=None).astype(np.int16)
    assert a.shape == b.shape == (6, 48, 64, 3)
    assert a.std() > 5  # a video with content, so the comparison can fail
    assert np.abs(a - b).mean() < 1.0 and np.abs(a - b).max() <= 8  # the same frames up to a rounding step, re-encoded
    other = iio.imread(run_example(make_ours, tmp_path / "other.mp4", 1), index=None).astype(np.int16)
    assert np.abs(other - b).mean() > 4 * max(np.abs(a - b).mean(), 0.25)  # another seed is far from both
