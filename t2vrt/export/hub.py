"""Where a model's files are: a local diffusers folder, or a hub id at a revision (downloaded into the hub cache),
and which weight variant they hold (``fp16``: ``*.fp16.safetensors``, as diffusers' ``variant="fp16"``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from t2vrt.errors import ExportError

log = logging.getLogger(__name__)
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_SOURCES = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
VARIANTS = ("fp16",)


def is_hub_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~")) and not Path(model).expanduser().exists()


def resolve(model: str, revision: str | None = None, variant: str | None = None) -> Path:
    """A local folder, or a hub id downloaded into the hub cache (only where the hub is reachable)."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ExportError(f"{model!r} is not a diffusers model folder: it has no model_index.json")
        if revision is not None:
            log.warning("revision %r is ignored: %s is a local folder", revision, model)
        return path
    if not is_hub_id(model):
        raise ExportError(f"model path {model!r} does not exist (give a diffusers folder or a hub id like "
                          "damo-vilab/text-to-video-ms-1.7b)")
    return download(model, revision, variant)


def download(model: str, revision: str | None, variant: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    weights = [f"{s}/*.{variant}.*" for s in WEIGHT_SOURCES] if variant else [f"{s}/*" for s in WEIGHT_SOURCES]
    patterns = ["model_index.json", *(f"{s}/*.json" for s in SUBFOLDERS), "tokenizer/*", *weights]
    try:
        return Path(snapshot_download(model, revision=revision, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo or revision: one line with the cause and what to pass instead
        raise ExportError(hub_error(model, revision, e, HfHubHTTPError)) from None


def hub_error(model: str, revision: str | None, e: Exception, http_error: type = OSError) -> str:
    name = e.__class__.__name__
    at = f" at revision {revision!r}" if revision else ""
    if name == "RepositoryNotFoundError":
        return f"{model!r} is not a model on the Hugging Face Hub (or it is private: log in with `hf auth login`)"
    if name == "RevisionNotFoundError":
        return f"{model!r} has no revision {revision!r} on the Hugging Face Hub; pass a branch, tag or commit it has"
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or not isinstance(e, http_error):
        offline_set = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
        offline = "HF_HUB_OFFLINE is set" if offline_set else "the hub is unreachable"
        return (f"cannot fetch {model!r}{at}: {offline} and it is not in the local hub cache; download it where the "
                f"hub is reachable (`hf download {model}`) and pass the folder, or unset HF_HUB_OFFLINE")
    return (f"could not fetch {model!r}{at} from the Hugging Face Hub ({name}: {str(e).splitlines()[0][:160]}); "
            "pass a local model folder")


def weight_files(folder: Path, stem: str, variant: str | None) -> list[Path] | None:
    """A folder's checkpoint files of ``variant`` (sharded or not, diffusers' names), or None if it has none."""
    import json

    tag = f".{variant}" if variant else ""
    for ext in ("safetensors", "bin"):
        index = folder / f"{stem}.{ext}.index{tag}.json"
        if index.is_file():
            return [folder / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        single = folder / f"{stem}{tag}.{ext}"
        if single.is_file():
            return [single]
    return None


def pick_variant(root: Path, variant: str | None) -> str | None:
    """The variant to read: the one asked for (which every component must have), else None where the plain
    weights exist, else the one variant a folder holding only variant weights (e.g. *.fp16.safetensors) has."""
    if variant is not None and variant not in VARIANTS:
        raise ExportError(f"variant={variant!r}; choose one of {', '.join(VARIANTS)} (or none for the plain weights)")
    if variant is not None:
        missing = [s for s, stem in WEIGHT_SOURCES.items() if weight_files(root / s, stem, variant) is None]
        if missing:
            raise ExportError(f"{root} has no {variant} weights for {missing} (e.g. "
                              f"{missing[0]}/{WEIGHT_SOURCES[missing[0]]}.{variant}.safetensors); "
                              "export without --variant to read the plain weights")
        return variant
    if all(weight_files(root / s, stem, None) is not None for s, stem in WEIGHT_SOURCES.items()):
        return None
    for v in VARIANTS:
        if all(weight_files(root / s, stem, v) is not None for s, stem in WEIGHT_SOURCES.items()):
            log.info("%s holds %s weights only: reading them (as --variant %s)", root, v, v)
            return v
    return None  # a layout this does not know: the loaders say what is missing
