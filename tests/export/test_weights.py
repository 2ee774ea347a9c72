"""Loading with one copy of the weights, component by component; the real-size preset's architecture."""

from __future__ import annotations

import shutil

import pytest
import torch

from t2vrt.errors import ExportError
from t2vrt.export.load import load_model
from t2vrt.export.weights import checkpoint_files, load_diffusers, stored_numel


def _same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("sub", ["unet", "vae"])
def test_same_weights_as_from_pretrained(tiny_model, sub):
    from diffusers import AutoencoderKL, UNet3DConditionModel

    cls = {"unet": UNet3DConditionModel, "vae": AutoencoderKL}[sub]
    ours = load_diffusers(cls, tiny_model / sub, torch.float32)
    _same_weights(ours, cls.from_pretrained(tiny_model / sub))
    assert not ours.training
    assert stored_numel(tiny_model / sub) == sum(p.numel() for p in ours.parameters())


def test_sharded_and_half_precision_checkpoints(tiny_model, tmp_path):
    """A checkpoint in shards, stored in fp16, loads as fp32 with the values from_pretrained gives."""
    from diffusers import UNet3DConditionModel

    ref = UNet3DConditionModel.from_pretrained(tiny_model / "unet", torch_dtype=torch.float16)
    ref.save_pretrained(tmp_path / "unet", max_shard_size="200KB")
    assert len(checkpoint_files(tmp_path / "unet")) > 2
    ours = load_diffusers(UNet3DConditionModel, tmp_path / "unet", torch.float32)
    _same_weights(ours, UNet3DConditionModel.from_pretrained(tmp_path / "unet", torch_dtype=torch.float32))


def test_missing_weights_are_an_error(tiny_model, tmp_path):
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_model / "vae", tmp_path / "vae")
    f = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(f)
    del state["decoder.conv_out.weight"]
    save_file(state, f)
    with pytest.raises(ExportError,
                       match=r"the checkpoint lacks 1 weights of AutoencoderKL, e.g. \['decoder.conv_out.weight'\]"):
        load_diffusers(AutoencoderKL, tmp_path / "vae", torch.float32)


def test_load_model_reads_no_weights(tiny_model, monkeypatch):
    """load_model reads configs only; each component's weights load when asked, as a fresh module."""
    import diffusers.models.model_loading_utils as mlu
    import safetensors.torch

    def no_weights(*a, **k):
        raise AssertionError("load_model read weights")

    with monkeypatch.context() as mp:
        mp.setattr(mlu, "load_state_dict", no_weights)
        mp.setattr(safetensors.torch, "load_file", no_weights)
        loaded = load_model(str(tiny_model))
    assert loaded.dims.unet_downsample == 2 and loaded.vocab_size == 680 and loaded.vae_scaling_factor == 0.18215
    assert loaded.module("unet") is not loaded.module("unet")


def test_real_size_preset_matches_the_reference():
    """modelscope-1.7b against shared/reference/models.md (built on the meta device: no memory, no time)."""
    from t2vrt.export.random_model import make_text_encoder, make_unet, make_vae
    from t2vrt.presets import PRESETS

    p = PRESETS["modelscope-1.7b"]
    count = lambda m: sum(t.numel() for t in m.parameters())  # noqa: E731
    with torch.device("meta"):
        unet, vae, text = make_unet(p), make_vae(p), make_text_encoder(p, 49408)
    assert round(count(unet) / 1e6, 1) == 1411.2
    assert unet.config.block_out_channels == (320, 640, 1280, 1280) and unet.config.cross_attention_dim == 1024
    assert unet.config.attention_head_dim == 64 and unet.config.layers_per_block == 2 and unet.config.sample_size == 32
    c = text.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
            c.vocab_size) == (1024, 23, 16, 4096, 49408)
    assert (c.hidden_act, c.max_position_embeddings) == ("gelu", 77)
    assert vae.config.block_out_channels == (128, 256, 512, 512) and vae.config.layers_per_block == 2
    assert vae.config.scaling_factor == 0.18215 and vae.config.latent_channels == 4
