"""Trace one component to ONNX from its ComponentSpec, then clean the graph.

Cleaning: Reshape nodes whose shape can never hold a placeholder 0 get allowzero=1.

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
import warnings
from pathlib import Path

from t2vrt.components import ComponentSpec

log = logging.getLogger(__name__)
OPSET = 17


def sample_inputs(spec: ComponentSpec, sizes: dict[str, int], seed: int = 0, vocab: int = 1000):
    """Random torch inputs for a component at the given symbol sizes (token ids below ``vocab``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for t in spec.inputs:
        shape = t.shape(sizes)
        if t.dtype == "int64":
            out.append(torch.randint(0, vocab, shape, generator=g))
        elif t.name == "timestep":
            out.append(torch.tensor([float(sizes.get("t", 981))]))
        else:
            out.append(torch.randn(shape, generator=g, dtype=getattr(torch, t.dtype)))
    return tuple(out)


def export_onnx(module, spec: ComponentSpec, sizes: dict[str, int], path: Path, opset: int = OPSET,
                vocab: int = 1000) -> Path:
    """Trace ``module`` at ``sizes`` with every symbolic axis dynamic; weights over 1 GiB go to one ``.data`` file."""
    import torch

    from t2vrt.export.external_data import gather_external_data

    path.parent.mkdir(parents=True, exist_ok=True)
    args = sample_inputs(spec, sizes, vocab=vocab)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for shape asserts in diffusers blocks
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_axes=spec.dynamic_axes(),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    gather_external_data(path)
    clean_graph(path)
    return path


# -- graph cleaning ----------------------------------------------------------------------------------------------
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

    from t2vrt.export.transposes import split_gather_transposes

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    split = split_gather_transposes(model)
    if split:
        log.info("%s: %d element-gathering Transposes split in two that move blocks", path.name, split)
    if model.opset_import and min(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 14:
        log.info("%s: opset < 14 has no Reshape allowzero; left as is", path.name)
        if split:
            onnx.save_model(model, str(path))
        return
    changed, kept = set_reshape_allowzero(model)
    onnx.save_model(model, str(path))
    log.info("%s: allowzero=1 on %d Reshape nodes, %d keep placeholder zeros", path.name, changed, kept)
