"""Tiny random-weight models in the diffusers layout, exported once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# What the tiny engine directory declares; parity tests use other shapes than the export's trace (5 frames, 32x48).
TINY_PROFILE = dict(batch=(1, 1, 2), frames=(1, 8, 16), height=(32, 64, 128), width=(32, 64, 128), decode_chunk=(1, 4, 8))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from t2vrt.export.random_model import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_engines(tiny_model, tmp_path_factory):
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("engines") / "tiny"
    return export_model(str(tiny_model), out, ExportOptions(profile=Profile(**TINY_PROFILE)))


@pytest.fixture(scope="session")
def diffusers_pipe(tiny_model):
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_v2v_engines(tiny_model, tmp_path_factory):
    """The tiny model with its VAE encoder too (video-to-video). Session-scoped, and exported only when a test
    asks for it: the parity, error, CLI and export tests of video-to-video share one export."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("engines") / "tiny-v2v"
    components = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
    return export_model(str(tiny_model), out, ExportOptions(components=components, profile=Profile(**TINY_PROFILE)))
