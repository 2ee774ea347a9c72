"""fp16 graphs for strongly typed TensorRT: the precision of every tensor is written in the graph.

TensorRT 11 and TensorRT-RTX have no FP16 builder flag; a strongly typed network computes each layer in the
type of its tensors. This pass turns the fp32 graph's float tensors into fp16, except:
- inputs and outputs stay float32 (a Cast at the boundary), so the manifest's I/O specs and the runtime are
  the same for both precisions;
- shape arithmetic (nodes computing only from Shape/Size values and constants) and inputs that ONNX
  requires to be float32 (Resize's roi and scales);
- the ops and paths in KEEP_FP32 below, chosen by measurement (see the comment there).
Weights are converted one at a time and written like the fp32 graph's (one ``.data`` file above 1 GiB): each
is appended to the file as it is converted, so the conversion holds the weightless graph plus one tensor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2vrt.export.external_data import EXTERNAL_THRESHOLD

log = logging.getLogger(__name__)

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
FP16_MAX = 65504.0


@dataclass(frozen=True)
class KeepFp32:
    """What stays fp32: whole op types, and the path from a graph input up to the first op in ``until``."""

    ops: frozenset[str] = frozenset()
    paths_from: tuple[str, ...] = ()
    until: frozenset[str] = frozenset({"Gemm", "MatMul", "Conv"})


# Measured on the tiny and small presets against fp32 torch, ONNX Runtime CPU (relative L2 of each output,
# numbers in the commit message that set this table):
# - the sinusoidal timestep embedding must stay fp32: timestep * freq in fp16 is off by up to 0.25 rad at
#   t ~ 1000 (fp16's spacing there is 0.5), which alone moves the UNet output by several percent;
# - GroupNorm (exported as InstanceNormalization) and LayerNorm statistics stay fp32: cheap, and they are the
#   reductions over the most elements (a 64x64x16 frame stack per group on the real model);
# - Softmax: fp16 changed the measured error by less than the noise, so it runs in fp16 (TensorRT's fused
#   attention accumulates in fp32 anyway).
KEEP_FP32 = {
    "unet": KeepFp32(frozenset({"InstanceNormalization", "LayerNormalization", "GroupNormalization"}), ("timestep",)),
    "text_encoder": KeepFp32(frozenset({"LayerNormalization"})),
    "vae_decoder": KeepFp32(frozenset({"InstanceNormalization", "GroupNormalization"})),
    "vae_encoder": KeepFp32(frozenset({"InstanceNormalization", "GroupNormalization"})),
}
_FP32_INPUT_SLOTS = {"Resize": (1, 2)}  # roi, scales: float32 by the ONNX spec whatever the data type
_SHAPE_SOURCES = {"Shape", "Size"}


def _typed(model) -> dict[str, int]:
    """Element type of every tensor, by ONNX shape inference over the graph without its weights."""
    import onnx
    from onnx import helper

    g = model.graph
    weight_inputs = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer]
    bare = helper.make_graph(g.node, g.name, list(g.input) + weight_inputs, g.output)
    light = helper.make_model(bare, opset_imports=model.opset_import, ir_version=model.ir_version)
    inferred = onnx.shape_inference.infer_shapes(light, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    for node in g.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def _constants(graph) -> set[str]:
    return {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}


def _fp32_nodes(graph, keep: KeepFp32) -> set[int]:
    """Indices of the nodes that compute in fp32: kept op types, kept paths, shape arithmetic."""
    consts, shape_vals, path_vals, out = _constants(graph), set(), set(keep.paths_from), set()
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        live = [x for x in node.input if x and x not in consts]
        if node.op_type in _SHAPE_SOURCES or (live and all(x in shape_vals for x in live)):
            shape_vals.update(node.output)
            out.add(i)
        elif node.op_type not in keep.until and any(x in path_vals for x in live):
            path_vals.update(node.output)
            out.add(i)
        elif node.op_type in keep.ops:
            out.add(i)
    return out


def _cast(src: str, to: int):
    from onnx import helper

    dst = f"{src}__to_{'fp16' if to == FLOAT16 else 'fp32'}"
    return dst, helper.make_node("Cast", [src], [dst], name=dst, to=to)


def _set_node_fp16(node) -> None:
    """Attributes that name a float type or hold a float value follow the node into fp16."""
    from onnx import numpy_helper

    for a in node.attribute:
        if node.op_type == "Cast" and a.name == "to" and a.i == FLOAT:
            a.i = FLOAT16
        elif node.op_type in ("Constant", "ConstantOfShape") and a.name == "value" and a.t.data_type == FLOAT:
            a.t.CopyFrom(numpy_helper.from_array(_to_fp16(numpy_helper.to_array(a.t), a.t.name), a.t.name))


def _to_fp16(a: np.ndarray, name: str) -> np.ndarray:
    big = np.abs(a) > FP16_MAX
    if big.any():
        log.warning("%s: %d values beyond fp16's range clipped to +-%g", name, int(big.sum()), FP16_MAX)
        a = np.clip(a, -FP16_MAX, FP16_MAX)
    return a.astype(np.float16)


def _need(node, k: int, fp16: bool) -> int | None:
    """The float type input ``k`` of ``node`` must have (None: any)."""
    if node.op_type in _SHAPE_SOURCES:
        return None
    return FLOAT if not fp16 or k in _FP32_INPUT_SLOTS.get(node.op_type, ()) else FLOAT16


def _rewrite(graph, types: dict[str, int], fp32_nodes: set[int]) -> set[str]:
    """Retype the graph's nodes, inserting Casts where a tensor's producer and consumer disagree.

    Returns the constants (initializers or Constant outputs) stored in fp16: those an fp16 node reads
    (an fp32 node reading one too gets a Cast)."""
    consts = _constants(graph)
    is_float = lambda x: types.get(x) == FLOAT  # noqa: E731
    produced = {i.name: FLOAT for i in graph.input}  # what each float tensor is after the rewrite
    want: dict[str, set[int]] = {}  # what each constant's consumers need
    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        fp16 = i not in fp32_nodes
        for k, x in enumerate(node.input):
            if x and is_float(x):
                want.setdefault(x, set()).add(_need(node, k, fp16))
        for x in node.output:
            if is_float(x):
                produced[x] = FLOAT16 if fp16 else FLOAT
    const16 = {c for c in consts if FLOAT16 in want.get(c, ()) and is_float(c)}
    for c in consts:
        if is_float(c):
            produced[c] = FLOAT16 if c in const16 else FLOAT
    _insert_casts(graph, types, fp32_nodes, produced, const16)
    return const16


def _insert_casts(graph, types, fp32_nodes, produced, const16) -> None:
    nodes, made = [], {}
    for i, node in enumerate(graph.node):
        fp16 = i not in fp32_nodes
        if node.op_type == "Constant":
            if node.output[0] in const16:
                _set_node_fp16(node)
            nodes.append(node)
            continue
        if fp16:
            _set_node_fp16(node)
        for k, x in enumerate(node.input):
            if not x or types.get(x) != FLOAT:
                continue
            need = _need(node, k, fp16)
            if need is not None and produced[x] != need:
                if (x, need) not in made:
                    made[(x, need)], cast = _cast(x, need)
                    nodes.append(cast)
                node.input[k] = made[(x, need)]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _outputs_fp32(graph, produced)


def _outputs_fp32(graph, produced) -> None:
    """A graph output computed in fp16 is renamed and cast back to float32 under its own name."""
    from onnx import helper

    for out in graph.output:
        if produced.get(out.name) != FLOAT16:
            continue
        inner = out.name + "__fp16"
        for node in graph.node:
            node.output[:] = [inner if x == out.name else x for x in node.output]
            node.input[:] = [inner if x == out.name else x for x in node.input]
        graph.node.append(helper.make_node("Cast", [inner], [out.name], name=out.name + "__to_fp32", to=FLOAT))


def _read(t, base: Path) -> np.ndarray:
    """A weight's values; external data is read from its file straight into numpy (never into the protobuf)."""
    from onnx import helper, numpy_helper
    from onnx.external_data_helper import uses_external_data

    if not uses_external_data(t):
        return numpy_helper.to_array(t)
    info = {e.key: e.value for e in t.external_data}
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
    count = int(info["length"]) // dtype.itemsize if "length" in info else -1
    a = np.fromfile(base / info["location"], dtype=dtype, count=count, offset=int(info.get("offset", 0)))
    return a.reshape(tuple(t.dims))


def _fp16_bytes(graph, const16: set[str]) -> int:
    """Bytes the converted weights will take, from their dims (nothing is read)."""
    from t2vrt.export.external_data import nbytes

    return sum((nbytes(t) or 0) // (2 if t.name in const16 else 1) for t in graph.initializer)


def _convert_weights(graph, const16: set[str], base: Path, data=None) -> None:
    """Store the fp16 initializers in fp16, one tensor at a time (the fp32 ones left are the kept ops' small
    parameters). With ``data`` (an open ``.data`` file), every weight of SIZE_THRESHOLD bytes or more is
    appended there as it is converted, so the graph never holds the weights; without it they go in the graph."""
    from onnx.external_data_helper import uses_external_data

    from t2vrt.export.external_data import SIZE_THRESHOLD, write_tensor

    for t in graph.initializer:
        external = uses_external_data(t)
        if t.name not in const16 and not external and data is None:
            continue
        a = _read(t, base)
        if t.name in const16:
            a = _to_fp16(a, t.name)
            t.data_type = FLOAT16
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        if data is not None and len(raw) >= SIZE_THRESHOLD:
            write_tensor(data, t, raw, Path(data.name).name)
            continue
        for f in ("float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(f)
        t.raw_data = raw
        t.data_location = 0  # DEFAULT: the bytes now live in the tensor
        del t.external_data[:]


def retype(model, keep: KeepFp32) -> set[str]:
    """Rewrite an fp32 ModelProto's nodes to fp16 in place (weights untouched); returns the fp16 constants."""
    from collections import Counter

    types = _typed(model)
    fp32_nodes = _fp32_nodes(model.graph, keep)
    kept = Counter(model.graph.node[i].op_type for i in fp32_nodes)
    const16 = _rewrite(model.graph, types, fp32_nodes)
    del model.graph.value_info[:]  # stale types; inference rebuilds them
    log.info("fp16: %d nodes kept fp32 (%s)", len(fp32_nodes), dict(kept))
    return const16


def export_fp16(src_onnx: Path, dst_onnx: Path, component: str) -> None:
    """Write the fp16 graph of ``component`` beside its fp32 graph; I/O stays float32.

    Weights over EXTERNAL_THRESHOLD in all are streamed to ``NAME.data`` as they are converted: the peak is the
    weightless graph plus one tensor, not the fp16 model as protobuf plus its serialized copy."""
    import onnx

    src_onnx, dst_onnx = Path(src_onnx), Path(dst_onnx)
    model = onnx.load(str(src_onnx), load_external_data=False)
    const16 = retype(model, KEEP_FP32.get(component, KeepFp32()))
    _typed(model)  # strict type inference over the result: a Cast we missed fails here, not in TensorRT
    dst_onnx.parent.mkdir(parents=True, exist_ok=True)
    weight_bytes = _fp16_bytes(model.graph, const16)
    if weight_bytes >= EXTERNAL_THRESHOLD:
        with open(dst_onnx.with_name(dst_onnx.name + ".data"), "wb") as data:
            _convert_weights(model.graph, const16, src_onnx.parent, data)
    else:
        _convert_weights(model.graph, const16, src_onnx.parent)
    dst_onnx.write_bytes(model.SerializeToString())
    log.info("fp16: wrote %s, %.1f MB of weights%s", dst_onnx.name, weight_bytes / 1e6,
             " (external)" if weight_bytes >= EXTERNAL_THRESHOLD else "")
