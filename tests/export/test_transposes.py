"""Element-gathering Transposes are split in two block-moving ones (t2vrt.export.transposes): which permutations,
the plan, bitwise the same outputs at dynamic shapes unlike each other, and the exported UNet has none left."""

import numpy as np
import pytest

from t2vrt.export.transposes import is_gather, plan, split_gather_transposes


@pytest.mark.parametrize("perm, gather", [
    ((0, 3, 4, 2, 1), True),   # diffusers' temporal rearrangement [b, c, f, h, w] -> [b, h, w, f, c]
    ((1, 3, 0, 2), True),
    ((0, 3, 4, 1, 2), False),  # two blocks swapped behind a leading one: copied in rows
    ((0, 2, 1, 3, 4), False),  # innermost axis kept
    ((0, 2, 3, 1), False),     # one axis moved
    ((2, 0, 1), False),        # rank 3
])
def test_which_permutations_gather(perm, gather):
    assert is_gather(list(perm)) is gather


def test_the_plan_of_the_temporal_rearrangement():
    # channels to the end ([b, f, h, w, c]), merge h and w, swap f with (h w), innermost kept
    assert plan([0, 3, 4, 2, 1]) == ([0, 2, 3, 4, 1], [[0], [1], [2, 3]], [0, 2, 1])


def _model(perm, rank):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [f"d{i}" for i in range(rank)])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"e{i}" for i in range(rank)])
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=list(perm), name="T"),
             helper.make_node("Relu", ["t"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("perm", [(0, 3, 4, 2, 1), (1, 3, 0, 2)])
def test_split_graph_gives_the_same_bits_at_any_shape(perm):
    import onnx
    import onnxruntime as ort

    model = _model(perm, len(perm))
    assert split_gather_transposes(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == 2 and ops.count("Reshape") == 2
    assert not any(n.op_type == "Transpose" and is_gather(list(n.attribute[0].ints)) for n in model.graph.node)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    shapes = {5: ([2, 5, 3, 4, 6], [1, 3, 7, 2, 5]), 4: ([3, 4, 5, 2], [2, 6, 1, 3])}[len(perm)]
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], np.maximum(x.transpose(perm), 0))


def test_the_exported_unet_has_no_gathering_transpose(tiny_export):
    import onnx

    from t2vrt.manifest import load_manifest

    rec = load_manifest(tiny_export).components["unet"]["onnx"]["fp32"]
    graph = onnx.load(tiny_export / rec["path"], load_external_data=False).graph
    perms = [list(a.ints) for n in graph.node if n.op_type == "Transpose" for a in n.attribute if a.name == "perm"]
    assert not any(is_gather(p) for p in perms)
    assert sum(n.name.endswith("/split/t1") for n in graph.node) > 0  # diffusers' temporal rearrangements, split
