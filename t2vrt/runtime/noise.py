"""Seeded Gaussian noise: with torch installed, the same numbers as diffusers with
``torch.Generator("cpu").manual_seed(seed)``; without it, NumPy's generator (not comparable)."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from t2vrt.errors import InputError


class Noise:
    """A stream of standard normal float32 arrays, drawn in the order diffusers draws them.

    ``generator``: a torch.Generator, or a list of them, one per prompt, as diffusers' ``randn_tensor`` takes them
    (item k of a draw comes from generator k)."""

    def __init__(self, seed: int | None = None, generator: Any = None):
        if seed is not None and generator is not None:
            raise InputError("give seed or generator, not both")
        if isinstance(generator, (list, tuple)) and not generator:
            raise InputError("generator is an empty list; give one torch.Generator, or one per prompt")
        self.seed = secrets.randbits(63) if seed is None and generator is None else seed
        self.generator = generator
        if generator is None:
            try:
                import torch

                self.generator = torch.Generator("cpu").manual_seed(int(self.seed))
            except ImportError:
                self.rng = np.random.default_rng(self.seed)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        if isinstance(self.generator, (list, tuple)):
            if len(self.generator) != shape[0]:
                raise InputError(f"generator is a list of {len(self.generator)}; this draw has batch {shape[0]}: "
                                 "give one generator per prompt (a list serves the initial latents only, as in "
                                 "diffusers)")
            return np.concatenate([_randn(g, (1, *shape[1:])) for g in self.generator])
        if self.generator is not None:
            return _randn(self.generator, shape)
        return self.rng.standard_normal(shape, dtype=np.float32)

    def like_frames(self, x: Any) -> Any:
        """Noise for a [b, c, f, h, w] latent, drawn as diffusers' per-frame [b*f, c, h, w] layout."""
        from t2vrt.runtime.arrays import from_numpy

        b, c, f, h, w = x.shape
        a = self.randn((b * f, c, h, w)).reshape(b, f, c, h, w).transpose(0, 2, 1, 3, 4)
        return from_numpy(a.astype(np.float32 if str(x.dtype).endswith("float32") else np.float64), x)


def _randn(generator: Any, shape: tuple[int, ...]) -> np.ndarray:
    import torch

    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32).cpu().numpy()
