"""Split Transposes that ONNX Runtime's CPU kernel moves element by element into two it moves in blocks.

Diffusers' temporal transformer turns ``[b, c, f, h, w]`` into ``[b, h, w, f, c]`` with one ``permute(0, 3, 4, 2, 1)``:
the output's innermost axis (channels) is the input's second, so ONNX Runtime's Transpose gathers every element at a
stride of ``f*h*w`` (11 ms for the small preset's 4 MB activation at 256x256, 0.4 GB/s; 5 % of its UNet step). The
same permutation as two steps: move that axis to the end first (one axis moved: a kernel that copies rows), then
permute the rest with the innermost axis in place (a copy of contiguous blocks), measured 6.9 -> 1.2 ms. A Reshape
that merges the axes moving together sits between them, so ONNX Runtime's transpose optimizer cannot merge the two
back into one. The data are moved, never computed on: outputs are bitwise the same.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _runs(order: list[int]) -> list[list[int]]:
    """``order`` split into runs of consecutive, increasing values ([0, 2, 3, 1] -> [[0], [2, 3], [1]])."""
    runs: list[list[int]] = []
    for v in order:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return runs


def is_gather(perm: list[int]) -> bool:
    """True for a permutation whose innermost output axis is not the input's and that, with the axes that move
    together merged, is more than a leading block and two swapped blocks ((0, 3, 4, 2, 1) is; (0, 3, 4, 1, 2) and
    (0, 2, 3, 1) are not: ONNX Runtime copies those in rows)."""
    if len(perm) < 4 or perm[-1] == len(perm) - 1:
        return False
    runs = _runs(perm)
    return len(runs) > 3 or (len(runs) == 3 and runs[0][0] != 0)


def plan(perm: list[int]) -> tuple[list[int], list[list[int]], list[int]] | None:
    """(first perm, the merged groups of the middle tensor, their order) for ``perm``; None where the second step
    would need more than one merged group (the case this pass does not take)."""
    a = perm[-1]
    first = [i for i in range(len(perm)) if i != a] + [a]
    position = {axis: i for i, axis in enumerate(first)}
    target = [position[axis] for axis in perm[:-1]]  # positions in the middle tensor, innermost kept last
    groups = sorted(_runs(target), key=lambda g: g[0])
    if sum(len(g) > 1 for g in groups) > 1:
        return None
    order = [groups.index(g) for g in _runs(target)]
    return first, groups, order


def split_gather_transposes(model) -> int:
    """Rewrite every Transpose of ``model`` that ``is_gather`` into Transpose -> Reshape -> Transpose -> Reshape;
    returns how many were rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph, done, new_nodes = model.graph, 0, []
    for node in graph.node:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        steps = plan(perm) if node.op_type == "Transpose" and perm and is_gather(perm) else None
        if steps is None:
            new_nodes.append(node)
            continue
        first, groups, order = steps
        x, y = node.input[0], node.output[0]
        p = f"{node.name or y}/split"
        const = lambda name, v: new_nodes.append(helper.make_node(  # noqa: E731
            "Constant", [], [name], value=numpy_helper.from_array(np.array(v, dtype=np.int64), name)))
        new_nodes.append(helper.make_node("Shape", [x], [f"{p}/shape"], name=f"{p}/shape"))
        # the middle shape: each single group's size, -1 for the merged one, then the moved (innermost) axis
        axes = [first[g[0]] if len(g) == 1 else None for g in groups] + [perm[-1]]
        for i, axis in enumerate(axes):
            const(f"{p}/i{i}", [-1 if axis is None else axis])
            if axis is not None:
                new_nodes.append(helper.make_node("Gather", [f"{p}/shape", f"{p}/i{i}"], [f"{p}/d{i}"], axis=0))
        pieces = [f"{p}/i{i}" if axis is None else f"{p}/d{i}" for i, axis in enumerate(axes)]
        new_nodes.append(helper.make_node("Concat", pieces, [f"{p}/middle"], axis=0))
        const(f"{p}/perm", perm)
        new_nodes.append(helper.make_node("Gather", [f"{p}/shape", f"{p}/perm"], [f"{p}/final"], axis=0))
        new_nodes += [
            helper.make_node("Transpose", [x], [f"{p}/t1"], perm=first, name=f"{p}/t1"),
            helper.make_node("Reshape", [f"{p}/t1", f"{p}/middle"], [f"{p}/r1"], name=f"{p}/r1"),
            helper.make_node("Transpose", [f"{p}/r1"], [f"{p}/t2"], perm=order + [len(order)], name=f"{p}/t2"),
            helper.make_node("Reshape", [f"{p}/t2", f"{p}/final"], [y], name=f"{p}/r2"),
        ]
        done += 1
    if done:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return done
