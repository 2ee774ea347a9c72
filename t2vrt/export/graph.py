"""Graph hygiene after torch.onnx.export: Reshape nodes whose shape can never hold a placeholder 0 get allowzero=1.

Why: ONNX Reshape with allowzero=0 reads a 0 in the shape as "copy this input dimension". When the shape is
computed at run time (the temporal attention's ``batch_frames // num_frames``), TensorRT cannot tell whether a
value will be 0 and warns that the IShuffleLayer "might or might not be zero ... may cause excessive memory
consumption". torch has no placeholder 0: every value the tracer computed from tensor sizes is the literal size
torch used, so allowzero=1 is torch's own meaning. The exporter's symbolic functions do write placeholder zeros
as constants (GroupNorm's ``[0, groups, -1]``); a Reshape whose shape can carry such a constant 0 keeps
allowzero=0 (TensorRT resolves a constant placeholder at build time and does not warn).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# For ops that only move shape values around, the inputs whose values reach the output (others are indices,
# axes or bounds, where a 0 is no dimension value). Ops not listed propagate from all their inputs.
_VALUE_INPUTS = {
    "Gather": (0,), "Unsqueeze": (0,), "Squeeze": (0,), "Slice": (0,), "Reshape": (0,), "Expand": (0,),
    "Where": (1, 2), "Cast": (0,), "Identity": (0,), "Concat": None, "Tile": (0,),
}
_NEVER_ZERO = {"Shape", "Size"}  # sizes of the tensors we run, which are never empty


def _constant_has_zero(tensor) -> bool:
    from onnx import numpy_helper

    if tensor.data_location == 1:  # external data: never a shape constant
        return False
    return bool((numpy_helper.to_array(tensor) == 0).any())


def _may_hold_zero(graph) -> dict[str, bool]:
    """For every tensor: could a constant 0 from the graph reach it as a value (not as an index or axis)?"""
    flag = {i.name: _constant_has_zero(i) for i in graph.initializer}
    flag.update({i.name: False for i in graph.input if i.name not in flag})
    for node in graph.node:  # ONNX nodes are topologically sorted
        if node.op_type == "Constant":
            attr = {a.name: a for a in node.attribute}
            value = attr.get("value")
            zero = _constant_has_zero(value.t) if value is not None else True  # value_ints etc.: be conservative
        elif node.op_type in _NEVER_ZERO:
            zero = False
        elif node.op_type == "ConstantOfShape":
            attr = {a.name: a for a in node.attribute}
            zero = "value" not in attr or _constant_has_zero(attr["value"].t)  # default value is 0
        else:
            idx = _VALUE_INPUTS.get(node.op_type)
            inputs = node.input if idx is None else [node.input[i] for i in idx if i < len(node.input)]
            zero = any(flag.get(name, True) for name in inputs if name)
        for out in node.output:
            flag[out] = zero
    return flag


def set_reshape_allowzero(model) -> tuple[int, int]:
    """Set allowzero=1 on every Reshape whose shape input cannot hold a placeholder 0; returns (changed, kept)."""
    from onnx import helper

    flag = _may_hold_zero(model.graph)
    changed = kept = 0
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        if flag.get(node.input[1], True):
            kept += 1
            continue
        attrs = [a for a in node.attribute if a.name != "allowzero"]
        del node.attribute[:]
        node.attribute.extend(attrs + [helper.make_attribute("allowzero", 1)])
        changed += 1
    return changed, kept


def clean_graph(path: Path) -> None:
    """Rewrite the ONNX file at ``path`` in place (weights in an external data file are not read or moved)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    if model.opset_import and min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 14:
        log.info("%s: opset < 14 has no Reshape allowzero; left as is", path.name)
        return
    changed, kept = set_reshape_allowzero(model)
    onnx.save_model(model, str(path))
    log.info("%s: allowzero=1 on %d Reshape nodes, %d keep placeholder zeros", path.name, changed, kept)
