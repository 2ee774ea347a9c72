"""torch modules with the exact I/O of each exported component (names in t2vrt.specs)."""

from __future__ import annotations

import torch


class TextEncoder(torch.nn.Module):
    def __init__(self, text_encoder):
        super().__init__()
        self.m = text_encoder

    def forward(self, input_ids):
        return self.m(input_ids, return_dict=False)[0]


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


WRAPPERS = {"text_encoder": TextEncoder, "unet": UNet, "vae_decoder": VaeDecoder, "vae_encoder": VaeEncoder}


SOURCES = {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae", "vae_encoder": "vae"}


def module_for(name: str, loaded) -> torch.nn.Module:
    """The wrapper module for component ``name``, its weights freshly loaded from a LoadedModel (the caller frees it)."""
    return WRAPPERS[name](loaded.module(SOURCES[name])).eval()
