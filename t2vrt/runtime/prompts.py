"""Prompts or precomputed embeddings, as diffusers' ``encode_prompt`` takes them, checked before any backend runs.

Under classifier-free guidance the UNet sees one batch ``[negative; prompt]`` of embeddings [2b, L, D]; the
texts that need encoding (negatives without ``negative_prompt_embeds``, prompts without ``prompt_embeds``) go
through the text encoder in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from t2vrt.errors import InputError
from t2vrt.runtime.arrays import cat, from_numpy, to_numpy


@dataclass
class Prompts:
    prompts: list[str] | None  # None when prompt_embeds are given
    negatives: list[str] | None  # None when unguided or negative_prompt_embeds are given
    prompt_embeds: np.ndarray | None
    negative_prompt_embeds: np.ndarray | None
    guided: bool

    @property
    def batch(self) -> int:
        return len(self.prompts) if self.prompts is not None else len(self.prompt_embeds)


def read_prompts(prompt: Any, negative_prompt: Any, prompt_embeds: Any, negative_prompt_embeds: Any,
                 guidance_scale: float, embed_shape: tuple[int, int]) -> Prompts:
    """diffusers' check_inputs for the text arguments, one line per problem; ``embed_shape`` is (L, D)."""
    if prompt is not None and prompt_embeds is not None:
        raise InputError("give prompt or prompt_embeds, not both")
    if prompt is None and prompt_embeds is None:
        raise InputError("give a prompt (a string or a list of strings) or prompt_embeds")
    if negative_prompt is not None and negative_prompt_embeds is not None:
        raise InputError("give negative_prompt or negative_prompt_embeds, not both")
    prompts = None
    if prompt is not None:
        if not (isinstance(prompt,
                           str) or (isinstance(prompt, (list, tuple)) and all(isinstance(p, str) for p in prompt))):
            raise InputError(f"prompt must be a string or a list of strings; got {type(prompt).__name__}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise InputError("prompt is empty: give a string or a non-empty list of strings")
    pe = _embeds("prompt_embeds", prompt_embeds, embed_shape)
    ne = _embeds("negative_prompt_embeds", negative_prompt_embeds, embed_shape)
    batch = len(prompts) if prompts is not None else len(pe)
    if ne is not None and len(ne) != batch:
        raise InputError(f"negative_prompt_embeds has batch {len(ne)}; the prompt batch is {batch}: give one per "
                         "prompt")
    guided = guidance_scale > 1.0
    negatives = negative_list(negative_prompt, batch) if guided and ne is None else None
    return Prompts(prompts, negatives, pe, ne, guided)


def negative_list(negative_prompt: Any, n: int) -> list[str]:
    if negative_prompt is None:
        return [""] * n
    negs = [negative_prompt] * n if isinstance(negative_prompt, str) else list(negative_prompt)
    if len(negs) != n:
        raise InputError(f"negative_prompt has {len(negs)} entries; prompt has {n}: give one per prompt or a single "
                         "string")
    return negs


def _embeds(name: str, a: Any, embed_shape: tuple[int, int]) -> np.ndarray | None:
    if a is None:
        return None
    a = to_numpy(a)
    if a.ndim != 3 or tuple(a.shape[1:]) != tuple(embed_shape) or len(a) < 1:
        raise InputError(f"{name} has shape {tuple(a.shape)}; this model takes [batch, {embed_shape[0]}, "
                         f"{embed_shape[1]}]")
    return a


def embeddings(p: Prompts, encode: Callable[[list[str]], dict], dtype: str, clip_skip: int | None = None) -> Any:
    """The UNet's encoder_hidden_states: [negative; prompt] under guidance, else the prompts' embeddings.

    ``encode(texts)`` returns the text encoder's outputs. With ``clip_skip`` k the prompts take the k-th hidden
    state before the last, through the final layer norm, and the negatives the last one, as diffusers' encode_prompt.
    """
    texts = (p.negatives or []) + (p.prompts or [])
    out = encode(texts) if texts else None
    encoded = None if out is None else out["last_hidden_state"]
    skipped = None if out is None or not clip_skip else out["hidden_states"][:, -(clip_skip + 1)]
    k = len(p.negatives or [])

    def given(a: np.ndarray) -> Any:
        a = a.astype(str(encoded.dtype).removeprefix("torch.") if encoded is not None else dtype)
        return a if encoded is None else from_numpy(a, encoded)

    pos = given(p.prompt_embeds) if p.prompt_embeds is not None else (encoded if skipped is None else skipped)[k:]
    if not p.guided:
        return pos
    neg = given(p.negative_prompt_embeds) if p.negative_prompt_embeds is not None else encoded[:k]
    return cat([neg, pos])


def check_clip_skip(manifest: Any, clip_skip: int | None) -> None:
    """clip_skip k uses the text encoder's k-th hidden state before the last; the engine directory must export them."""
    if clip_skip is None:
        return
    if not isinstance(clip_skip, int) or isinstance(clip_skip, bool) or clip_skip < 0:
        raise InputError(f"clip_skip={clip_skip!r} must be a non-negative integer (1 uses the layer before the last)")
    from t2vrt.manifest import model_argument

    outputs = {t.name: t for t in manifest.spec("text_encoder").outputs}
    if "hidden_states" not in outputs:
        raise InputError("clip_skip needs the text encoder's hidden states, which this engine directory does not hold "
                         "(exported before t2vrt served clip_skip); re-export it with "
                         f"`t2vrt export {model_argument(manifest.source)} -o DIR --overwrite`")
    layers = outputs["hidden_states"].dims[1] - 1
    if clip_skip > layers:
        raise InputError(f"clip_skip={clip_skip} is more than the text encoder's {layers} layers; choose 0 to {layers}")
