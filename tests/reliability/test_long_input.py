"""A video-to-video input longer than the profile is refused after decoding only as many frames as needed."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt import InputError
from t2vrt.runtime.media import video as video_mod
from t2vrt.runtime.media.video import read_video, write_video


def test_long_video_refused_after_max_plus_one_frames(tmp_path, monkeypatch):
    path = write_video(np.zeros((40, 32, 32, 3), np.uint8), tmp_path / "long.mp4")
    import imageio.v3 as iio

    decoded = []
    real = iio.imiter

    def counting(p, **kw):
        for frame in real(p, **kw):
            decoded.append(1)
            yield frame

    monkeypatch.setattr(iio, "imiter", counting)
    with pytest.raises(InputError,
                       match=r"long\.mp4' has more than 16 frames; this engine directory serves at most 16"):
        read_video(path, max_frames=16)
    assert len(decoded) == 17
    assert read_video(path, max_frames=40).shape == (40, 32, 32, 3)


def test_long_folder_refused_before_decoding(tmp_path, monkeypatch):
    folder = write_video(np.zeros((5, 16, 16, 3), np.uint8), tmp_path / "pngs")
    monkeypatch.setattr(video_mod, "_read", lambda *a: pytest.fail("decoded a frame"))
    with pytest.raises(InputError, match="has 5 frames; this engine directory serves at most 4"):
        read_video(folder, max_frames=4)


def test_pipeline_refuses_long_file(tiny_v2v_engines, tmp_path):
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    ramp = np.arange(20, dtype=np.uint8)[:, None, None, None] * 10  # distinct frames (a gif merges identical ones)
    path = write_video(np.broadcast_to(ramp, (20, 32, 32, 3)).copy(), tmp_path / "long.gif")
    pipe = VideoToVideoPipeline.load(tiny_v2v_engines)
    with pytest.raises(InputError, match="has more than 16 frames"):
        pipe("a cat", str(path), num_inference_steps=2, progress=False)
