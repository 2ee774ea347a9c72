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
    blocks = [m for m in module.modules()
              if hasattr(m, "set_chunk_feed_forward") and isinstance(getattr(m, "ff", None), torch.nn.Module)]
    blocks = blocks if slices > 1 else []
    originals = [b.ff for b in blocks]
    try:
        for b in blocks:
            b.ff = ChunkedFeedForward(b.ff, slices)
        yield len(blocks)
    finally:
        for b, ff in zip(blocks, originals):
            b.ff = ff


class SplitGEGLU(torch.nn.Module):
    """Diffusers' GEGLU with its projection as two matrix products, one per half, instead of one and a chunk.

    ``proj(x).chunk(2, -1)`` traces to a MatMul over the doubled width and two Slices that copy each half out (5 %
    of the small preset's UNet step on ONNX Runtime CPU, benchmarks/RESULTS.md); two products over the halves of the
    same weights give the same numbers with no copy. The halves are views of the original weights (no memory)."""

    def __init__(self, geglu: torch.nn.Module):
        super().__init__()
        self.gelu = geglu.gelu  # diffusers' own (it special-cases old MPS)
        w, b = geglu.proj.weight, geglu.proj.bias
        n = w.shape[0] // 2
        self.value = torch.nn.Linear(w.shape[1], n, bias=b is not None)
        self.gate = torch.nn.Linear(w.shape[1], n, bias=b is not None)
        for half, rows in ((self.value, slice(0, n)), (self.gate, slice(n, 2 * n))):
            half.weight = torch.nn.Parameter(w[rows], requires_grad=False)
            if b is not None:
                half.bias = torch.nn.Parameter(b[rows], requires_grad=False)

    def forward(self, hidden_states, *args, **kwargs):
        return self.value(hidden_states) * self.gelu(self.gate(hidden_states))


def _is_geglu(m: torch.nn.Module) -> bool:
    proj = getattr(m, "proj", None)
    return type(m).__name__ == "GEGLU" and isinstance(proj, torch.nn.Linear) and proj.out_features % 2 == 0


@contextmanager
def geglu_split(module: torch.nn.Module, on: bool = True) -> Iterator[int]:
    """Within the block, every diffusers GEGLU in ``module`` is a SplitGEGLU; yields how many were changed and puts
    the originals back on exit (validation compares with diffusers' own forward)."""
    swaps = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if on and _is_geglu(child)]
    try:
        for parent, name, child in swaps:
            setattr(parent, name, SplitGEGLU(child))
        yield len(swaps)
    finally:
        for parent, name, child in swaps:
            setattr(parent, name, child)


WRAPPERS = {"text_encoder": TextEncoder, "unet": UNet, "vae_decoder": VaeDecoder, "vae_encoder": VaeEncoder}


SOURCES = {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae", "vae_encoder": "vae"}


def module_for(name: str, loaded) -> torch.nn.Module:
    """The wrapper module for component ``name``, its weights freshly loaded from a LoadedModel (the caller frees
    it)."""
    return WRAPPERS[name](loaded.module(SOURCES[name])).eval()
