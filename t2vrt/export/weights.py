"""Load a diffusers model with one copy of its weights in memory.

Without ``accelerate`` installed, diffusers' ``from_pretrained`` builds the model with allocated parameters
and then copies a memory-mapped checkpoint into them: two copies of the weights are resident at once (11 GB
for the real-size UNet). Here the model is built on the meta device and the checkpoint's tensors are assigned
to it (memory-mapped safetensors stay file-backed; a dtype cast makes one anonymous copy). The checkpoint
files are found and their keys fixed by diffusers' own functions; a layout this does not know falls back to
``from_pretrained``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from t2vrt.errors import ExportError

log = logging.getLogger(__name__)
WEIGHTS = "diffusion_pytorch_model"


def checkpoint_files(folder: Path, stem: str = WEIGHTS, variant: str | None = None) -> list[Path] | None:
    """The weight files of a model folder (sharded or not; ``stem`` "model" for transformers; ``variant`` e.g.
    "fp16" for *.fp16.safetensors), or None if none."""
    from t2vrt.export.hub import weight_files

    return weight_files(folder, stem, variant)


def stored_numel(folder: Path, stem: str = WEIGHTS, variant: str | None = None) -> int | None:
    """Number of weight elements in a folder's safetensors checkpoint, read from the file headers alone."""
    files = checkpoint_files(folder, stem, variant)
    if not files or any(f.suffix != ".safetensors" for f in files):
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, info in header.items():
            if key != "__metadata__":
                n = 1
                for d in info["shape"]:
                    n *= d
                total += n
    return total


def load_diffusers(cls, folder: Path, dtype, variant: str | None = None):
    """``cls.from_pretrained(folder, torch_dtype=dtype, variant=variant)`` with one resident copy of the weights."""
    import torch
    from diffusers.models.model_loading_utils import load_state_dict

    files = checkpoint_files(folder, variant=variant)
    if files is None:
        log.warning("%s: no %s.safetensors/.bin; loading with from_pretrained (two copies of the weights in memory)",
                    folder, WEIGHTS)
        return cls.from_pretrained(folder, torch_dtype=dtype, variant=variant).eval()
    with torch.device("meta"):
        model = cls.from_config(cls.load_config(folder))
    expected, seen = set(model.state_dict()), set()
    for f in files:
        state = load_state_dict(str(f))  # safetensors: memory-mapped; .bin: torch.load(mmap=True)
        if len(files) == 1:
            model._fix_state_dict_keys_on_load(state)  # old attention-block names, as from_pretrained does
        unexpected = sorted(set(state) - expected)
        if unexpected:
            log.warning("%s: %d weights of the checkpoint are not in %s and are ignored, e.g. %s", f.name,
                        len(unexpected), cls.__name__, unexpected[:3])
        state = {k: v.to(dtype) if v.is_floating_point() and v.dtype != dtype else v for k,
                 v in state.items() if k in expected}
        model.load_state_dict(state, strict=False, assign=True)
        seen |= set(state)
        del state
    missing = sorted(expected - seen)
    if missing:
        raise ExportError(f"{folder}: the checkpoint lacks {len(missing)} weights of {cls.__name__}, e.g. "
                          f"{missing[:3]}; is it the right model?")
    if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        log.warning("%s: tensors left unset; loading with from_pretrained instead", folder)
        del model
        return cls.from_pretrained(folder, torch_dtype=dtype, variant=variant).eval()
    model.register_to_config(_name_or_path=str(folder))
    return model.eval()
