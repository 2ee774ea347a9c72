"""Seeded Gaussian noise: with torch installed, the same numbers as diffusers with
``torch.Generator("cpu").manual_seed(seed)``; without it, NumPy's generator (not comparable)."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np


class Noise:
    """A stream of standard normal float32 arrays, drawn in the order diffusers draws them."""

    def __init__(self, seed: int | None = None, generator: Any = None):
        self.seed = secrets.randbits(63) if seed is None and generator is None else seed
        self.generator = generator
        if generator is None:
            try:
                import torch

                self.generator = torch.Generator("cpu").manual_seed(int(self.seed))
            except ImportError:
                self.rng = np.random.default_rng(self.seed)

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.generator is not None:
            import torch

            return torch.randn(shape, generator=self.generator, device=self.generator.device, dtype=torch.float32).cpu().numpy()
        return self.rng.standard_normal(shape, dtype=np.float32)

    def like_frames(self, x: Any) -> Any:
        """Noise for a [b, c, f, h, w] latent, drawn as diffusers' per-frame [b*f, c, h, w] layout."""
        from t2vrt.runtime.arrays import from_numpy

        b, c, f, h, w = x.shape
        a = self.randn((b * f, c, h, w)).reshape(b, f, c, h, w).transpose(0, 2, 1, 3, 4)
        return from_numpy(a.astype(np.float32 if str(x.dtype).endswith("float32") else np.float64), x)
