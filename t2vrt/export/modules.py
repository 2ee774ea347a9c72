"""torch modules with the exact I/O of each exported component (names in t2vrt.components)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class TextEncoder(torch.nn.Module):
    """input_ids -> last_hidden_state and, for clip_skip, every hidden state through the final layer norm
    [b, layers + 1, L, D] (diffusers' encode_prompt normalizes hidden_states[-(clip_skip + 1)] so)."""

    def __init__(self, text_encoder):
        super().__init__()
        self.m = text_encoder

    def forward(self, input_ids):
        out = self.m(input_ids, output_hidden_states=True, return_dict=True)
        norm = getattr(self.m, "text_model", self.m).final_layer_norm  # transformers 5 dropped the text_model level
        return out.last_hidden_state, torch.stack([norm(h) for h in out.hidden_states], dim=1)


class UNet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.m = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """Latent (already divided by the scaling factor) -> image in [-1, 1]."""

    def __init__(self, vae):
        super().__init__()
        self.m = vae

    def forward(self, latent):
        return self.m.decode(latent, return_dict=False)[0]


class VaeEncoder(torch.nn.Module):
    """Image in [-1, 1] -> mean and std of the latent distribution (unscaled)."""

    def __init__(self, vae):
        super().__init__()
        self.m = vae

    def forward(self, image):
        dist = self.m.encode(image, return_dict=False)[0]
        return dist.mean, dist.std


class ChunkedFeedForward(torch.nn.Module):
    """A transformer block's feed-forward over ``slices`` pieces of its tokens, one after another.

    What diffusers' ``unet.enable_forward_chunking(chunk_size=1, dim=1)`` does in eager PyTorch, made traceable: the
    feed-forward is position-wise, so each token's output is the same whichever piece it is in, and only one piece's
    4x-wide intermediate (8x before GEGLU's gate) is alive at a time. Diffusers slices one token per call, a count
    that tracing would freeze; here the count of pieces is fixed and their bounds are computed from the traced
    shape (``n * i // slices``), so every axis stays dynamic. Tokens of all frames and rows are pooled first, so the
    pieces stay even at any frame count (a temporal block's sequence is only ``f`` long).
    """

    def __init__(self, ff: torch.nn.Module, slices: int):
        super().__init__()
        self.ff, self.slices = ff, slices

    def forward(self, hidden_states):
        flat = hidden_states.reshape(-1, hidden_states.shape[-1])
        n, k = flat.shape[0], self.slices
        return torch.cat([self.ff(flat[n * i // k : n * (i + 1) // k]) for i in range(k)]).view_as(hidden_states)


@contextmanager
def feed_forward_chunking(module: torch.nn.Module, slices: int) -> Iterator[int]:
    """Within the block, every transformer block of ``module`` computes its feed-forward in ``slices`` pieces.

    Yields the number of blocks changed; the original feed-forwards are put back on exit, so validation compares the
    sliced graph with diffusers' own forward. ``slices`` <= 1 changes nothing.
    """
    blocks = [m for m in module.modules() if hasattr(m, "set_chunk_feed_forward") and isinstance(getattr(m, "ff", None), torch.nn.Module)]
    blocks = blocks if slices > 1 else []
    originals = [b.ff for b in blocks]
    try:
        for b in blocks:
            b.ff = ChunkedFeedForward(b.ff, slices)
        yield len(blocks)
    finally:
        for b, ff in zip(blocks, originals):
            b.ff = ff


WRAPPERS = {"text_encoder": TextEncoder, "unet": UNet, "vae_decoder": VaeDecoder, "vae_encoder": VaeEncoder}


SOURCES = {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae", "vae_encoder": "vae"}


def module_for(name: str, loaded) -> torch.nn.Module:
    """The wrapper module for component ``name``, its weights freshly loaded from a LoadedModel (the caller frees it)."""
    return WRAPPERS[name](loaded.module(SOURCES[name])).eval()
