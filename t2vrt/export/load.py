"""Load a diffusers text-to-video model (folder or hub id) as the torch modules we export."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2vrt.errors import ExportError
from t2vrt.specs import ModelDims

log = logging.getLogger(__name__)
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class LoadedModel:
    source: str
    root: Path
    text_encoder: object  # transformers CLIPTextModel
    unet: object  # diffusers UNet3DConditionModel
    vae: object  # diffusers AutoencoderKL
    tokenizer: object  # transformers CLIPTokenizer
    scheduler_config: dict
    dims: ModelDims


def resolve(model: str) -> Path:
    """A local folder, or a hub id downloaded into the hub cache (only where the hub is reachable)."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ExportError(f"{model!r} is not a diffusers model folder: it has no model_index.json")
        return path
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        raise ExportError(f"model path {model!r} does not exist (give a diffusers folder or a hub id like damo-vilab/text-to-video-ms-1.7b)")
    try:
        from huggingface_hub import snapshot_download

        patterns = ["model_index.json", *(f"{s}/*" for s in SUBFOLDERS)]
        return Path(snapshot_download(model, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: one line with the cause
        raise ExportError(f"could not fetch {model!r} from the hub ({e.__class__.__name__}); pass a local model folder") from None


def load_model(model: str, dtype: str = "float32") -> LoadedModel:
    """Load every component of a TextToVideoSDPipeline-layout model in eval mode on the CPU."""
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = resolve(model)
    missing = [s for s in SUBFOLDERS if not (root / s).is_dir()]
    if missing:
        raise ExportError(f"{root} lacks the subfolders {missing}; expected {list(SUBFOLDERS)} (the ModelScope/Zeroscope layout)")
    td = getattr(torch, dtype)
    log.info("loading %s", root)
    unet = UNet3DConditionModel.from_pretrained(root / "unet", torch_dtype=td).eval()
    vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=td).eval()
    text = CLIPTextModel.from_pretrained(root / "text_encoder", torch_dtype=td).eval()
    tok = CLIPTokenizer.from_pretrained(root / "tokenizer")
    sched = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    dims = ModelDims(
        latent_channels=unet.config.in_channels,
        text_hidden=text.config.hidden_size,
        max_length=tok.model_max_length if tok.model_max_length < 10_000 else text.config.max_position_embeddings,
        vae_scale=2 ** (len(vae.config.block_out_channels) - 1),
        unet_downsample=2 ** (len(unet.config.block_out_channels) - 1),
        sample_size=int(unet.config.sample_size),
    )
    return LoadedModel(model, root, text, unet, vae, tok, sched, dims)


def save_tokenizer(tokenizer, out: Path) -> dict:
    """Write tokenizer.json (for the ``tokenizers`` library alone) and return the manifest entry."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        src = Path(getattr(tokenizer, "name_or_path", "")) / name
        if src.is_file():
            shutil.copy(src, out / name)
    return {
        "path": "tokenizer/tokenizer.json",
        "max_length": int(min(tokenizer.model_max_length, 10_000)),
        "pad_token": tokenizer.pad_token,
        "pad_id": int(tokenizer.pad_token_id),
        "bos_id": int(tokenizer.bos_token_id),
        "eos_id": int(tokenizer.eos_token_id),
    }
