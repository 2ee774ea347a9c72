"""Export: manifest contents, validation against torch, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2vrt.errors import ExportError
from t2vrt.export import ExportOptions, export_model, exporter
from t2vrt.manifest import VERSION, load_manifest, sha256_file


def test_manifest(tiny_engines):
    m = load_manifest(tiny_engines)
    raw = json.loads((tiny_engines / "manifest.json").read_text())
    assert raw["version"] == VERSION and raw["format"] == "t2vrt-engine-dir"
    assert set(m.components) == {"text_encoder", "unet", "vae_decoder", "vae_encoder"}
    assert m.profile.frames == (1, 8, 16)
    assert {"torch", "diffusers", "onnx", "onnxruntime"} <= set(m.versions)
    for entry in m.components.values():
        onnx = entry["onnx"]["fp32"]
        assert sha256_file(tiny_engines / onnx["path"]) == onnx["sha256"]
        v = entry["validation"]["fp32"]
        assert v["tolerance"] == 1e-4 and len(v["shapes"]) == 2
        assert {s["sizes"]["b"] for s in v["shapes"]} == {1, 2}
        assert all(o["rel_l2"] < 1e-4 for s in v["shapes"] for o in s["outputs"].values())
    unet = m.spec("unet")
    assert [t.name for t in unet.inputs] == ["sample", "timestep", "encoder_hidden_states"]
    assert unet.dynamic_axes()["sample"] == {0: "b", 2: "f", 3: "h", 4: "w"}
    assert (tiny_engines / "tokenizer" / "tokenizer.json").is_file()
    assert json.loads((tiny_engines / "scheduler_config.json").read_text())["_class_name"] == "DDIMScheduler"


def test_graph_axes_are_dynamic(tiny_engines):
    """Every symbolic axis of every graph input and output is symbolic in the ONNX file too."""
    import onnx

    m = load_manifest(tiny_engines)
    for name in m.components:
        g = onnx.load(str(m.onnx_path(tiny_engines, name, "fp32")), load_external_data=False).graph
        spec = m.spec(name)
        for t in list(g.input) + list(g.output):
            axes = spec.dynamic_axes().get(t.name, {})
            dims = t.type.tensor_type.shape.dim
            for i in axes:
                assert dims[i].dim_param and not dims[i].dim_value, (name, t.name, i)


def test_over_tolerance_fails_with_component_and_error(tiny_model, tmp_path, monkeypatch):
    from t2vrt.export import validate

    monkeypatch.setitem(validate.TOLERANCE, "fp32", 1e-12)
    with pytest.raises(ExportError,
                       match=r"text_encoder \(fp32\): output 'last_hidden_state' differs from PyTorch by .* relative "
                       r"L2 at .*; tolerance 1e-12"):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(components=("text_encoder",)))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_interrupted_export_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "save_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(components=("text_encoder",), validate=False))
    assert list(tmp_path.iterdir()) == []


def test_existing_output(tiny_model, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("x")
    with pytest.raises(ExportError, match="already exists; pass --overwrite"):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(components=("text_encoder",)))
    with pytest.raises(ExportError, match="is not an engine directory; refusing"):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(components=("text_encoder",), overwrite=True))


def test_bad_model_paths(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_model(str(tmp_path / "nope"), tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="has no model_index.json"):
        export_model(str(tmp_path / "empty"), tmp_path / "o")


def test_tiny_model_is_deterministic(tmp_path):
    from safetensors.numpy import load_file

    from t2vrt.export.random_model import build_model

    a, b = build_model(tmp_path / "a", seed=1), build_model(tmp_path / "b", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    wa, wb = load_file(a / weights), load_file(b / weights)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
