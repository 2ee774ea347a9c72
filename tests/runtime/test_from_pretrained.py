"""Loading as diffusers and optimum: from_pretrained(model, export=True) exports once into a keyed cache; load()
of a diffusers folder or hub id says what to call; revision, variant and offline hubs get one plain line."""

from __future__ import annotations

import shutil

import pytest

from t2vrt import ExportError, InputError, ManifestError, Pipeline
from t2vrt.cli import main
from t2vrt.components import ModelDims, Profile
from t2vrt.export.defaults import native_profile
from t2vrt.export.hub import hub_error, pick_variant, resolve
from tests.helpers import TINY_PROFILE

MODELSCOPE = ModelDims(latent_channels=4, text_hidden=1024, max_length=77, vae_scale=8, unet_downsample=8,
                       sample_size=32)


@pytest.fixture
def exports(monkeypatch, tiny_engines):
    """export_model replaced by a copy of the session's engines: records each export from_pretrained asks for."""
    calls = []

    def fake_export(model, out, options):
        calls.append((model, options))
        shutil.copytree(tiny_engines, out)
        return out

    monkeypatch.setattr("t2vrt.export.export_model", fake_export)
    return calls


def test_from_pretrained_exports_once_into_a_keyed_cache(tiny_model, exports, tmp_path, monkeypatch):
    monkeypatch.setenv("T2VRT_CACHE", str(tmp_path / "cache"))
    profile = Profile(**TINY_PROFILE)
    a = Pipeline.from_pretrained(str(tiny_model), export=True, profile=profile)
    b = Pipeline.from_pretrained(str(tiny_model), export=True, profile=profile)
    assert len(exports) == 1 and a.root == b.root and a.root.parent == tmp_path / "cache"
    assert exports[0][1].profile == profile and exports[0][1].components == ("text_encoder", "unet", "vae_decoder")
    c = Pipeline.from_pretrained(str(tiny_model), export=True, profile=profile, precision="fp16")
    assert len(exports) == 2 and c.root != a.root and exports[1][1].precisions == ("fp32", "fp16")
    with pytest.raises(ManifestError, match=r"has not been exported with these options; pass export=True"):
        Pipeline.from_pretrained(str(tiny_model), profile={"frames": (1, 4, 8)})
    assert Pipeline.from_pretrained(a.root).root == a.root  # an engine directory loads as it is


def test_load_says_what_serves_a_diffusers_folder_or_hub_id(tiny_model):
    with pytest.raises(ManifestError, match=r"is a diffusers model folder, not a t2vrt engine directory: use "
                                            r"Pipeline.from_pretrained\(.*, export=True\), or `t2vrt export "):
        Pipeline.load(tiny_model)
    with pytest.raises(ManifestError,
                       match=r"^'org/model' does not exist here: for a hub id use "
                       r"Pipeline.from_pretrained\('org/model', "
                                            r"export=True\); for an engine directory, create it with `t2vrt export "
                                            r"MODEL -o org/model`$"):
        Pipeline.load("org/model")


def test_default_profile_from_the_native_size():
    assert native_profile(MODELSCOPE) == Profile(frames=(8, 16, 64), height=(128, 256, 1024), width=(128, 256, 1024))
    big = ModelDims(4, 1024, 77, 8, 8, sample_size=160)  # native 1280: outside the old fixed 128..1024
    assert native_profile(big).height == (640, 1280, 5120)
    assert native_profile(MODELSCOPE, {"frames": (1, 8, 24)}).frames == (1, 8, 24)
    given = Profile(**TINY_PROFILE)
    assert native_profile(MODELSCOPE, given) is given


def test_fp16_variant_folders(tiny_model, tmp_path):
    from t2vrt.export.load import load_model

    model = tmp_path / "fp16-only"
    shutil.copytree(tiny_model, model)
    for f in list(model.glob("*/*.safetensors")):
        f.rename(f.with_name(f.name.replace(".safetensors", ".fp16.safetensors")))
    loaded = load_model(str(model))  # found alone, the fp16 weights are read without being asked for
    assert loaded.variant == "fp16"
    assert sum(p.numel() for p in loaded.module("text_encoder").parameters()) > 0
    assert sum(p.numel() for p in loaded.module("vae").parameters()) > 0
    with pytest.raises(ExportError, match=r"has no fp16 weights for \['unet', 'vae', 'text_encoder'\]"):
        pick_variant(tiny_model, "fp16")
    with pytest.raises(ExportError, match=r"variant='bf16'; choose one of fp16"):
        pick_variant(tiny_model, "bf16")


def test_unreachable_hub_is_one_plain_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExportError,
                       match=r"^cannot fetch 'nobody/no-such-model': HF_HUB_OFFLINE is set and it is not in "
                                          r"the local hub cache; download it where the hub is reachable"):
        resolve("nobody/no-such-model")
    assert main(["export", "nobody/no-such-model", "-o", str(tmp_path / "out"), "--revision", "v1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at revision 'v1'" in err[0] and "Traceback" not in err[0]
    RepositoryNotFoundError = type("RepositoryNotFoundError", (Exception,), {})
    assert "is not a model on the Hugging Face Hub" in hub_error("a/b", None, RepositoryNotFoundError())


def test_torch_dtype_and_unknown_options(tiny_model, exports, tmp_path):
    import torch

    pipe = Pipeline.from_pretrained(str(tiny_model), export=True, torch_dtype=torch.float16, cache_dir=tmp_path,
                                    profile=Profile(**TINY_PROFILE))
    assert pipe.precision == "fp16" and exports[0][1].precisions == ("fp32", "fp16")
    with pytest.raises(InputError, match=r"from_pretrained got unexpected arguments \['controlnet'\]"):
        Pipeline.from_pretrained(str(tiny_model), export=True, controlnet=None, use_safetensors=True,
                                 cache_dir=tmp_path)
