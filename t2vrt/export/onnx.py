"""Trace one component to ONNX from its ComponentSpec."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from t2vrt.components import ComponentSpec
from t2vrt.export.graph import clean_graph

log = logging.getLogger(__name__)
OPSET = 17
EXTERNAL_THRESHOLD = 1 << 30  # gather weights into one .data file above 1 GiB (protobuf's limit is 2 GiB)


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


def export_onnx(module, spec: ComponentSpec, sizes: dict[str, int], path: Path, opset: int = OPSET, vocab: int = 1000) -> Path:
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

