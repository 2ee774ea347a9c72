"""A toy ONNX graph for the runner tests: y = 2x + 1 over a dynamic batch "b"."""

import pytest

from t2vrt.components import ComponentSpec, TensorSpec

SPEC = ComponentSpec("toy", (TensorSpec("x", "float32", ("b", 3)),), (TensorSpec("y", "float32", ("b", 3)),))


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """y = 2x + 1 over a dynamic batch."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])
    two, one = (helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("two", 2.0), ("one", 1.0)))
    nodes = [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])]
    graph = helper.make_graph(nodes, "toy", [x], [y], initializer=[two, one])
    path = tmp_path_factory.mktemp("toy") / "toy.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path
