"""Video-to-video bad input: one clear line naming the problem and what to do, raised before any backend runs."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt import InputError, ManifestError, SchedulerError
from t2vrt.runtime.video2video import VideoToVideoPipeline
from tests.helpers import forbid_backends


@pytest.fixture(scope="module")
def pipe(tiny_v2v_engines):
    return VideoToVideoPipeline.load(tiny_v2v_engines)


@pytest.fixture()
def no_backend(pipe, monkeypatch):
    return forbid_backends(pipe, monkeypatch)


def frames(f=2, h=32, w=32):
    return np.full((f, h, w, 3), 128, np.uint8)


@pytest.mark.parametrize(
    "video,kwargs,message",
    [
        (frames(), dict(strength=0), r"^strength=0 is outside \(0, 1\]; 1 ignores the input video"),
        (frames(), dict(strength=-0.1), r"^strength=-0.1 is outside \(0, 1\]"),
        (frames(), dict(strength=1.5), r"^strength=1.5 is outside \(0, 1\]"),
        (frames(), dict(strength=0.1),
         r"strength=0.1 with num_inference_steps=4 leaves no denoising step .*raise strength or"),
        (frames(), dict(height=40), r"^height=40 is not a multiple of 16 .*; try 32$"),
        (frames(), dict(height=256), r"^height=256 is outside this engine directory's range \[32, 128\]"),
        (frames(h=36, w=52), {},
         r"^the input video is 52x36: its height 36 is not a multiple of 16, as this model needs; pass height \(e.g. "
         r"32\) to resize it$"),
        (frames(h=32, w=52), dict(height=32),
         r"^the input video is 52x32: its width 52 is not a multiple of 16, .*; pass width \(e.g. 48\)"),
        # given: no input hint
        (frames(h=32, w=48), dict(height=40), r"^height=40 is not a multiple of 16 .*; try 32$"),
        (frames(17), {},
         r"^num_frames=17 is outside this engine directory's range \[1, 16\]; re-export with `t2vrt export \S+/tiny -o "
         r"\S+ --overwrite --frames 1:8:17`, or denoise it in overlapping windows with context_frames=8, "
         r"context_stride=2 \(CLI: --context-frames 8 --context-stride 2\)$"),
        (frames(), dict(decode_chunk_size=9),
         r"^decode_chunk_size=9 is outside this engine directory's range \[1, 8\]; re-export with `t2vrt export "
         r"\S+/tiny -o \S+ --overwrite --decode-chunk 1:4:9`$"),
        (frames(), dict(output_type="gif"), r"^output_type='gif'; choose one of np, pil, pt, latent$"),
        (frames(), dict(num_inference_steps=0), r"^num_inference_steps=0 must be in \[1, 1000\]"),
        (frames(), dict(eta=-1.0), r"^eta=-1 must be in \[0, 1\]"),
        (frames(), dict(negative_prompt=["a", "b"]), r"^negative_prompt has 2 entries; prompt has 1"),
        (frames().astype(np.float32) * 2, {}, r"^float video frames must lie in \[0, 1\]; these span \[256, 256\]"),
        ("missing.mp4", {}, r"^input video 'missing.mp4' does not exist$"),
    ],
)
def test_bad_arguments(no_backend, video, kwargs, message):
    args = dict(num_inference_steps=4, progress=False) | kwargs
    with pytest.raises(InputError, match=message) as e:
        no_backend("a cat", video, **args)
    assert "\n" not in str(e.value)


def test_unknown_scheduler(no_backend):
    with pytest.raises(SchedulerError, match="unknown scheduler 'nope'; available: .*ddim"):
        no_backend("a cat", frames(), scheduler="nope")


def test_one_prompt_per_video(no_backend):
    with pytest.raises(InputError, match="video-to-video takes one prompt per video; got 2 prompts"):
        no_backend(["a cat", "a dog"], frames())


def test_unreadable_file(no_backend, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match=r"^cannot read '.*broken.mp4' as a video or image \(") as e:
        no_backend("a cat", tmp_path / "broken.mp4")
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]  # nothing written


def test_engine_directory_without_vae_encoder(tiny_engines_without_encoder, tiny_model):
    with pytest.raises(ManifestError) as e:
        VideoToVideoPipeline.load(tiny_engines_without_encoder)
    msg = str(e.value)
    assert "has no vae_encoder, which video-to-video needs" in msg and "\n" not in msg
    # the model the manifest records, not MODEL; --add exports the encoder alone
    assert msg.endswith(f"add it with `t2vrt export {tiny_model} -o {tiny_engines_without_encoder} "
                        "--components vae_encoder --add`")
