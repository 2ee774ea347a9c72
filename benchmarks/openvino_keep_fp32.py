"""Which parts of the UNet, kept in fp32, bring OpenVINO's bf16 noise prediction closer to fp32.

    python benchmarks/openvino_keep_fp32.py DIR      # DIR: an engine directory of the small preset (every layer active,
                                                     # benchmarks/openvino_precision.py --make-model)

One UNet step (batch 2, 4 frames, 16x16 latents, timestep 501, random text embeddings, seed 0) as the backend compiles
it in bf16 (attention fused, timestep embedding in an fp32 head), with chosen nodes marked to stay in fp32; prints the
relative L2 from OpenVINO fp32 and the warm step time. Compiled with OpenVINO's default Snippets, as the backend did
before it turned them off for bf16 (benchmarks/RESULTS.md, "Where the gap was"). OpenVINO's CPU plugin keeps a node
in its original precision when the node carries the typed runtime attribute ``DisablePrecisionConversion``; Python
cannot create that type, but the IR reader restores it from
``<rt_info><attribute name="DisablePrecisionConversion" version="0" value="dynamic:f16"/>`` (the CPU plugin reads it
for every inference precision), so the body is saved as IR, marked, and read back.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from t2vrt.engines.openvino_split import CUT_INPUT, fuse_attention, split_fp32_head
from t2vrt.manifest import load_manifest

MARK = '\n<rt_info><attribute name="DisablePrecisionConversion" version="0" value="dynamic:f16" /></rt_info>'
EDGES = ("/conv_in/", "/conv_out/", "/conv_norm_out/", "/conv_act/")
VARIANTS = {
    "none (the backend as committed)": None,
    "group and layer norms (MVN)": lambda op: op.get_type_name() == "MVN",
    "elementwise (Add, Multiply, Sigmoid, Divide, Subtract, Erf, Sqrt)":
        lambda op: op.get_type_name() in ("Add", "Multiply", "Sigmoid", "Divide", "Subtract", "Erf", "Sqrt"),
    "MatMul (bias-free ones keep the mark)": lambda op: op.get_type_name() == "MatMul",
    "conv_in, conv_out and the final norm": lambda op: any(s in op.get_friendly_name() for s in EDGES),
    "temporal convolutions' non-conv ops":
        lambda op: "temp_convs" in op.get_friendly_name() and op.get_type_name() != "Convolution",
    "every node but the convolutions": lambda op: op.get_type_name() != "Convolution",
    "every node": lambda op: True,
}


def marked(core, model, keep, workdir: str):
    """``model`` saved as IR with DisablePrecisionConversion on the layers ``keep`` picks, read back; (model, count)."""
    import openvino as ov

    names = {op.get_friendly_name() for op in model.get_ordered_ops() if keep(op)}
    xml = Path(tempfile.mkdtemp(dir=workdir)) / "body.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)

    def add(mo: re.Match) -> str:
        return mo.group(0) + MARK if mo.group(1) in names else mo.group(0)

    xml.write_text(re.sub(r'<layer id="\d+" name="([^"]*)"[^>]*>', add, xml.read_text()))
    return core.read_model(str(xml)), len(names)


def step(core, onnx: str, feed: dict, keep, workdir: str) -> tuple[np.ndarray, float, int]:
    model = core.read_model(onnx)
    model.reshape({k: list(v.shape) for k, v in feed.items()})
    fuse_attention(model)
    head, body = split_fp32_head(model)
    count = 0
    if keep is not None:
        body, count = marked(core, body, keep, workdir)
    cut = core.compile_model(head, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer(
        {"timestep": feed["timestep"]})[0]
    request = core.compile_model(body, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"}).create_infer_request()
    inputs = {**{k: v for k, v in feed.items() if k != "timestep"}, CUT_INPUT: cut}
    out = np.array(request.infer(inputs)[0], copy=True)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        request.infer(inputs)
        times.append(time.perf_counter() - t0)
    return out, min(times), count


def main() -> None:
    import openvino as ov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    args = ap.parse_args()
    m = load_manifest(args.dir)
    onnx = str(m.onnx_path(args.dir, "unet", "fp32"))
    core = ov.Core()
    model = core.read_model(onnx)
    width = model.input("encoder_hidden_states").get_partial_shape()[2].get_length()
    rng = np.random.default_rng(0)
    feed = {"sample": rng.standard_normal((2, 4, 4, 16, 16)).astype(np.float32),
            "encoder_hidden_states": rng.standard_normal((2, 77, width)).astype(np.float32),
            "timestep": np.array([501.0], np.float32)}
    model.reshape({k: list(v.shape) for k, v in feed.items()})
    ref = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer(feed)[0]
    print("| kept in fp32 | nodes marked | rel L2 from fp32 | warm step |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for label, keep in VARIANTS.items():
            try:
                out, seconds, count = step(core, onnx, feed, keep, workdir)
            except RuntimeError as e:  # the CPU plugin refuses some markings (every convolution: "not initialized")
                print(f"| {label} | - | compile failed: {str(e).splitlines()[-1][:80]} | - |")
                continue
            err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
            print(f"| {label} | {count} | {err:.4f} | {seconds:.3f} s |", flush=True)


if __name__ == "__main__":
    main()
