"""Load a diffusers text-to-video model (folder or hub id) as the torch modules we export."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from t2vrt.components import ModelDims
from t2vrt.errors import ExportError
from t2vrt.export.hub import SUBFOLDERS, pick_variant, resolve
from t2vrt.export.refusals import check_model_kind

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model's configs, tokenizer and shapes; weights are loaded one component at a time by ``module``."""

    source: str
    root: Path
    tokenizer: object  # transformers CLIPTokenizer
    scheduler_config: dict
    dims: ModelDims
    configs: dict  # "unet", "vae": diffusers FrozenDict; "text_encoder": transformers CLIPTextConfig
    dtype: str = "float32"
    variant: str | None = None  # "fp16": the *.fp16.safetensors weights

    @property
    def vocab_size(self) -> int:
        return int(self.configs["text_encoder"].vocab_size)

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.configs["vae"]["scaling_factor"])

    def module(self, name: str):
        """Load the weights of ``name`` ("unet", "vae" or "text_encoder"): a fresh module the caller owns and frees."""
        import torch
        from diffusers import AutoencoderKL, UNet3DConditionModel
        from transformers import CLIPTextModel

        from t2vrt.export.weights import load_diffusers

        td = getattr(torch, self.dtype)
        log.info("loading %s weights from %s", name, self.root / name)
        if name == "text_encoder":
            return CLIPTextModel.from_pretrained(self.root / name, torch_dtype=td, variant=self.variant).eval()
        cls = {"unet": UNet3DConditionModel, "vae": AutoencoderKL}[name]
        return load_diffusers(cls, self.root / name, td, self.variant)


def _diffusers_config(cls, folder: Path):
    """A diffusers model's full config (defaults filled in), from a weightless model on the meta device."""
    import torch

    with torch.device("meta"):
        return cls.from_config(cls.load_config(folder)).config


def load_model(model: str, dtype: str = "float32", revision: str | None = None,
               variant: str | None = None) -> LoadedModel:
    """Read a TextToVideoSDPipeline-layout model's configs and tokenizer; no weights are loaded here.
    ``revision``: of a hub id; ``variant``: "fp16" reads *.fp16.safetensors (found alone, they are read anyway)."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTokenizer

    root = resolve(model, revision, variant)
    check_model_kind(root)  # a 2D UNet or another pipeline: one line saying what it is
    variant = pick_variant(root, variant)
    missing = [s for s in SUBFOLDERS if not (root / s).is_dir()]
    if missing:
        raise ExportError(f"{root} lacks the subfolders {missing}; expected {list(SUBFOLDERS)} (the "
                          "ModelScope/Zeroscope layout)")
    log.info("reading %s", root)
    unet = _diffusers_config(UNet3DConditionModel, root / "unet")
    vae = _diffusers_config(AutoencoderKL, root / "vae")
    text = CLIPTextConfig.from_pretrained(root / "text_encoder")
    tok = CLIPTokenizer.from_pretrained(root / "tokenizer")
    sched = _scheduler_config(root / "scheduler" / "scheduler_config.json")
    dims = ModelDims(
        latent_channels=unet["in_channels"],
        text_hidden=text.hidden_size,
        max_length=tok.model_max_length if tok.model_max_length < 10_000 else text.max_position_embeddings,
        vae_scale=2 ** (len(vae["block_out_channels"]) - 1),
        unet_downsample=2 ** (len(unet["block_out_channels"]) - 1),
        sample_size=int(unet["sample_size"]),
        text_layers=int(text.num_hidden_layers),
    )
    return LoadedModel(model, root, tok, sched, dims, {"unet": unet, "vae": vae, "text_encoder": text}, dtype, variant)


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


def _scheduler_config(path: Path) -> dict:
    """The model's scheduler config through the capped JSON reader; one ExportError line if it cannot be read."""
    from t2vrt.jsonio import JSONError, read_json

    try:
        d = read_json(path)
    except (OSError, JSONError) as e:
        raise ExportError(f"scheduler config {path}: {e}; the model folder is damaged (download it again)") from None
    if not isinstance(d, dict):
        raise ExportError(f"scheduler config {path} is not a JSON object; the model folder is damaged")
    return d
