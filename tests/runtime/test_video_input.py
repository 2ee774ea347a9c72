"""Reading input videos and turning frames into VAE encoder input (t2vrt.runtime.media.video.read_video,
video_input)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from t2vrt import InputError
from t2vrt.runtime.media.frames import load_frames, resize_frames, to_encoder_input
from t2vrt.runtime.media.video import read_fps, read_video, write_video


def frames(f=4, h=32, w=48, k=0.2):
    """uint8 waves of spatial frequency ``k``, another in each channel, drifting from frame to frame."""
    t, y, x, c = np.ogrid[:f, :h, :w, :3]
    return (127.5 + 100 * np.sin(k * x + 1.5 * k * y * (c + 1) + t)).round().astype(np.uint8)


def test_read_back_what_we_write(tmp_path):
    f = frames(k=0.05)  # smooth: yuv420p halves the colour resolution
    write_video(f, tmp_path / "v.mp4", fps=12)
    write_video(f, tmp_path / "v.gif", fps=4)
    write_video(f, tmp_path / "pngs")
    np.testing.assert_array_equal(read_video(tmp_path / "pngs"), f)  # lossless
    assert read_video(tmp_path / "v.gif").shape == f.shape
    mp4 = read_video(tmp_path / "v.mp4")
    assert mp4.shape == f.shape and mp4.dtype == np.uint8
    err = np.abs(mp4[:, None].astype(int) - f[None]).mean(axis=(2, 3, 4))  # decoded frame i vs source frame j
    assert err.diagonal().max() < 8 and (err.argmin(axis=1) == np.arange(len(f))).all()  # lossy, in order
    assert read_fps(tmp_path / "v.mp4") == 12 and read_fps(tmp_path / "pngs") is None


def test_grey_rgba_and_single_image(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    f = frames(2)
    iio.imwrite(folder / "a.png", f[0, ..., 0])  # grey
    iio.imwrite(folder / "b.png", np.concatenate([f[1], np.full((32, 48, 1), 255, np.uint8)], -1))  # RGBA
    got = read_video(folder)
    assert got.shape == (2, 32, 48, 3)
    assert (got[0] == f[0, ..., :1]).all() and np.array_equal(got[1], f[1])
    assert read_video(folder / "b.png").shape == (1, 32, 48, 3)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.mp4", r"input video '.*missing.mp4' does not exist"),
        (lambda p: (p / "bad.mp4").write_text("not a video") and p / "bad.mp4",
         r"cannot read '.*bad.mp4' as a video or image \("),
        (lambda p: (p / "empty").mkdir() or p / "empty", r"folder '.*empty' holds no images"),
    ],
)
def test_unreadable_inputs(tmp_path, make, message):
    with pytest.raises(InputError, match=message) as e:
        read_video(make(tmp_path))
    assert "\n" not in str(e.value)


def test_frames_of_different_sizes(tmp_path):
    iio.imwrite(tmp_path / "a.png", frames(1)[0])
    iio.imwrite(tmp_path / "b.png", frames(1, 16, 16)[0])
    with pytest.raises(InputError, match="differ in size"):
        read_video(tmp_path)


def test_load_frames_kinds_and_errors():
    f = frames(2)
    assert load_frames(f) is f
    np.testing.assert_array_equal(load_frames([Image.fromarray(x) for x in f]), f)
    np.testing.assert_array_equal(load_frames([Image.fromarray(x).convert("RGBA") for x in f]), f)
    np.testing.assert_array_equal(load_frames(list(f)), f)
    for bad, message in [
        (f[0], r"shape \(32, 48, 3\); expected \[frames, height, width, 3\]"),
        (f.astype(np.int32), "dtype int32; expected uint8, or float in"),
        (f.astype(np.float32), r"float video frames must lie in \[0, 1\]; these span \[\d+, \d+\]"),
        (np.full((1, 2, 2, 3), np.nan), "must lie in"),
        ([], "empty list"),
        ([f[0], f[1, :16]], "differ in size"),
        (3.0, "video is a float; give a path"),
    ]:
        with pytest.raises(InputError, match=message):
            load_frames(bad)


def test_resize_is_diffusers_lanczos():
    from diffusers.video_processor import VideoProcessor

    f = frames(2, 36, 52)
    got = resize_frames(f, 48, 32)
    want = np.stack([np.asarray(VideoProcessor().resize(Image.fromarray(x), 48, 32)) for x in f])
    np.testing.assert_array_equal(got, want)
    assert resize_frames(f, 36, 52) is f
    fl = resize_frames(f.astype(np.float32) / 255, 48, 32)  # float frames: same filter, no rounding
    assert fl.dtype == np.float32 and 0 <= fl.min() and fl.max() <= 1
    assert np.abs(fl * 255 - got).max() < 1.5  # PIL's 8-bit path rounds and uses fixed-point weights


def test_encoder_input_is_diffusers_normalisation():
    from diffusers.video_processor import VideoProcessor

    f = frames(3)
    want = VideoProcessor(do_resize=False).preprocess_video([Image.fromarray(x) for x in f])[0].permute(1, 0, 2, 3)
    got = to_encoder_input(f)
    assert got.dtype == np.float32 and got.shape == (3, 3, 32, 48)
    np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(to_encoder_input(f.astype(np.float32) / 255), got)
