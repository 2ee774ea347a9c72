"""A call's result with diffusers' contract: ``out.frames`` is what ``TextToVideoSDPipelineOutput.frames`` would
be for the same ``output_type`` (``frames[0]`` is the first video), ``out[0]`` and ``to_tuple()`` as its
``BaseOutput``; ``save``, ``uint8``, ``images`` and ``to_pil`` are conveniences beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from t2vrt.errors import InputError
from t2vrt.runtime.media.video import to_uint8, write_video

OUTPUT_TYPES = ("np", "pil", "pt", "latent")


def check_output_type(output_type: str) -> None:
    """Refuse an output type diffusers' text-to-video pipelines do not have, or "pt" without torch, before any run."""
    if output_type not in OUTPUT_TYPES:
        hint = " (the result's .uint8 holds uint8 frames whatever the output_type)" if output_type == "uint8" else ""
        raise InputError(f"output_type={output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}{hint}")
    if output_type == "pt":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise InputError("output_type='pt' needs torch, which is not installed; use 'np' or install "
                             "torch") from None


def postprocess(images: np.ndarray | None, latents: Any, output_type: str) -> Any:
    """diffusers' VideoProcessor.postprocess_video on float frames [b, f, H, W, 3] in [0, 1]."""
    if output_type == "latent":
        return latents
    if output_type == "np":
        return images
    if output_type == "pt":
        import torch

        return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 1, 4, 2, 3)))  # [b, f, 3, H, W]
    from PIL import Image

    return [[Image.fromarray(f) for f in video] for video in to_uint8(images)]


@dataclass
class Video:
    """Generated videos.

    ``frames``: as diffusers for the call's ``output_type``: "np" float32 [b, f, H, W, 3] in [0, 1], "pt" a torch
    tensor [b, f, 3, H, W], "pil" one list of PIL images per video, "latent" the latents [b, c, f, h, w].
    ``images``: the float32 frames [b, f, H, W, 3] whatever the output type (None for "latent");
    ``latents``: the denoised latents [b, c, f, h, w]; ``seed``: the seed drawn from, where t2vrt chose it.
    """

    frames: Any
    latents: Any = None
    seed: int | None = None
    images: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, images: np.ndarray | None, latents: Any, seed: int | None, output_type: str = "np") -> Video:
        images = None if images is None else np.asarray(images, dtype=np.float32)
        return cls(postprocess(images, latents, output_type), latents, seed, images)

    def __getitem__(self, key: int | str) -> Any:
        """``out[0]`` and ``out["frames"]`` as diffusers' BaseOutput."""
        if key in (0, "frames"):
            return self.frames
        raise KeyError(f"{key!r}: this result holds one field, frames (out[0] or out['frames'])")

    def to_tuple(self) -> tuple[Any]:
        return (self.frames,)

    def _need_images(self) -> np.ndarray:
        if self.images is None:
            raise InputError("this result holds latents only (output_type='latent'); there are no frames to show")
        return self.images

    @property
    def uint8(self) -> np.ndarray:
        """uint8 frames [b, f, H, W, 3], rounded as diffusers' numpy_to_pil (x * 255, round)."""
        return to_uint8(self._need_images())

    def save(self, path: str | Path, fps: float = 8, index: int = 0, overwrite: bool = False) -> Path:
        """Write video ``index`` of the batch as .mp4, .gif or a folder of png frames, through video.write_video's
        checked, synced, verified write and rename (``overwrite``: replace such a folder written earlier; an earlier
        .mp4/.gif file is replaced once the new one is complete)."""
        return write_video(to_uint8(self._need_images()[index]), path, fps, overwrite)

    def to_pil(self, index: int = 0) -> list:
        from PIL import Image

        return [Image.fromarray(f) for f in to_uint8(self._need_images()[index])]

