import re
import subprocess

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from t2vrt import InputError
from t2vrt.runtime.media.video import write_video
from t2vrt.runtime.output import Video


def probe(path) -> str:
    """ffmpeg's description of a file's streams (ffprobe is not always installed)."""
    res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True)
    return res.stderr


def frames(f=12, h=48, w=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (f, h, w, 3), dtype=np.uint8)


def test_mp4_plays_in_browsers(tmp_path):
    path = write_video(frames(), tmp_path / "v.mp4", fps=8)
    info = probe(path)
    assert re.search(r"Video: h264 .*yuv420p", info), info
    assert "64x48" in info and "8 fps" in info
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 12
    assert not list(tmp_path.glob(".*partial*"))


def test_gif_and_png_folder(tmp_path):
    f = frames(5)
    write_video(f, tmp_path / "v.gif", fps=4)
    assert iio.imread(tmp_path / "v.gif", index=None).shape[0] == 5
    write_video(f, tmp_path / "pngs", fps=4)
    pngs = sorted((tmp_path / "pngs").glob("*.png"))
    assert len(pngs) == 5 and np.array_equal(iio.imread(pngs[2]), f[2])


def test_bad_outputs(tmp_path):
    with pytest.raises(InputError, match=r"supported outputs are \.mp4, \.gif"):
        write_video(frames(), tmp_path / "v.avi")
    with pytest.raises(InputError, match="even width and height"):
        write_video(frames(h=47), tmp_path / "v.mp4")
    assert not list(tmp_path.iterdir())


def test_video_result_rounding_and_latent_only():
    images = np.full((1, 3, 2, 2, 3), 0.5)
    v = Video.build(images, latents=None, seed=0)
    assert v.frames.shape == (1, 3, 2, 2, 3) and v.frames.dtype == np.float32
    assert v.uint8.shape == (1, 3, 2, 2, 3) and v.uint8[0, 0, 0, 0, 0] == 128
    with pytest.raises(InputError, match="latents only"):
        Video.build(None, latents=np.zeros(1), seed=0, output_type="latent").uint8
