"""Random-weight model presets: the architecture of each, and the scheduler config the real models ship.

``tiny`` for tests, ``small`` for CPU benchmarks, ``modelscope-1.7b`` for the real-size ModelScope / Zeroscope
architecture. Light on purpose (no torch): tests and benchmarks read these; t2vrt.export.random_model builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

# The ModelScope / Zeroscope scheduler config (DDIMScheduler).
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


@dataclass(frozen=True)
class ModelPreset:
    """Architecture of one random-weight model; fields mirror the diffusers configs."""

    unet_channels: tuple[int, ...]
    unet_layers: int
    head_dim: int
    unet_groups: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    vae_channels: tuple[int, ...]
    vae_layers: int
    vae_groups: int
    vocab_merges: int = 400  # BPE merges of the locally made tokenizer
    real_tokenizer_size: bool = False  # pad the vocabulary to CLIP's 49408
    sample_size: int = 32


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        unet_channels=(32, 64), unet_layers=1, head_dim=8, unet_groups=8,
        text_hidden=32, text_layers=2, text_heads=4, text_intermediate=64,
        vae_channels=(16, 16, 32, 32), vae_layers=1, vae_groups=8,
    ),
    # Unlike every other preset (and the test fixtures): cross-attention width 24, UNet head dim 4, 16 norm groups,
    # VAE scale 2, native latent 24 (48 px); the size-bucket tests export it with a non-square profile.
    "tiny-odd": ModelPreset(
        unet_channels=(32, 64), unet_layers=1, head_dim=4, unet_groups=16,
        text_hidden=24, text_layers=1, text_heads=4, text_intermediate=48,
        vae_channels=(16, 32), vae_layers=1, vae_groups=16, sample_size=24,
    ),
    "small": ModelPreset(
        unet_channels=(64, 128, 256, 256), unet_layers=1, head_dim=32, unet_groups=32,
        text_hidden=256, text_layers=4, text_heads=4, text_intermediate=1024,
        vae_channels=(32, 64, 128, 128), vae_layers=1, vae_groups=32,
    ),
    "modelscope-1.7b": ModelPreset(
        unet_channels=(320, 640, 1280, 1280), unet_layers=2, head_dim=64, unet_groups=32,
        text_hidden=1024, text_layers=23, text_heads=16, text_intermediate=4096,
        vae_channels=(128, 256, 512, 512), vae_layers=2, vae_groups=32,
        real_tokenizer_size=True,
    ),
}
