"""fp16 graphs: validated against fp32 torch, float32 at the boundary, fp32 where KEEP_FP32 says."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("diffusers")

from t2vrt.export import fp16  # noqa: E402
from t2vrt.export.fp16 import FLOAT, FLOAT16, _typed, export_fp16  # noqa: E402
from t2vrt.export.validate import TOLERANCE  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_export):
    """The session export has fp16 graphs of every component."""
    return tiny_export


def _load(engine, name, precision):
    rel = json.loads((engine / "manifest.json").read_text())["components"][name]["onnx"][precision]["path"]
    return onnx.load(str(engine / rel))


@pytest.mark.parametrize("name", ["text_encoder", "unet", "vae_decoder", "vae_encoder"])
def test_fp16_validates_and_keeps_float32_io(exported, name):
    entry = json.loads((exported / "manifest.json").read_text())["components"][name]
    record = entry["validation"]["fp16"]
    assert record["tolerance"] == TOLERANCE["fp16"]
    errors = [o["rel_l2"] for s in record["shapes"] for o in s["outputs"].values()]
    assert 0 < max(errors) <= TOLERANCE["fp16"]  # > 0: the graph really is fp16 somewhere
    g16, g32 = _load(exported, name, "fp16").graph, _load(exported, name, "fp32").graph
    io = lambda g: [(v.name, v.type.tensor_type.elem_type) for v in [*g.input, *g.output]]  # noqa: E731
    assert io(g16) == io(g32)


def _input_types(model, op_type):
    types = _typed(model)
    return {types[n.input[0]] for n in model.graph.node if n.op_type == op_type}


def test_kept_ops_are_fp32_and_the_rest_fp16(exported):
    unet = _load(exported, "unet", "fp16")
    assert _input_types(unet, "InstanceNormalization") == {FLOAT}  # GroupNorm statistics
    assert _input_types(unet, "LayerNormalization") == {FLOAT}
    assert _input_types(unet, "Sin") == {FLOAT}  # the timestep embedding
    assert _input_types(unet, "Conv") == {FLOAT16}
    assert _input_types(unet, "MatMul") == {FLOAT16}
    assert {t.data_type for t in unet.graph.initializer if len(t.dims) > 1} == {FLOAT16}


def test_external_weights_in_one_file(exported, tmp_path, monkeypatch):
    """Above the threshold the fp16 weights go to one NAME.data file, read from an fp32 graph with external data."""
    src = tmp_path / "fp32" / "model.onnx"
    src.parent.mkdir()
    model = onnx.load(str(exported / "onnx" / "vae_decoder" / "model.onnx"))
    onnx.save_model(model, str(src), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data")
    monkeypatch.setattr(fp16, "EXTERNAL_THRESHOLD", 1)
    dst = tmp_path / "fp16" / "model_fp16.onnx"
    export_fp16(src, dst, "vae_decoder")
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model_fp16.onnx", "model_fp16.onnx.data"]
    ort = pytest.importorskip("onnxruntime")
    latent = np.random.default_rng(0).standard_normal((1, 4, 4, 6)).astype(np.float32)
    out16 = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"latent": latent})[0]
    out32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"latent": latent})[0]
    assert out16.dtype == np.float32 and np.abs(out16 - out32).max() < 2 / 127.5
