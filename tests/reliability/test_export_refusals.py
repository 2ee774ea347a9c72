"""Export refuses what could never serve, before any weight is loaded."""

from __future__ import annotations

import json
import shutil

import pytest

from t2vrt.components import Profile
from t2vrt.errors import ExportError, T2VError
from t2vrt.export import ExportOptions, export_model, exporter


@pytest.fixture()
def no_export(monkeypatch):
    monkeypatch.setattr(exporter, "_export_all", lambda *a: pytest.fail("a component was exported"))


@pytest.mark.parametrize("profile, message", [
    (dict(batch=(1, 1, 0)), r"^batch \(--batch\) range 1:1:0 must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX$"),
    (dict(frames=(8, 4, 16)), r"^frames \(--frames\) range 8:4:16 must be MIN:OPT:MAX with 1 <= MIN"),
    (dict(height=(8, 8, 8)), r"^height 8:8:8 \(--height\) has 8, not a multiple of 16 .*; e\.g\. --height 16:16:16"),
    (dict(width=(32, 40, 64)), r"^width 32:40:64 \(--width\) has 40, not a multiple of 16"),
    (dict(decode_chunk=(0, 1, 2)), r"^decode_chunk \(--decode-chunk\) range 0:1:2 must be"),
])
def test_profiles_that_serve_nothing(tiny_model, tmp_path, no_export, profile, message):
    with pytest.raises(T2VError, match=message):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(profile=Profile(**profile)))
    assert list(tmp_path.iterdir()) == []


def test_ff_chunking_bounded_by_the_model(tiny_model, tmp_path, no_export):
    profile = Profile(frames=(1, 8, 16), height=(32, 64, 128), width=(32, 64, 128))  # deepest level: 1 x 2 x 2 tokens
    with pytest.raises(ExportError,
                       match=r"^ff_chunks=100000 \(--ff-chunking\) is more than the 4 tokens .*give at most 4"):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(profile=profile, ff_chunks=100000))
    assert list(tmp_path.iterdir()) == []


def test_not_a_unet3d_model(tiny_model, tmp_path):
    other = tmp_path / "sd"
    (other / "unet").mkdir(parents=True)
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (other / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(ExportError,
                       match=r"is StableDiffusionPipeline \(unet: UNet2DConditionModel\); t2vrt exports UNet3D"):
        export_model(str(other), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pickle_refused_unless_allowed(tiny_model, tmp_path, no_export):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    for f in (model / "unet").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))  # the content does not matter: nothing is loaded before the refusal
    with pytest.raises(ExportError,
                       match=r"unet has only pickle \(\.bin\) weights, which can run code .*--allow-pickle"):
        export_model(str(model), tmp_path / "out")
    from t2vrt.export.refusals import check_pickle

    check_pickle(model, allow_pickle=True)  # allowed: no refusal
