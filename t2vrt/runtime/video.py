"""The result of a generation and the files people can play (mp4 H.264 yuv420p, gif, png frames), and reading them back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from t2vrt.errors import InputError

FORMATS = (".mp4", ".gif", "a folder (no suffix) of png frames")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounding as diffusers' numpy_to_pil does (x * 255, round)."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def check_output_path(path: str | Path) -> str:
    """The suffix of a path write_video can write (.mp4, .gif, or none for a folder of pngs), else InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".mp4", ".gif", ""):
        raise InputError(f"cannot write {Path(path).name!r}: supported outputs are {', '.join(FORMATS)}")
    return suffix


def write_video(frames: np.ndarray, path: str | Path, fps: float = 8) -> Path:
    """Write uint8 [f, H, W, 3] frames; the file appears only once complete."""
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be uint8 [f, H, W, 3]; got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise InputError(f"fps={fps} must be positive")
    suffix = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if suffix == ".mp4":
            _write_mp4(frames, tmp, fps)
        elif suffix == ".gif":
            import imageio.v3 as iio

            iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
        else:
            _write_pngs(frames, tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise
    return path


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    import imageio_ffmpeg

    f, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise InputError(f"mp4 (yuv420p) needs an even width and height; got {w}x{h}")
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        macro_block_size=1, quality=None, output_params=["-crf", "18", "-movflags", "+faststart", "-f", "mp4"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def _write_pngs(frames: np.ndarray, folder: Path) -> None:
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        iio.imwrite(folder / f"frame_{i:04d}.png", frame)


def read_video(path: str | Path) -> np.ndarray:
    """An mp4 (or any video ffmpeg reads), a gif, an image, or a folder of images (sorted by name)
    -> uint8 [f, H, W, 3]; alpha is dropped and grey is repeated to RGB."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise InputError(f"input video {str(path)!r} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        frames = [_rgb(_read(iio.imread, f), f, image=True) for f in files]
        if len({f.shape for f in frames}) > 1:
            raise InputError(f"the images in {str(path)!r} differ in size; every frame must have the same size")
        return np.stack(frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _rgb(_read(iio.imread, path), path, image=True)[None]
    return _rgb(_read(lambda p: iio.imread(p, index=None), path), path, image=False)


def read_fps(path: str | Path) -> float | None:
    """Frames per second a video file declares; None for images, folders and files without one."""
    import imageio.v3 as iio

    try:
        fps = iio.immeta(path).get("fps") if Path(path).is_file() else None
    except Exception:  # a format without this metadata: the caller's default applies
        return None
    return float(fps) if fps else None


def _read(reader, path: Path) -> np.ndarray:
    try:
        return np.asarray(reader(path))
    except Exception as e:  # imageio raises many types for undecodable files: one line with the cause
        cause = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise InputError(f"cannot read {str(path)!r} as a video or image ({cause[:200]})") from None


def _rgb(a: np.ndarray, path: Path, image: bool) -> np.ndarray:
    """Grey, RGB or RGBA uint8 pixels ([H, W, C] for an image, [f, H, W, C] for a video) -> RGB."""
    rank = 3 if image else 4
    if a.ndim == rank - 1:
        a = a[..., None]
    if a.ndim != rank or a.shape[-1] not in (1, 3, 4) or a.dtype != np.uint8 or 0 in a.shape:
        raise InputError(f"{str(path)!r} decodes to {a.dtype} {a.shape}; expected 8-bit grey, RGB or RGBA frames")
    return np.ascontiguousarray(np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3])

