"""Video-to-video input: a path, frames or PIL images -> frames at the requested size -> VAE encoder input.

Frames stay uint8 (or float in [0, 1]) until a chunk is fed to the encoder, so memory does not grow fourfold
with the frame count. Pixel values reach the encoder exactly as diffusers' VideoProcessor makes them from
PIL images: ``float32(uint8) / 255``, then ``2 x - 1``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from t2vrt.errors import InputError
from t2vrt.runtime.media.video import read_video


def load_frames(video: Any, max_frames: int | None = None) -> np.ndarray:
    """A path (mp4, gif, image, folder of images), a list of PIL images or [H, W, 3] arrays, or an
    [f, H, W, 3] array (uint8, or float in [0, 1]) -> one [f, H, W, 3] array of the same kind.
    A file of more than ``max_frames`` frames is refused after decoding at most ``max_frames + 1`` of them
    (frames given in memory are refused by the size check that follows)."""
    if isinstance(video, (str, os.PathLike)):
        return read_video(video, max_frames)
    if isinstance(video, (list, tuple)):
        if not video:
            raise InputError("video is an empty list: give at least one frame")
        frames = [_pil_to_array(v) if hasattr(v, "convert") and hasattr(v, "size") else np.asarray(v) for v in video]
        if len({(f.shape, f.dtype) for f in frames}) > 1:
            raise InputError("the frames of video differ in size or dtype; every frame must be alike")
        video = np.stack(frames)
    if not isinstance(video, np.ndarray):
        raise InputError(
            f"video is a {type(video).__name__}; give a path, a list of PIL images, or a uint8/float [f, H, W, 3] array"
        )
    return _check_frames(video)


def _pil_to_array(image) -> np.ndarray:
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _check_frames(a: np.ndarray) -> np.ndarray:
    if a.ndim != 4 or a.shape[-1] != 3 or 0 in a.shape:
        raise InputError(f"video frames have shape {a.shape}; expected [frames, height, width, 3] (RGB, channels last)")
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"video frames have dtype {a.dtype}; expected uint8, or float in [0, 1]")
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise InputError(f"float video frames must lie in [0, 1]; these span [{lo:g}, {hi:g}] (give uint8 for 0..255)")
    return a


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize every frame with PIL's Lanczos filter (diffusers' VaeImageProcessor default, reducing_gap=None).

    uint8 frames resize as RGB images, which is what diffusers does to PIL input; float frames resize per
    channel in PIL's 32-bit float mode and are clipped back to [0, 1].
    """
    from PIL import Image

    f, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    lanczos = Image.Resampling.LANCZOS
    if frames.dtype == np.uint8:
        return np.stack([np.asarray(Image.fromarray(fr).resize((width, height), lanczos)) for fr in frames])
    out = np.empty((f, height, width, 3), np.float32)
    for i, fr in enumerate(frames):
        for k in range(3):
            channel = Image.fromarray(np.ascontiguousarray(fr[..., k], dtype=np.float32))
            out[i, ..., k] = np.asarray(channel.resize((width, height), lanczos))
    return np.clip(out, 0.0, 1.0)


def to_encoder_input(frames: np.ndarray) -> np.ndarray:
    """[n, H, W, 3] uint8 or [0, 1] float frames -> float32 [n, 3, H, W] in [-1, 1] (diffusers' normalize)."""
    x = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames
    return np.ascontiguousarray((2.0 * x - 1.0).astype(np.float32).transpose(0, 3, 1, 2))
