"""Weights in one external-data file per graph, gathered one tensor at a time.

The cheap tests drive the same code a >2 GiB graph takes: torch's one-file-per-weight layout made with onnx
from a tiny graph, and a lowered EXTERNAL_THRESHOLD for graphs that keep their weights inside. The slow test
exports a real 2.4 GB torch module.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from t2vrt.errors import ExportError
from t2vrt.export import ExportOptions, export_model, external_data
from t2vrt.export.external_data import ALIGN, gather_external_data
from t2vrt.manifest import load_manifest, sha256_file


def _run(path, feed):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def _scatter(src, folder):
    """Write ``src`` the way torch writes a graph over 2 GiB: model.onnx plus one loose file per weight."""
    import onnx

    folder.mkdir()
    model = onnx.load(str(src))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=0)
    return folder / "model.onnx"


def _locations(path):
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return [{e.key: e.value for e in t.external_data} for t in _get_all_tensors(model) if uses_external_data(t)]


@pytest.fixture
def unet_graph(tiny_engines):
    return load_manifest(tiny_engines).onnx_path(tiny_engines, "unet", "fp32")


@pytest.fixture
def unet_feed():
    rng = np.random.default_rng(0)
    return {"sample": rng.standard_normal((2, 4, 3, 16, 32), dtype=np.float32),
            "timestep": np.array([500.0], np.float32),
            "encoder_hidden_states": rng.standard_normal((2, 77, 32), dtype=np.float32)}


def test_loose_files_are_gathered(unet_graph, unet_feed, tmp_path):
    path = _scatter(unet_graph, tmp_path / "g")
    loose = len(list(path.parent.iterdir())) - 1
    assert loose > 50
    gather_external_data(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
    locs = _locations(path)
    assert len(locs) == loose and {loc["location"] for loc in locs} == {"model.onnx.data"}
    assert all(int(loc["offset"]) % ALIGN == 0 for loc in locs)  # ONNX Runtime can memory-map them
    np.testing.assert_array_equal(_run(path, unet_feed)[0], _run(unet_graph, unet_feed)[0])
    before = sha256_file(path.with_name("model.onnx.data"))
    gather_external_data(path)  # already gathered: nothing moves
    assert sha256_file(path.with_name("model.onnx.data")) == before


def test_short_loose_file_is_an_error(unet_graph, tmp_path):
    path = _scatter(unet_graph, tmp_path / "g")
    victim = max((p for p in path.parent.iterdir() if p != path), key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size - 4)
    with pytest.raises(ExportError, match=rf"{victim.name}: external data of .* is \d+ bytes; expected \d+"):
        gather_external_data(path)


@pytest.mark.slow  # its own export (UNet)
def test_lowered_threshold_exports_through_the_gather_path(tiny_model, tmp_path, monkeypatch, unet_feed, unet_graph):
    """The tiny export with a threshold of 0: every graph takes the path a 1.4 GB text encoder takes."""
    monkeypatch.setattr(external_data, "EXTERNAL_THRESHOLD", 0)
    out = export_model(str(tiny_model), tmp_path / "engines",
                       ExportOptions(components=("text_encoder", "unet"), ort_fusion=False))
    m = load_manifest(out)
    for name in ("text_encoder", "unet"):
        rec = m.components[name]["onnx"]["fp32"]
        assert rec["external_data"]["path"] == f"onnx/{name}/model.onnx.data"
        assert sha256_file(out / rec["external_data"]["path"]) == rec["external_data"]["sha256"]
        assert sorted(p.name for p in (out / "onnx" / name).iterdir()) == ["model.onnx", "model.onnx.data"]
        assert m.components[name]["validation"]["fp32"]["shapes"]  # ONNX Runtime ran the gathered graph
    np.testing.assert_array_equal(_run(m.onnx_path(out, "unet", "fp32"), unet_feed)[0], _run(unet_graph, unet_feed)[0])


@pytest.mark.slow
@pytest.mark.scale  # .ci/run runs it after `make test`; the gather logic runs in make test at a lowered threshold
def test_torch_graph_over_2gb(tmp_path):
    """A 2.4 GB module: torch writes loose files (its >2 GiB layout), gathered into one; ONNX Runtime matches torch.

    About 35 s of one core and 6 GB of memory.
    """
    import torch

    from t2vrt.components import ComponentSpec, TensorSpec
    from t2vrt.export.onnx import export_onnx

    torch.manual_seed(0)
    with torch.device("meta"):
        module = torch.nn.Sequential(*[torch.nn.Linear(8192, 8192) for _ in range(9)]).eval()
    module.to_empty(device="cpu")
    for p in module.parameters():
        torch.nn.init.normal_(p, std=8192**-0.5)
    spec = ComponentSpec("big", (TensorSpec("x", "float32", ("b", 8192)),), (TensorSpec("y", "float32", ("b", 8192)),))
    path = export_onnx(module, spec, {"b": 2}, tmp_path / "big" / "model.onnx")
    data = path.with_name("model.onnx.data")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert data.stat().st_size >= 9 * 8192 * 8192 * 4 and path.stat().st_size < 1 << 20
    x = torch.randn(3, 8192)
    with torch.no_grad():
        ref = module(x).numpy()
    del module
    got = _run(path, {"x": x.numpy()})[0]
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5
    shutil.rmtree(path.parent)
