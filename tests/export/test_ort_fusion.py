"""The CPU-fused UNet graph (t2vrt.export.ort_fusion): written by the export where its weights are inline, validated
against PyTorch, recorded and confined like every graph, run by the onnxruntime backend on the CPU only, and
dropped (never half-kept) where it cannot be made, validated or loaded."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from t2vrt.errors import ExportError, ManifestError
from t2vrt.export import ort_fusion
from t2vrt.manifest import load_manifest

FUSED = "onnx/unet/model_ort_cpu.onnx"


def test_the_session_export_has_a_validated_fused_unet(tiny_export):
    unet = load_manifest(tiny_export).components["unet"]
    fused = unet["onnx_fused"]["fp32"]
    assert fused["path"] == FUSED and (tiny_export / FUSED).is_file()
    assert fused["fused_ops"]["Attention"] > 0 and fused["provider"] == "CPUExecutionProvider"
    errors = [o["rel_l2"] for s in fused["validation"]["shapes"] for o in s["outputs"].values()]
    assert len(errors) == 2 and max(errors) < 1e-4
    assert "onnx_fused" not in load_manifest(tiny_export).components["vae_decoder"]


@pytest.mark.parametrize("component, choice, external, want", [
    ("unet", None, False, True), ("unet", None, True, False), ("unet", True, True, True), ("unet", False, False, False),
    ("vae_decoder", True, False, False), ("text_encoder", None, False, False),
])
def test_when_a_fused_graph_is_written(component, choice, external, want):
    assert ort_fusion.wanted(component, choice, external) is want


def test_the_cpu_runner_runs_the_fused_graph_and_cuda_never_would(tiny_export):
    from t2vrt.engines.loader import open_runner

    m = load_manifest(tiny_export)
    r = open_runner(tiny_export, m, "unet", "onnxruntime", "fp32", ["CPUExecutionProvider"])
    assert r.path == tiny_export / FUSED
    assert m.onnx_path(tiny_export, "unet", "fp32").name == "model.onnx"  # what fp16, build and CUDA read
    assert open_runner(tiny_export, m, "vae_decoder", "onnxruntime", "fp32",
                       ["CPUExecutionProvider"]).path.name == "model.onnx"


def test_a_fused_graph_that_does_not_load_falls_back_with_a_warning(tiny_export, monkeypatch, caplog):
    from t2vrt.engines import onnxruntime as ort_runner
    from t2vrt.engines.onnxruntime_backend import open_cpu_runner

    real = ort_runner.OrtRunner

    def refuse_fused(path, *a, **k):
        if Path(path).name == "model_ort_cpu.onnx":
            raise RuntimeError("Could not find an implementation for Attention(1) node with name 'Attention_0'")
        return real(path, *a, **k)

    monkeypatch.setattr(ort_runner, "OrtRunner", refuse_fused)
    with caplog.at_level(logging.WARNING):
        r = open_cpu_runner(tiny_export, load_manifest(tiny_export), "unet", "fp32")
    assert r.path.name == "model.onnx"
    assert "CPU-fused graph does not load here" in caplog.text and "Attention" in caplog.text


def _fake_optimize(ops):
    def optimize(src, dst, model_type, on):
        Path(dst).write_bytes(b"fused")
        return ops
    return optimize


def _record(root, rel):
    return {"path": str(rel), "sha256": "0" * 64, "bytes": 5}


def test_a_fused_graph_that_does_not_validate_is_not_kept(tmp_path, monkeypatch, caplog):
    from t2vrt.export import validate

    monkeypatch.setattr(ort_fusion, "optimize", _fake_optimize({"Attention": 2}))
    monkeypatch.setattr(validate, "compare", lambda *a, **k: (_ for _ in ()).throw(ExportError("unet: 3e-2 > 1e-4")))
    (tmp_path / "onnx/unet").mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        assert ort_fusion.fused_entry("unet", None, tmp_path, Path("onnx/unet/model.onnx"), [("refs",)],
                                      _record) is None
    assert not (tmp_path / FUSED).exists() and "does not match PyTorch" in caplog.text


def test_nothing_fused_or_a_failing_optimizer_leaves_no_file(tmp_path, monkeypatch, caplog):
    (tmp_path / "onnx/unet").mkdir(parents=True)
    monkeypatch.setattr(ort_fusion, "optimize", _fake_optimize({}))
    assert ort_fusion.fused_entry("unet", None, tmp_path, Path("onnx/unet/model.onnx"), [], _record) is None
    assert not (tmp_path / FUSED).exists()

    def broken(src, dst, model_type, on):
        Path(dst).write_bytes(b"half")
        raise TypeError("only 0-dimensional arrays can be converted to Python scalars")

    monkeypatch.setattr(ort_fusion, "optimize", broken)
    with caplog.at_level(logging.WARNING):
        assert ort_fusion.fused_entry("unet", None, tmp_path, Path("onnx/unet/model.onnx"), [], _record) is None
    assert not (tmp_path / FUSED).exists() and "fusion failed (TypeError" in caplog.text


def test_the_fused_graph_is_hashed_and_confined(tiny_export, tmp_path):
    from t2vrt.integrity import hashed_files

    assert FUSED in [p for p, _, _ in hashed_files(load_manifest(tiny_export), precisions=("fp32",))]
    assert FUSED not in [p for p, _, _ in hashed_files(load_manifest(tiny_export), precisions=("fp16",))]
    root = tmp_path / "e"
    shutil.copytree(tiny_export, root)
    d = json.loads((root / "manifest.json").read_text())
    d["components"]["unet"]["onnx_fused"]["fp32"]["path"] = "../elsewhere.onnx"
    (root / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match=r"CPU-fused ONNX graph of unet \('\.\./elsewhere\.onnx'\) climbs out"):
        load_manifest(root)


def test_a_graph_the_optimizer_cannot_hold_is_skipped_in_one_line(tmp_path, monkeypatch, caplog):
    from t2vrt import host

    (tmp_path / "onnx/unet").mkdir(parents=True)
    (tmp_path / "onnx/unet/model.onnx").write_bytes(b"x" * 1000)
    (tmp_path / "onnx/unet/model.onnx.data").write_bytes(b"w" * 9000)
    monkeypatch.setattr(ort_fusion, "optimize", lambda *a: pytest.fail("the optimizer ran"))
    monkeypatch.setattr(host, "available_memory_bytes", lambda: 40_000)  # 5.5 x 10 kB = 55 kB needed
    with caplog.at_level(logging.WARNING):
        assert ort_fusion.fused_entry("unet", None, tmp_path, Path("onnx/unet/model.onnx"), [], _record) is None
    assert not (tmp_path / FUSED).exists()
    line = [r.getMessage() for r in caplog.records]
    assert len(line) == 1 and "needs about" in line[0]
    assert "GiB is available; the portable graph serves the CPU" in line[0]
    monkeypatch.setattr(host, "available_memory_bytes", lambda: None)  # unknown: the fusion is tried
    monkeypatch.setattr(ort_fusion, "optimize", _fake_optimize({}))
    assert ort_fusion.fused_entry("unet", None, tmp_path, Path("onnx/unet/model.onnx"), [], _record) is None
