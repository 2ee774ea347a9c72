"""Where bf16 goes on the openvino backend: each component in bf16 against fp32, then whole videos per placement.

    python -m benchmarks.openvino_precision --make-model MODEL_DIR      # the small preset, every layer active
    t2vrt export MODEL_DIR -o DIR --components text_encoder unet vae_decoder vae_encoder
    python -m benchmarks.openvino_precision DIR [--frames 16] [--size 256] [--steps 10] [--runs 3]

DIR is an engine directory of the ``small`` preset with the VAE encoder. Prints the machine line, then, per component
at the benchmark shapes: the relative L2 of OpenVINO bf16 and fp32 outputs against ONNX Runtime fp32, warm medians of
ONNX Runtime (its CPU-fused graph), OpenVINO fp32 and bf16, the compile time of a new shape and the resident memory
each compiled model adds; then the PSNR of whole videos (same seed) against ONNX Runtime fp32 for each bf16 placement.
Numbers only mean something beside the machine line.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np

from t2vrt.bench.machine import describe, machine
from t2vrt.bench.quality import psnr
from t2vrt.engines import openvino as ovb
from t2vrt.engines.onnxruntime_backend import open_cpu_runner
from t2vrt.host import rss_bytes
from t2vrt.manifest import load_manifest

PROMPTS = ["a red panda eating bamboo in the snow", ""]
PLACEMENTS = {"unet": {"unet"}, "unet+vae": {"unet", "vae_decoder"},
              "all (text encoder too)": {"text_encoder", "unet", "vae_decoder"}}


def rel_l2(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def feeds(root: Path, m, args) -> dict:
    from t2vrt.runtime.tokenizer import ClipTokenizer

    rng = np.random.default_rng(0)
    ids = ClipTokenizer(root, m.tokenizer)(PROMPTS)
    ehs = open_cpu_runner(root, m, "text_encoder", "fp32").infer({"input_ids": ids})["last_hidden_state"]
    lat = args.size // m.model.vae_scale
    return {
        "text_encoder": {"input_ids": ids},
        "unet": {"sample": rng.standard_normal((2, 4, args.frames, lat, lat)).astype(np.float32),
                 "timestep": np.array([501.0], np.float32), "encoder_hidden_states": ehs},
        "vae_decoder": {"latent": rng.standard_normal((8, 4, lat, lat)).astype(np.float32)},
        "vae_encoder": {"image": rng.uniform(-1, 1, (8, 3, args.size, args.size)).astype(np.float32)},
    }


def component_rows(root: Path, m, args) -> None:
    print("| component | OV fp32 rel L2 | OV bf16 rel L2 | frames PSNR bf16 | ORT fp32 | OV fp32 | OV bf16 | "
          "compile fp32 / bf16 | memory per compiled model fp32 / bf16 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, feed in feeds(root, m, args).items():
        if name not in m.components:
            continue
        ort = open_cpu_runner(root, m, name, "fp32")
        ref = ort.infer(feed)
        t_ort = median_time(partial(ort.infer, feed), args.runs)
        del ort
        cells, extra = {}, {}
        for prec in ("fp32", "bf16"):
            ovb.BF16_COMPONENTS = frozenset({name})
            r = ovb.OpenVinoRunner(m.onnx_path(root, name, "fp32"), m.spec(name), prec, cache=False)
            before = rss_bytes()
            out = r.infer(feed)
            extra[prec] = (next(iter(r.compile_seconds.values())), (rss_bytes() - before) / 2**20)
            worst = max(rel_l2(out[k], ref[k]) for k in ref)
            cells[prec] = (worst, median_time(partial(r.infer, feed), args.runs), out)
            r.close()
        frames = "-"
        if name == "vae_decoder":
            frames = f"{psnr((cells['bf16'][2]['image'] + 1) / 2, (ref['image'] + 1) / 2):.1f} dB"
        print(f"| {name} | {cells['fp32'][0]:.1e} | {cells['bf16'][0]:.1e} | {frames} | {t_ort:.3f} s | "
              f"{cells['fp32'][1]:.3f} s | {cells['bf16'][1]:.3f} s | "
              f"{extra['fp32'][0]:.1f} / {extra['bf16'][0]:.1f} s | "
              f"{extra['fp32'][1]:.0f} / {extra['bf16'][1]:.0f} MiB |")


def video(root: Path, args, backend: str, precision: str | None):
    from t2vrt.runtime.pipeline import Pipeline

    pipe = Pipeline.load(root, backend=backend, precision=precision)
    t0 = time.perf_counter()
    out = pipe(PROMPTS[0], num_frames=args.frames, height=args.size, width=args.size,
               num_inference_steps=args.steps, guidance_scale=9.0, seed=0)
    return out.images, time.perf_counter() - t0


def placement_rows(root: Path, args) -> None:
    ref, t_ref = video(root, args, "onnxruntime", None)
    print(f"\n| bf16 placement | frames PSNR vs ONNX Runtime fp32 | min per-frame PSNR | NaN | "
          f"time ({args.steps} steps) |")
    print("|---|---|---|---|---|")
    print(f"| none: ONNX Runtime fp32 | - | - | 0 | {t_ref:.1f} s |")
    kept, rows = ovb.BF16_CONFIG, [(label, placed, ovb.BF16_CONFIG) for label, placed in PLACEMENTS.items()]
    rows.append(("unet+vae, Snippets on (OpenVINO's default)", PLACEMENTS["unet+vae"], {}))
    for label, placed, config in rows:
        ovb.BF16_COMPONENTS, ovb.BF16_CONFIG = frozenset(placed), config  # the cache folder follows the setting
        images, t = video(root, args, "openvino", "bf16")
        per_frame = min(psnr(images[0, i], ref[0, i]) for i in range(images.shape[1]))
        nan = int(np.isnan(images).sum())
        print(f"| {label} | {psnr(images, ref):.1f} dB | {per_frame:.1f} dB | {nan} | {t:.1f} s |")
    ovb.BF16_CONFIG = kept


def make_model(out: Path) -> None:
    """The small preset with every constant-initialised tensor given random values (a zero convolution would make
    its layer an identity that no comparison sees): weights uniform within torch's default-init bound, norm scales
    1 + 0.1 N(0, 1), biases 0.1 N(0, 1)."""
    import math

    import torch
    from safetensors.torch import load_file, save_file

    from t2vrt.export.random_model import build_model

    build_model(out, "small", seed=0)
    g = torch.Generator().manual_seed(1)
    for f in sorted(out.glob("*/*.safetensors")):
        sd = load_file(f)
        for k, t in sd.items():
            if t.is_floating_point() and t.numel() > 1 and bool((t == t.flatten()[0]).all()):
                bound = 1 / math.sqrt(t[0].numel()) if t.dim() >= 2 else 0.0
                sd[k] = ((torch.rand(t.shape, generator=g) * 2 - 1) * bound if t.dim() >= 2
                         else t + 0.1 * torch.randn(t.shape, generator=g))
        save_file(sd, f, metadata={"format": "pt"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, nargs="?")
    ap.add_argument("--make-model", type=Path, default=None, help="write the measured model folder and stop")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip", choices=["components", "videos"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.make_model:
        return make_model(args.make_model)
    m = load_manifest(args.dir)
    print(describe(machine()))
    if args.skip != "components":
        component_rows(args.dir, m, args)
    if args.skip != "videos":
        placement_rows(args.dir, args)


if __name__ == "__main__":
    main()
