"""Size buckets: one TensorRT optimization profile per (height, width), frames and batch dynamic inside each.

A bucket is one exact video size. An engine holds one profile per bucket; at run time the profile that holds the
request is selected (``select_profile``, a pure function of the request and the profiles recorded in the manifest).
Fixed sizes also keep TensorRT-RTX's code generator away from its failures on fp16 graphs whose frames and size are
both dynamic ("empty runtime-fusion MVMF" on a tiny UNet, ``bad_alloc`` on the real one; benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping, NamedTuple, Sequence

from t2vrt.components import ModelDims, Profile
from t2vrt.errors import InputError

SIZE_FIELDS = ("height", "width")


class Size(NamedTuple):
    """One bucket, in pixels; written WIDTHxHEIGHT as on the command line (``576x320``)."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def parse_sizes(text: str) -> tuple[Size, ...]:
    """``"256x256,576x320"`` -> (Size(256, 256), Size(576, 320)); duplicates dropped, order kept."""
    sizes: list[Size] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        try:
            w, h = (int(v) for v in part.split("x"))
        except ValueError:
            raise InputError(f"size {part!r} is not WIDTHxHEIGHT (e.g. --sizes 256x256,576x320)") from None
        if Size(w, h) not in sizes:
            sizes.append(Size(w, h))
    if not sizes:
        raise InputError(f"--sizes {text!r} names no size; give WIDTHxHEIGHT[,WIDTHxHEIGHT...], e.g. 256x256,576x320")
    return tuple(sizes)


def native_size(m: ModelDims, profile: Profile, config_width: int | None = None) -> Size:
    """The model's own size: the UNet's sample_size times the VAE scale; the width from the model's config if it
    states one, else the export profile's opt (ModelScope 256x256)."""
    return Size(config_width or profile.width[1], m.sample_size * m.vae_scale)


def default_sizes(m: ModelDims, profile: Profile, config_width: int | None = None) -> tuple[Size, ...]:
    """The export profile's opt size and the model's native size, where the export profile holds it."""
    sizes = [Size(profile.width[1], profile.height[1])]
    native = native_size(m, profile, config_width)
    if native not in sizes and _holds(profile, native) and not _misaligned(m, native):
        sizes.append(native)
    return tuple(sizes)


def _holds(p: Profile, s: Size) -> bool:
    return p.height[0] <= s.height <= p.height[2] and p.width[0] <= s.width <= p.width[2]


def _misaligned(m: ModelDims, s: Size) -> bool:
    return bool(s.height % m.size_multiple or s.width % m.size_multiple)


def check_sizes(m: ModelDims, exported: Profile, sizes: Iterable[Size]) -> None:
    """InputError for a bucket the ONNX graphs were not exported for or that the model cannot take."""
    for s in sizes:
        if _misaligned(m, s):
            raise InputError(f"size {s}: width and height must be multiples of {m.size_multiple} for this model")
        if not _holds(exported, s):
            raise InputError(
                f"size {s} is outside the exported range (width {exported.width[0]}..{exported.width[2]}, height "
                f"{exported.height[0]}..{exported.height[2]}); re-export with `t2vrt export MODEL --height "
                f"MIN:OPT:MAX --width MIN:OPT:MAX` covering it"
            )


def bucket_profiles(base: Profile, sizes: Sequence[Size]) -> list[Profile]:
    """One Profile per bucket: its height and width fixed, everything else as ``base``."""
    return [replace(base, height=(s.height,) * 3, width=(s.width,) * 3) for s in sizes]


def select_profile(profiles: Sequence[Mapping[str, Sequence[int]]], sizes: Mapping[str, int]) -> int | None:
    """Index of the profile that holds ``sizes`` (the tightest if several do), or None.

    ``profiles`` are the ranges a manifest records per profile (``{"frames": [lo, opt, hi], ...}`` in user units or
    ``{"f": [lo, opt, hi], ...}`` in symbol units); a name that a profile does not constrain is ignored."""
    holding = [i for i, p in enumerate(profiles)
               if all(p[k][0] <= v <= p[k][2] for k, v in sizes.items() if k in p)]
    if not holding:
        return None
    return min(holding, key=lambda i: sum(r[2] - r[0] for r in profiles[i].values()))


def record_profiles(record: Mapping) -> list[dict]:
    """Every profile of a manifest engine record, ``[{"profile": {...}, "ranges": {...}}, ...]``
    (records written before buckets have one, at the top level)."""
    return record.get("profiles") or [{"profile": record["profile"], "ranges": record.get("ranges", {})}]


def profile_size(profile: Mapping[str, Sequence[int]]) -> Size | None:
    """The bucket of one recorded profile (``{"height": [h, h, h], "width": [w, w, w], ...}``), or None when its
    height or width is a range."""
    h, w = profile.get("height"), profile.get("width")
    return Size(w[0], h[0]) if h and w and h[0] == h[2] and w[0] == w[2] else None


def record_sizes(record: Mapping) -> list[Size]:
    """The buckets of an engine record (empty when its profile has a height or width range)."""
    return [s for s in (profile_size(p["profile"]) for p in record_profiles(record)) if s is not None]


def merged_record(records: Sequence[Mapping]) -> Mapping:
    """One record holding every profile of one component's plans (one engine, or one plan per size bucket), so that
    the selection and its one-line errors see every bucket; ``plan_of`` maps a profile index back to its plan."""
    if len(records) == 1:
        return records[0]
    return {"component": records[0]["component"], "profiles": [p for r in records for p in record_profiles(r)]}


def plan_of(records: Sequence[Mapping], index: int) -> tuple[int, int]:
    """(plan, profile in that plan) of profile ``index`` of ``merged_record(records)``."""
    left = index
    for i, r in enumerate(records):
        n = len(record_profiles(r))
        if left < n:
            return i, left
        left -= n
    raise IndexError(f"profile {index} is past the {len(records)} plans' profiles")


def no_bucket_message(record: Mapping, size: Size, root: str = "DIR") -> str:
    """The one line for a size in no bucket of ``record``: the buckets there are and the command to add one."""
    have = record_sizes(record)
    listed = ",".join(map(str, have + [size]))
    return (f"size {size} is in no size bucket of the {record['component']} engine (buckets: "
            f"{', '.join(map(str, have))}); add one with `t2vrt build {root} --sizes {listed}`")


SYMBOL_FIELDS = {"b": "batch", "f": "frames", "h": "height", "w": "width", "n": "decode_chunk"}


def feed_symbols(spec, shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Each symbol's size in a feed of ``spec``'s inputs (``{"b": 2, "f": 16, "h": 32, "w": 32}``)."""
    out: dict[str, int] = {}
    for t in spec.inputs:
        for d, n in zip(t.dims, shapes[t.name]):
            if isinstance(d, str):
                out[d] = n
            elif isinstance(d, tuple):
                out[d[0]] = n // d[1]
    return out


def user_sizes(profile: Mapping, symbols: Mapping[str, int]) -> dict[str, int]:
    """Symbol sizes in user units (frames, pixels) by one recorded profile's ratio of user to symbol ranges; the
    batch is left out (the UNet's is twice the prompts' under guidance)."""
    out = {}
    for sym, n in symbols.items():
        field = SYMBOL_FIELDS.get(sym)
        if field in profile["profile"] and field != "batch":
            scale = profile["profile"][field][2] // max(1, profile["ranges"][sym][2])
            out[field] = n * scale
    return out
