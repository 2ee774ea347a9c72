"""Argument checks against the engine directory's declared ranges, before any backend runs."""

from __future__ import annotations

from t2vrt.components import check_field
from t2vrt.errors import InputError
from t2vrt.manifest import Manifest

WHERE = "this engine directory's range"


def check_request(m: Manifest, batch: int, num_frames: int, height: int, width: int, root: str = "DIR") -> None:
    """Raise InputError naming the first argument outside what the manifest declares."""
    p, mult = m.profile, m.model.size_multiple
    if batch < 1:
        raise InputError("prompt is empty: give a string or a non-empty list of strings")
    check_field("batch", batch, p.batch, WHERE, root=root, name="batch size (number of prompts)")
    check_field("frames", num_frames, p.frames, WHERE, root=root, name="num_frames")
    for name, v, rng in (("height", height, p.height), ("width", width, p.width)):
        if v % mult:
            raise InputError(f"{name}={v} is not a multiple of {mult} (this model needs multiples of {mult}); try {max(mult, round(v / mult) * mult)}")
        check_field(name, v, rng, WHERE, root=root)


def check_decode_chunk(m: Manifest, chunk: int, root: str = "DIR") -> None:
    """The VAE frames per call inside the profile's decode_chunk range."""
    check_field("decode_chunk", chunk, m.profile.decode_chunk, WHERE, root=root, name="decode_chunk_size")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name}={value} must be {'>= 0' if allow_zero else '> 0'}")
