"""Graph edits for bf16 on OpenVINO: the UNet's timestep embedding kept in fp32, attention as one operator.

diffusers computes ``time_proj`` (sin and cos of ``timestep * frequencies``) in fp32 even in a bf16 pipeline. In
bf16 an argument near 500 is rounded to a multiple of 2, so the sine of every high frequency is noise: with the
whole UNet in bf16, OpenVINO's noise prediction was 3.5x further from fp32 than torch's bf16 one (benchmarks/
RESULTS.md, "OpenVINO bf16"). OpenVINO's CPU plugin keeps a node in fp32 only by a typed runtime attribute
(DisablePrecisionConversion) that Python cannot create (the IR reader can: benchmarks/openvino_keep_fp32.py), so
the graph is cut instead: a *head* (the inputs up to the tensor the first MatMul after ``timestep`` reads) compiles
in fp32, the *body* (everything else, with that tensor as a new input) in bf16.

Attention exported as ``softmax((q * s) @ (kT * s)) @ v`` becomes OpenVINO's ScaledDotProductAttention, whose CPU
kernel keeps the scores and the softmax in fp32 under bf16 (noise prediction 0.104 from fp32 instead of 0.119).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CUT_INPUT = "t2vrt_time_embedding"  # the body's new input: the head's output


def _cut_output(model: Any, start: str) -> Any | None:
    """The output the first MatMul downstream of parameter ``start`` reads from that path (None without one)."""
    params = [p for p in model.get_parameters() if p.output(0).get_any_name() == start]
    if not params:
        return None
    seen, frontier = {id(params[0])}, [params[0]]
    while frontier:
        node = frontier.pop(0)
        for out in node.outputs():
            for target in out.get_target_inputs():
                child = target.get_node()
                if child.get_type_name() == "MatMul":
                    return out
                if child.get_friendly_name() not in seen:
                    seen.add(child.get_friendly_name())
                    frontier.append(child)
    return None


def split_fp32_head(model: Any, start: str = "timestep") -> tuple[Any, Any] | None:
    """(head, body) ov.Models from a statically shaped ``model``, or None when ``start`` leads to no MatMul.
    ``head`` takes the inputs it needs and returns the cut tensor; ``body`` takes the other inputs and ``CUT_INPUT``."""
    import openvino as ov
    import openvino.opset13 as ops

    head_model, body_model = model.clone(), model.clone()
    cut = _cut_output(head_model, start)
    if cut is None:
        return None
    head_params = [p for p in head_model.get_parameters()]
    head = ov.Model([cut], head_params, "fp32_head")
    cut = _cut_output(body_model, start)
    param = ops.parameter(cut.get_partial_shape(), cut.get_element_type(), name=CUT_INPUT)
    param.output(0).set_names({CUT_INPUT})
    for target in list(cut.get_target_inputs()):
        target.replace_source_output(param.output(0))
    kept = [p for p in body_model.get_parameters() if p.output(0).get_any_name() != start]
    body = ov.Model(body_model.get_results(), kept + [param], "bf16_body")
    return head, body


def _attention_parts(softmax: Any) -> tuple | None:
    """(q, kT, v, s1, s2, output MatMul) of ``softmax((q * s1) @ (kT * s2)) @ v``, else None."""
    scores = softmax.input_value(0).get_node()
    if scores.get_type_name() != "MatMul":
        return None
    a, b = scores.input_value(0).get_node(), scores.input_value(1).get_node()
    if a.get_type_name() != "Multiply" or b.get_type_name() != "Multiply":
        return None
    if scores.get_attributes().get("transpose_a") or scores.get_attributes().get("transpose_b"):
        return None
    targets = list(softmax.output(0).get_target_inputs())
    if len(targets) != 1 or targets[0].get_node().get_type_name() != "MatMul" or targets[0].get_index() != 0:
        return None
    out = targets[0].get_node()
    if out.get_attributes().get("transpose_a") or out.get_attributes().get("transpose_b"):
        return None
    return a.input_value(0), b.input_value(0), out.input_value(1), a.input_value(1), b.input_value(1), out


def fuse_attention(model: Any) -> int:
    """Replace each ``softmax((q * s1) @ (kT * s2)) @ v`` of ``model`` by ScaledDotProductAttention(q, k, v,
    scale=s1 * s2); returns how many were replaced (exact in fp32: 4.6e-6 relative L2 on the small UNet)."""
    import openvino.opset13 as ops

    count = 0
    for softmax in [op for op in model.get_ordered_ops() if op.get_type_name() == "Softmax"]:
        parts = _attention_parts(softmax)
        if parts is None:
            continue
        q, kt, v, s1, s2, out = parts
        rank = len(q.get_partial_shape())
        k = ops.transpose(kt, ops.constant(np.array([*range(rank - 2), rank - 1, rank - 2], np.int64)))
        scale = ops.reshape(ops.multiply(s1, s2), ops.constant(np.array([], np.int64)), False)
        attention = ops.scaled_dot_product_attention(q, k, v, ops.constant(np.array(0.0, np.float32)), scale,
                                                     causal=False)
        for target in list(out.output(0).get_target_inputs()):
            target.replace_source_output(attention.output(0))
        count += 1
    if count:
        model.validate_nodes_and_infer_types()
    return count
