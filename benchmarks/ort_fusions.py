"""ONNX Runtime's transformer graph optimizer on our graphs: each fusion option validated against PyTorch and timed.

For each component of an engine directory and each option set below, ``onnxruntime.transformers.optimizer`` rewrites
the fp32 graph (model_type "unet" for the UNet, "clip" for the text encoder, "vae" for the VAE decoder); the result
must load on the provider, match the PyTorch module of the model folder at shapes unlike the export's (relative L2 at
most 1e-4, the export's own tolerance) and is then timed against the unfused graph, alternating in one process
(median of --runs calls each). A fusion is worth keeping only where both hold.

    python -m benchmarks.ort_fusions MODEL_FOLDER ENGINE_DIR --json out.json [--frames 4 --size 128]

Fusions whose operators ONNX Runtime implements for CUDA only (GroupNorm, SkipGroupNorm, BiasSplitGelu, BiasAdd,
NhwcConv) are tried on the CPU provider too: the session then fails to load, which is recorded as such.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ort-fusions")
MODEL_TYPES = {"unet": "unet", "text_encoder": "clip", "vae_decoder": "vae"}
CUDA_ONLY = (
    "enable_group_norm",
    "enable_skip_group_norm",
    "enable_bias_splitgelu",
    "enable_bias_add",
    "enable_nhwc_conv",
)
# name -> FusionOptions attributes set (everything else off, so each row measures one idea)
OPTION_SETS = {
    "none (optimizer, no fusion)": {},
    "attention": {"enable_attention": True},
    "attention, MultiHeadAttention": {"enable_attention": True, "use_multi_head_attention": True},
    "attention, packed QKV/KV": {"enable_attention": True, "enable_packed_qkv": True, "enable_packed_kv": True},
    "gelu + bias-gelu": {"enable_gelu": True, "enable_bias_gelu": True},
    "layer norm + skip layer norm": {"enable_layer_norm": True, "enable_skip_layer_norm": True,
                                     "enable_bias_skip_layer_norm": True},
    "group norm (CUDA op)": {"enable_group_norm": True},
    "bias-add + bias-split-gelu (CUDA ops)": {"enable_bias_add": True, "enable_bias_splitgelu": True},
    "all CPU-capable": {"enable_attention": True, "enable_gelu": True, "enable_bias_gelu": True,
                        "enable_layer_norm": True, "enable_skip_layer_norm": True, "enable_bias_skip_layer_norm": True},
}


# the optimizer call, its options and its NumPy >= 2.4 workaround are the library's (what the export uses)
from t2vrt.export.ort_fusion import fusion_options, optimize, patch_numpy2  # noqa: E402,F401

NOISE = 1.10  # a speed-up under this is not told apart from the machine's noise (the "none" rows, same work, vary so)


def keep(row: dict) -> bool:
    """Something was fused, it matches PyTorch at the export's tolerance, and it is faster beyond the noise."""
    return bool(row.get("fused_ops") and row["rel_l2_vs_torch"] <= 1e-4 and row["speedup"] > NOISE)


def timed(session, feed, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        out.append(time.perf_counter() - t0)
    return out


def measure(name: str, folder: str, root: Path, sizes: dict, runs: int, options: dict = OPTION_SETS) -> list[dict]:
    import onnxruntime as ort

    from t2vrt.engines.onnxruntime import session_options
    from t2vrt.export.load import load_model
    from t2vrt.export.modules import module_for
    from t2vrt.export.onnx import sample_inputs
    from t2vrt.export.validate import reference_outputs, rel_l2
    from t2vrt.manifest import load_manifest

    manifest = load_manifest(root)
    spec, src = manifest.spec(name), manifest.onnx_path(root, name, "fp32")
    loaded = load_model(folder)
    module = module_for(name, loaded)
    u = manifest.model.unet_downsample  # validation shape: unlike the timed one, non-square
    check = {"b": 1, "f": sizes["f"] + 1, "h": sizes["h"], "w": max(u, sizes["w"] - u), "n": 1}
    refs = reference_outputs(module, spec, [check], vocab=256)
    del module
    feed = {t.name: a.numpy() for t, a in zip(spec.inputs, sample_inputs(spec, sizes, seed=7, vocab=256))}
    base = ort.InferenceSession(str(src), sess_options=session_options(), providers=["CPUExecutionProvider"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, on in options.items():
            row = {"component": name, "option": label, "model_type": MODEL_TYPES[name]}
            dst = Path(tmp) / f"{name}.onnx"
            try:
                row["fused_ops"] = optimize(src, dst, MODEL_TYPES[name], on)
                s = ort.InferenceSession(str(dst), sess_options=session_options(), providers=["CPUExecutionProvider"])
            except Exception as e:  # a fusion that cannot be made or loaded here is a result too
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                rows.append(row)
                log.info("%s", row)
                continue
            _, inputs, ref = refs[0]
            got = s.run(None, {t.name: a for t, a in zip(spec.inputs, inputs)})
            row["rel_l2_vs_torch"] = max(rel_l2(g, r) for g, r in zip(got, ref))
            timed(s, feed, 1), timed(base, feed, 1)  # warm-up both
            fused, unfused = [], []
            for _ in range(runs):  # alternate, so the box's load falls on both
                unfused += timed(base, feed, 1)
                fused += timed(s, feed, 1)
            row.update(unfused_s=statistics.median(unfused), fused_s=statistics.median(fused))
            row["speedup"] = row["unfused_s"] / row["fused_s"]
            row["keep"] = keep(row)
            rows.append(row)
            log.info("%s", row)
            del s
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the diffusers model folder ENGINE_DIR was exported from (PyTorch reference)")
    p.add_argument("engines", help="engine directory with fp32 graphs")
    p.add_argument("--components", default="text_encoder,unet,vae_decoder")
    p.add_argument("--frames", type=int, default=4, help="UNet frames of the timed call (batch 2)")
    p.add_argument("--size", type=int, default=128, help="pixels; latents are size / VAE scale")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--options", default=None, metavar="NAME[;NAME...]", help="option sets to try (default: all)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from t2vrt.bench.machine import describe, machine
    from t2vrt.bench.report import write_json
    from t2vrt.manifest import load_manifest

    m = load_manifest(a.engines).model
    lat = a.size // m.vae_scale
    sizes = {"b": 2, "f": a.frames, "h": lat, "w": lat, "n": 2}
    rows = []
    for name in a.components.split(","):
        chosen = {k: OPTION_SETS[k] for k in a.options.split(";")} if a.options else OPTION_SETS
        rows += measure(name, a.model, Path(a.engines), sizes, a.runs, chosen)
    data = {"machine": machine(), "sizes": sizes, "runs": a.runs, "rows": rows}
    if a.json:
        write_json(json.loads(json.dumps(data, default=str)), a.json)
    print(describe(data["machine"]))
    print("| component | option | fused ops | rel. L2 vs torch | unfused ms | fused ms | speed-up | keep |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['component']} | {r['option']} | {r.get('fused_ops', '-')} | fails: {r['error']} | | | | no |")
            continue
        print(
            f"| {r['component']} | {r['option']} | {r['fused_ops'] or '-'} | {r['rel_l2_vs_torch']:.1e} | "
            f"{1e3 * r['unfused_s']:.1f} | {1e3 * r['fused_s']:.1f} | {r['speedup']:.2f}x | "
            f"{'yes' if r['keep'] else 'no'} |"
        )
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
