"""What an export refuses before it loads a weight: profiles no request can use, feed-forward slicing finer than the
model's tokens, folders that are not UNet3D text-to-video models, and pickle checkpoints unless allowed."""

from __future__ import annotations

from pathlib import Path

from t2vrt.components import FLAGS, ModelDims, Profile, check_range_order
from t2vrt.errors import ExportError

UNET_CLASS = "UNet3DConditionModel"
WEIGHT_FOLDERS = ("unet", "vae", "text_encoder")


def check_profile(p: Profile, m: ModelDims) -> None:
    """Every range is MIN <= OPT <= MAX from 1 (components' one check), and sizes are multiples of the model's
    factor."""
    for name, flag in FLAGS.items():
        check_range_order(f"{name} ({flag})", tuple(getattr(p, name)))
    k = m.size_multiple
    for name in ("height", "width"):
        bad = [v for v in getattr(p, name) if v % k or v < k]
        if bad:
            lo, opt, hi = (max(k, round(v / k) * k) for v in getattr(p, name))
            raise ExportError(f"{name} {':'.join(map(str, getattr(p, name)))} (--{name}) has {bad[0]}, not a multiple "
                              f"of {k} "
                              f"(this model's vae scale x unet downsampling); e.g. --{name} {lo}:{opt}:{hi}")


def max_ff_slices(p: Profile, m: ModelDims) -> int:
    """The most feed-forward pieces worth tracing: the tokens of the UNet's deepest level at the smallest request
    (one prompt, no guidance, the profile's minimum frames and size); more would leave pieces empty at every level."""
    k = m.size_multiple
    return p.batch[0] * p.frames[0] * (p.height[0] // k) * (p.width[0] // k)


def check_ff_chunks(slices: int, p: Profile | None = None, m: ModelDims | None = None) -> None:
    """A whole number >= 0; with the profile and model, at most max_ff_slices."""
    if isinstance(slices, bool) or not isinstance(slices, int) or slices < 0:
        raise ExportError(f"ff_chunks={slices} (--ff-chunking) must be >= 0; 0 or 1 keeps the feed-forward whole")
    if p is None or m is None:
        return
    most = max_ff_slices(p, m)
    if slices > most:
        raise ExportError(f"ff_chunks={slices} (--ff-chunking) is more than the {most} tokens the UNet's deepest level "
                          "has at "
                          f"this profile's smallest request; give at most {most} (or raise the profile's minimum "
                          "sizes)")


def _class_name(path: Path) -> str | None:
    from t2vrt.jsonio import read_json

    try:
        return read_json(path).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def check_model_kind(root: Path) -> None:
    """One line naming what a folder is when its UNet is not a UNet3DConditionModel."""
    unet = _class_name(root / "unet" / "config.json")
    if unet == UNET_CLASS:
        return
    pipeline = _class_name(root / "model_index.json") or "a folder without a pipeline class"
    found = f"unet: {unet}" if unet else "no unet/config.json"
    raise ExportError(f"{root} is {pipeline} ({found}); t2vrt exports UNet3D text-to-video models "
                      f"(TextToVideoSDPipeline, e.g. damo-vilab/text-to-video-ms-1.7b or cerspense/zeroscope_v2_576w)")


def check_pickle(root: Path, allow_pickle: bool) -> None:
    """Refuse .bin (pickle) weights, which can run code when loaded, unless ``allow_pickle``."""
    if allow_pickle:
        return
    for folder in WEIGHT_FOLDERS:
        d = root / folder
        if d.is_dir() and not any(d.glob("*.safetensors")) and any(d.glob("*.bin")):
            raise ExportError(f"{d} has only pickle (.bin) weights, which can run code when loaded; convert them to "
                              "safetensors, or pass --allow-pickle (allow_pickle=True) if you trust their source")
