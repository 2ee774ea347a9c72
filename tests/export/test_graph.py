"""The Reshape allowzero pass: runtime-computed shapes get allowzero=1, placeholder zeros are kept."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from t2vrt.export.onnx import clean_graph  # noqa: E402
from tests.helpers import reshape_graph  # noqa: E402


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_allowzero_only_where_no_placeholder(tmp_path):
    path = tmp_path / "m.onnx"
    reshape_graph(path)
    x = np.random.default_rng(0).standard_normal((4, 2, 6)).astype(np.float32)
    before = _run(path, x)
    clean_graph(path)
    nodes = {n.name: n for n in onnx.load(str(path)).graph.node}
    allowzero = {k: {a.name: a.i for a in nodes[k].attribute}.get("allowzero", 0) for k in ("computed", "placeholder")}
    assert allowzero == {"computed": 1, "placeholder": 0}
    for a, b in zip(before, _run(path, x)):
        np.testing.assert_array_equal(a, b)
