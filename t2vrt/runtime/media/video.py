"""The result of a generation and the files people can play (mp4 H.264 yuv420p, gif, png frames), and reading them
back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from t2vrt.errors import InputError, OutputError
from t2vrt.runtime.media.paths import FORMATS, FRAMES_MARK, check_output, write_atomic  # noqa: F401 (FORMATS: re-exported)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> uint8, rounding as diffusers' numpy_to_pil does (x * 255, round)."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def check_output_path(path: str | Path, fps=None, overwrite: bool = False) -> str:
    """The suffix of a path write_video can write (.mp4, .gif, or none for a folder of pngs), after every check of
    output.check_output (not an existing directory, fps finite and positive, a writable parent)."""
    return check_output(path, fps, overwrite).suffix.lower()


def write_video(frames: np.ndarray, path: str | Path, fps: float = 8, overwrite: bool = False) -> Path:
    """Write uint8 [f, H, W, 3] frames; the file appears only once complete, synced and read back."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise InputError(f"frames must be uint8 [f, H, W, 3]; got {frames.dtype} {frames.shape}")
    suffix = check_output_path(path, fps, overwrite)
    f, h, w, _ = frames.shape
    if suffix == ".mp4" and (h % 2 or w % 2):
        raise InputError(f"mp4 (yuv420p) needs an even width and height; got {w}x{h}")
    writers = {".mp4": (_write_mp4, _verify_mp4, frames.nbytes // 8),
               ".gif": (_write_gif, _verify_gif, frames.nbytes // 3),
               "": (_write_pngs, _verify_pngs, frames.nbytes)}
    write, verify, needed = writers[suffix]
    return write_atomic(Path(path), lambda tmp: write(frames, tmp, fps), lambda tmp: verify(tmp, f),
                        needed + (64 << 10))


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    import imageio_ffmpeg

    f, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        macro_block_size=1, quality=None, output_params=["-crf", "18", "-movflags", "+faststart", "-f", "mp4"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def _verify_mp4(path: Path, f: int) -> None:
    import imageio_ffmpeg

    try:
        n = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    except Exception as e:  # ffmpeg cannot read it at all
        why = str(e).strip().splitlines()[-1][:160] if str(e).strip() else e.__class__.__name__
        raise OutputError(f"the written mp4 does not decode ({why})") from None
    if n != f:
        raise OutputError(f"the written mp4 decodes to {n} frames, not {f}")


def _write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    from PIL import Image

    first, *rest = (Image.fromarray(f) for f in frames)  # PIL directly: imageio retries a failed write at exit
    with open(path, "wb") as fp:
        first.save(fp, format="GIF", save_all=True, append_images=rest, duration=1000 / fps, loop=0)


def _verify_gif(path: Path, f: int) -> None:
    """Every frame decodes (PIL merges identical consecutive frames, so a gif may hold fewer than ``f``)."""
    from PIL import Image

    with Image.open(path) as im:
        n = getattr(im, "n_frames", 1)
        for i in range(n):
            im.seek(i)
            im.load()
    if not 1 <= n <= f:
        raise OutputError(f"the written gif holds {n} frames, not {f}")


def _write_pngs(frames: np.ndarray, folder: Path, fps: float) -> None:
    import imageio.v3 as iio

    folder.mkdir(parents=True)
    (folder / FRAMES_MARK).write_text(f"png frames written by t2vrt ({len(frames)} frames, {fps:g} fps)\n")
    for i, frame in enumerate(frames):
        iio.imwrite(folder / f"frame_{i:04d}.png", frame)


def _verify_pngs(folder: Path, f: int) -> None:
    from PIL import Image

    for i in range(f):
        with Image.open(folder / f"frame_{i:04d}.png") as im:
            im.verify()


def read_video(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """An mp4 (or any video ffmpeg reads), a gif, an image, or a folder of images (sorted by name)
    -> uint8 [f, H, W, 3]; alpha is dropped and grey is repeated to RGB. With ``max_frames``, a longer input is
    refused after reading at most ``max_frames + 1`` frames."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise InputError(f"input video {str(path)!r} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        check_frame_count(path, len(files), max_frames)
        frames = [_rgb(_read(iio.imread, f), f, image=True) for f in files]
        if len({f.shape for f in frames}) > 1:
            raise InputError(f"the images in {str(path)!r} differ in size; every frame must have the same size")
        return np.stack(frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _rgb(_read(iio.imread, path), path, image=True)[None]
    return _rgb(_read(lambda p: _read_frames(p, max_frames), path), path, image=False)


def check_frame_count(what, n: int, max_frames: int | None, more: bool = False) -> None:
    if max_frames is not None and n > max_frames:
        raise InputError(
            f"the input video {str(what)!r} has {'more than ' if more else ''}{n - 1 if more else n} frames; this "
            "engine directory "
            f"serves at most {max_frames}: trim it, re-render it in overlapping windows (context_frames, CLI: "
            f"--context-frames), or re-export with a larger --frames MIN:OPT:MAX"
        )


def _read_frames(path: Path, max_frames: int | None) -> np.ndarray:
    """Decode frame by frame, stopping one frame past ``max_frames`` (a long video is not decoded whole)."""
    import imageio.v3 as iio

    if max_frames is None:
        return np.asarray(iio.imread(path, index=None))
    frames = []
    for frame in iio.imiter(path):
        frames.append(np.asarray(frame))
        if len(frames) > max_frames:
            break
    check_frame_count(path, len(frames), max_frames, more=True)
    return np.stack(frames) if frames else np.zeros((0,), np.uint8)


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
    except InputError:
        raise
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
