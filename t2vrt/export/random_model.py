"""Build diffusers-format text-to-video model folders with random weights, from a preset of t2vrt.presets.

The same folder layout as a real checkpoint (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/), so tests and the demo load them through
the code a user's checkpoint takes.

Every layer is active. The constructors of diffusers and transformers leave tensors constant: the last
convolution of each ``TemporalConvLayer`` is zero (each temporal conv block starts as an identity), every
GroupNorm / LayerNorm starts at weight 1 and bias 0, CLIP's linear biases start at 0. A parity check cannot see
an error in a layer that is an identity, nor a norm whose weight and bias are swapped, so ``activate`` gives
each constant floating-point tensor with more than one element random values at the scale of a trained layer:

- a convolution or linear layer whose weight is constant (the zero convolutions) gets the layer's own default
  initialisation (``reset_parameters``: Kaiming-uniform weight, uniform bias);
- a constant bias of a convolution or linear layer gets torch's default bias init, U(-1/sqrt(fan_in), +);
- any other constant parameter (norm weights and biases) gets its constant plus N(0, 0.1^2): norm weights
  around 1, biases around 0.

The values come from torch's global generator, which ``build_model`` seeds once (``seed``) before building the
UNet, the VAE and the text encoder in that order, so a preset and a seed always give the same weights.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

from t2vrt.presets import PRESETS, SCHEDULER_CONFIG, ModelPreset

log = logging.getLogger(__name__)

_CORPUS = (
    "a photo of an astronaut riding a horse on mars spiderman is surfing in the ocean "
    "a panda eating bamboo on a rock the sun sets over the mountains a dog running "
    "through the snow a cat playing piano high quality cinematic video of a city at night "
    "waves crashing on the beach slow motion fireworks in the sky a robot dancing "
    "clouds moving over a field of flowers a car driving on a highway in the rain "
)


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable-unicode map (as in OpenAI's CLIP tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def make_clip_vocab(num_merges: int, pad_to: int | None = None) -> tuple[dict[str, int], list[str]]:
    """Train a small CLIP-style BPE (words end in ``</w>``) on a fixed corpus, deterministically."""
    base = list(_bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base]
    words = Counter(re.findall(r"[a-z]+", _CORPUS))
    splits = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges: list[str] = []
    while len(merges) < num_merges:
        pairs: Counter = Counter()
        for w, parts in splits.items():
            for a, b in zip(parts, parts[1:]):
                pairs[(a, b)] += words[w]
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        for w, parts in splits.items():
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            splits[w] = tuple(out)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    if pad_to is not None:
        vocab += [f"<|unused{i}|>" for i in range(pad_to - len(vocab) - len(specials))]
    vocab += specials
    return {tok: i for i, tok in enumerate(vocab)}, merges


def write_tokenizer(folder: Path, preset: ModelPreset) -> int:
    """Write a CLIP tokenizer (vocab.json, merges.txt, configs) as the SD 2 / ModelScope one: pad token "!"."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = make_clip_vocab(preset.vocab_merges, 49408 if preset.real_tokenizer_size else None)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "!"}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **special}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return len(vocab)


_NOISE = 0.1  # std of the values added to a constant norm weight or bias


def _is_constant(t) -> bool:
    """A floating-point tensor of more than one element holding one value (a meta tensor holds none)."""
    return t.is_floating_point() and not t.is_meta and t.numel() > 1 and bool((t == t.reshape(-1)[0]).all())


def _default_bias_(bias, weight) -> None:
    """torch's default bias init for a convolution or linear layer: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fan_in = weight[0].numel()
    bound = 1.0 / fan_in**0.5 if fan_in > 0 else 0.0
    bias.uniform_(-bound, bound)


def activate(module):
    """Give every constant floating-point parameter of ``module`` random values (the rules in the module
    docstring) from torch's global generator; returns ``module``."""
    import torch

    with torch.no_grad():
        for owner in module.modules():
            constant = [name for name, t in owner.named_parameters(recurse=False) if _is_constant(t)]
            layer = isinstance(owner, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))
            if layer and "weight" in constant:
                owner.reset_parameters()
                continue
            for name in constant:
                t = getattr(owner, name)
                if layer and name == "bias":
                    _default_bias_(t, owner.weight)
                else:
                    t.add_(torch.randn(t.shape, dtype=t.dtype) * _NOISE)
    return module


def make_unet(p: ModelPreset):
    """A random-weight diffusers UNet3DConditionModel of preset ``p``, every layer active (seed torch first for
    reproducible weights)."""
    from diffusers import UNet3DConditionModel

    n = len(p.unet_channels)
    unet = UNet3DConditionModel(
        sample_size=p.sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D",) * (n - 1) + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (n - 1),
        block_out_channels=p.unet_channels,
        layers_per_block=p.unet_layers,
        norm_num_groups=p.unet_groups,
        cross_attention_dim=p.text_hidden,
        attention_head_dim=p.head_dim,
    )
    return activate(unet)


def make_vae(p: ModelPreset):
    """A random-weight diffusers AutoencoderKL of preset ``p``."""
    from diffusers import AutoencoderKL

    m = len(p.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * m,
        up_block_types=("UpDecoderBlock2D",) * m,
        block_out_channels=p.vae_channels,
        layers_per_block=p.vae_layers,
        latent_channels=4,
        norm_num_groups=p.vae_groups,
        sample_size=p.sample_size * 2 ** (m - 1),
        scaling_factor=0.18215,
    )
    return activate(vae)


def make_text_encoder(p: ModelPreset, vocab_size: int):
    """A random-weight transformers CLIPTextModel of preset ``p``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=p.text_hidden,
            intermediate_size=p.text_intermediate,
            num_hidden_layers=p.text_layers,
            num_attention_heads=p.text_heads,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=p.text_hidden,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=1,
        )
    )
    return activate(model)


def build_model(out: str | Path, preset: str | ModelPreset = "tiny", seed: int = 0) -> Path:
    """Write a random-weight text-to-video model in the diffusers folder layout and return its path.

    Components are built, saved and freed one at a time (the real-size UNet alone is 5.6 GB in fp32).
    """
    import torch

    from t2vrt.host import release_memory

    p = PRESETS[preset] if isinstance(preset, str) else preset
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(out / "tokenizer", p)
    torch.manual_seed(seed)  # one stream in a fixed order: unet, vae, text_encoder
    makers = (("unet", lambda: make_unet(p)), ("vae", lambda: make_vae(p)),
              ("text_encoder", lambda: make_text_encoder(p, vocab_size)))
    for name, make in makers:
        module = make()
        module.save_pretrained(out / name)
        del module
        release_memory()
    (out / "scheduler").mkdir(exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
    index = {
        "_class_name": "TextToVideoSDPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    log.info("wrote random-weight %s model to %s", preset if isinstance(preset, str) else "custom", out)
    return out
