"""The cases every backend runs: two frame counts at up to two size buckets, with feeds seeded once and shared.

Shapes come from the component specs (the one shape function the export, the build and the runtime use); the
sizes are the engine directory's default size buckets (``t2vrt build``'s), completed to two from its export range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2vrt.components import TEXT_TO_VIDEO
from t2vrt.engines.buckets import Size, default_sizes
from t2vrt.manifest import Manifest

PROMPTS = ("a red panda eating bamboo on a rock", "")  # the text encoder's feed: guided and unconditional


@dataclass(frozen=True)
class Case:
    """One shape every component runs at: ``frames`` frames of ``size`` pixels, the UNet at batch 2 (CFG)."""

    frames: int
    size: Size

    def __str__(self) -> str:
        return f"{self.frames}f {self.size}"


def frame_counts(manifest: Manifest) -> tuple[int, ...]:
    """The export profile's opt frame count and one unlike it inside the range (unlike the export's trace too)."""
    lo, opt, hi = manifest.profile.frames
    other = max(lo, opt // 2 + 1)
    if other == opt:
        other = hi if hi != opt else lo
    return tuple(dict.fromkeys((opt, other)))


def sizes(manifest: Manifest) -> tuple[Size, ...]:
    """Two size buckets: ``t2vrt build``'s defaults, completed with the export range's smallest aligned size."""
    p, m = manifest.profile, manifest.model
    found = list(default_sizes(m, p))
    step = m.size_multiple
    smallest = Size(-(-p.width[0] // step) * step, -(-p.height[0] // step) * step)
    if len(found) < 2 and smallest not in found and smallest.width <= p.width[2] and smallest.height <= p.height[2]:
        found.append(smallest)
    return tuple(found[:2])


def cases(manifest: Manifest) -> list[Case]:
    """Every (frame count, size) pair: the first size bucket at both frame counts, the second at the first count."""
    counts, buckets = frame_counts(manifest), sizes(manifest)
    return [Case(f, buckets[0]) for f in counts] + [Case(counts[0], s) for s in buckets[1:]]


def _chunk(manifest: Manifest, frames: int) -> int:
    lo, _, hi = manifest.profile.decode_chunk
    return min(max(frames, lo), hi)


def feeds(root: Path, manifest: Manifest, case: Case, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """One seeded feed per text-to-video component at ``case``: token ids of PROMPTS, Gaussian latents, a
    mid-schedule timestep, Gaussian text embeddings scaled like CLIP's."""
    from t2vrt.runtime.tokenizer import ClipTokenizer

    rng = np.random.default_rng(seed)
    m = manifest.model
    h, w = case.size.height // m.vae_scale, case.size.width // m.vae_scale
    sizes_ = {"b": 2, "f": case.frames, "h": h, "w": w, "n": _chunk(manifest, case.frames)}
    out = {}
    for name in (c for c in TEXT_TO_VIDEO if c in manifest.components):
        spec = manifest.spec(name)
        feed = {}
        for t in spec.inputs:
            shape = t.shape(sizes_)
            if t.name == "input_ids":
                feed[t.name] = ClipTokenizer(root, manifest.tokenizer)(list(PROMPTS))
            elif t.name == "timestep":
                feed[t.name] = np.full(shape, 501.0, np.float32)
            else:
                feed[t.name] = rng.standard_normal(shape).astype(t.dtype)
        out[name] = feed
    return out
