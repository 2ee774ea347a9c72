"""Argument checks against the engine directory's declared ranges, before any backend runs."""

from __future__ import annotations

from t2vrt.errors import InputError
from t2vrt.manifest import Manifest


def _in_range(name: str, value: int, rng: tuple[int, int, int], hint: str) -> None:
    if not rng[0] <= value <= rng[2]:
        raise InputError(f"{name}={value} is outside this engine directory's range [{rng[0]}, {rng[2]}]; {hint}")


def check_request(m: Manifest, batch: int, num_frames: int, height: int, width: int) -> None:
    """Raise InputError naming the first argument outside what the manifest declares."""
    p, mult = m.profile, m.model.size_multiple
    if batch < 1:
        raise InputError("prompt is empty: give a string or a non-empty list of strings")
    _in_range("batch size (number of prompts)", batch, p.batch, "re-export with a larger --batch")
    _in_range("num_frames", num_frames, p.frames, f"re-export with --frames {min(num_frames, p.frames[0])}:{p.frames[1]}:{max(num_frames, p.frames[2])}")
    for name, v, rng in (("height", height, p.height), ("width", width, p.width)):
        if v % mult:
            raise InputError(f"{name}={v} is not a multiple of {mult} (this model needs multiples of {mult}); try {max(mult, round(v / mult) * mult)}")
        _in_range(name, v, rng, f"re-export with --{name} {min(v, rng[0])}:{rng[1]}:{max(v, rng[2])}")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name}={value} must be {'>= 0' if allow_zero else '> 0'}")
