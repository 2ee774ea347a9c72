"""The Reshape allowzero pass: runtime-computed shapes get allowzero=1, placeholder zeros are kept."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from t2vrt.export.onnx import clean_graph  # noqa: E402


def _graph(path):
    """y1 = x.reshape(x.shape[0] // 2, 4, 6) (computed), y2 = x.reshape([0, -1]) (GroupNorm-style placeholder)."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(v)], v))  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        c("i0", [0]), c("two", [2]), c("rest", [4, 6]), c("placeholder", [0, -1]),
        helper.make_node("Gather", ["s", "i0"], ["n"]),  # the index 0 is no dimension value
        helper.make_node("Div", ["n", "two"], ["half"]),
        helper.make_node("Concat", ["half", "rest"], ["shape1"], axis=0),
        helper.make_node("Reshape", ["x", "shape1"], ["y1"], name="computed"),
        helper.make_node("Reshape", ["x", "placeholder"], ["y2"], name="placeholder"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 6])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_allowzero_only_where_no_placeholder(tmp_path):
    path = tmp_path / "m.onnx"
    _graph(path)
    x = np.random.default_rng(0).standard_normal((4, 2, 6)).astype(np.float32)
    before = _run(path, x)
    clean_graph(path)
    nodes = {n.name: n for n in onnx.load(str(path)).graph.node}
    allowzero = {k: {a.name: a.i for a in nodes[k].attribute}.get("allowzero", 0) for k in ("computed", "placeholder")}
    assert allowzero == {"computed": 1, "placeholder": 0}
    for a, b in zip(before, _run(path, x)):
        np.testing.assert_array_equal(a, b)
