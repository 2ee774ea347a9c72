"""The export profile a model gets when none is given: derived from the model's own native size, so the default
call (``height``/``width`` omitted: ``sample_size * vae_scale``, 16 frames, as diffusers) is always served."""

from __future__ import annotations

from dataclasses import fields, replace

from t2vrt.components import ModelDims, Profile
from t2vrt.errors import ExportError

DEFAULT_FRAMES = 16  # diffusers' TextToVideoSDPipeline default num_frames


def native_size(m: ModelDims) -> int:
    """Pixels of the default height and width (diffusers: unet.config.sample_size * vae_scale_factor)."""
    return m.sample_size * m.vae_scale


def native_profile(m: ModelDims, given: Profile | dict | None = None) -> Profile:
    """``given`` as is when a Profile; else half to four times the native size (multiples of the model's size
    step), 8 to 64 frames around diffusers' 16, with the fields of a ``given`` dict replacing these."""
    if isinstance(given, Profile):
        return given
    n, step = native_size(m), m.size_multiple
    size = (max(step, n // 2 // step * step), n, -(-4 * n // step) * step)
    base = Profile(frames=(min(8, DEFAULT_FRAMES), DEFAULT_FRAMES, 64), height=size, width=size)
    given = dict(given or {})
    unknown = set(given) - {f.name for f in fields(Profile)}
    if unknown:
        raise ExportError(f"unknown profile fields {sorted(unknown)}; choose from {[f.name for f in fields(Profile)]}")
    return replace(base, **{k: tuple(v) for k, v in given.items() if v is not None})
