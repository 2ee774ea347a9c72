"""GPU memory of the real-size ModelScope architecture in fp16, component by component, in PyTorch.

    python benchmarks/gpu_memory.py --frames 16 64 --size 256 --json gpu.json

What the 7 GB GPU memory target rests on, measured where it applies: random-weight text encoder, UNet and VAE of
``t2vrt.presets.PRESETS['modelscope-1.7b']`` on one CUDA GPU in fp16, ``torch.cuda.max_memory_allocated`` per
call minus the weights. The UNet runs one guided step (batch 2) at each frame count, its feed-forward whole, sliced
as the ff-chunked export slices it (``graphs.feed_forward_chunking``), and as diffusers'
``enable_forward_chunking(chunk_size=1, dim=1)``; with fused attention (SDPA's default) and with the attention
scores materialized (the MATH backend, what an unfused ONNX graph does). The VAE decodes and encodes ``chunk``
frames per call. ``pipeline`` runs one guided step of all three in turn, with and without each of the memory savings,
and reports the device peak including the CUDA context. Times are single calls, for orientation only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time

import torch

from t2vrt.export.modules import feed_forward_chunking
from t2vrt.export.random_model import make_text_encoder, make_unet, make_vae
from t2vrt.presets import PRESETS

log = logging.getLogger("gpu_memory")
MB = 2**20
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # on a CPU only a rehearsal: memory reads 0
DTYPE = torch.float16 if DEVICE == "cuda" else torch.float32
CONTEXT = 0  # bytes of device memory the CUDA context takes (read in main)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def allocated(peak: bool = False) -> int:
    if DEVICE != "cuda":
        return 0
    return torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()


def measure(fn, weights: int, ref=None) -> dict:
    """Peak memory of one call of ``fn`` above ``weights`` bytes, in MiB, and its time after a warm-up; with ``ref``,
    the relative L2 distance of the (first) output from it."""
    out = fn()
    out = out[0] if isinstance(out, tuple) else out
    err = {} if ref is None else {"rel_to_whole": float((out.float() - ref.float()).norm() / ref.float().norm())}
    del out
    sync()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    sync()
    return {"activations_mb": round((allocated(peak=True) - weights) / MB), "ms": round(1e3 * (time.perf_counter() - t0), 1), **err}


def build(make, *args):
    """A random-weight module built directly in the run's dtype on the device (no fp32 copy of the weights on the way)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        with torch.device(DEVICE):
            module = make(*args).to(DTYPE).eval()
    finally:
        torch.set_default_dtype(default)
    sync()
    return module, allocated()


def text_rows(p) -> list[dict]:
    te, w = build(make_text_encoder, p, 49408)
    ids = torch.randint(0, 49408, (2, 77), device=DEVICE)
    with torch.no_grad():
        row = {"component": "text_encoder", "weights_mb": round(w / MB), **measure(lambda: te(ids), w)}  # noqa: F821 (del'd after the lambda ran)
    del te
    return [row]


def ff_mode(unet, mode: str):
    if mode == "whole":
        return contextlib.nullcontext()
    if mode == "diffusers":
        unet.enable_forward_chunking(chunk_size=1, dim=1)
        return contextlib.ExitStack()
    return feed_forward_chunking(unet, int(mode.removeprefix("slices")))


def unet_rows(p, frames: list[int], size: int, modes: list[str]) -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    unet, w = build(make_unet, p)
    rows, h = [], size // 8
    emb = torch.randn(2, 77, p.text_hidden, device=DEVICE, dtype=DTYPE)
    for f in frames:
        x = torch.randn(2, 4, f, h, h, device=DEVICE, dtype=DTYPE)
        with torch.no_grad():
            ref = unet(x, 981, encoder_hidden_states=emb, return_dict=False)[0]
        for attention in ("fused", "math"):
            backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION] if attention == "fused" else [SDPBackend.MATH]
            for mode in modes:
                with torch.no_grad(), sdpa_kernel(backends), ff_mode(unet, mode):
                    res = measure(lambda: unet(x, 981, encoder_hidden_states=emb, return_dict=False), w, ref)  # noqa: F821 (del'd after the lambda ran)
                unet.disable_forward_chunking()
                row = {"component": "unet", "frames": f, "size": size, "attention": attention, "ff": mode, "weights_mb": round(w / MB), **res}
                log.info("%s", row)
                rows.append(row)
    del unet
    return rows


def vae_rows(p, size: int, chunks: list[int]) -> list[dict]:
    vae, w = build(make_vae, p)
    rows, h = [], size // 8
    for chunk in chunks:
        z = torch.randn(chunk, 4, h, h, device=DEVICE, dtype=DTYPE)
        img = torch.randn(chunk, 3, size, size, device=DEVICE, dtype=DTYPE)
        with torch.no_grad():
            dec = measure(lambda: vae.decode(z, return_dict=False), w)  # noqa: F821 (del'd after the lambda ran)
            enc = measure(lambda: vae.encode(img, return_dict=False), w)  # noqa: F821 (del'd after the lambda ran)
        for name, res in (("vae_decoder", dec), ("vae_encoder", enc)):  # encode: the distribution's parameters
            rows.append({"component": name, "chunk": chunk, "size": size, "weights_mb": round(w / MB), **res})
            log.info("%s", rows[-1])
    del vae
    return rows


SAVINGS = {  # name: (low_memory, chunked decode, feed-forward chunking), as benchmarks/memory.py
    "none": (False, False, False),
    "low-memory": (True, False, False),
    "chunked decode": (False, True, False),
    "ff chunking": (False, False, True),
    "all three": (True, True, True),
}


def free() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def pipeline_row(p, frames: int, size: int, savings: str, chunk: int = 8) -> dict:
    """One guided step of the whole pipeline (text encoder, UNet, VAE decode of every frame) in the order t2vrt runs
    it: everything kept resident, or each component built, run and freed in turn (low-memory mode). ``device_mb``
    adds the CUDA context (device memory in use before the first allocation) to torch's reserved peak."""
    low, chunked, sliced = SAVINGS[savings]
    ids = torch.randint(0, 49408, (2, 77), device=DEVICE)
    x = torch.randn(2, 4, frames, size // 8, size // 8, device=DEVICE, dtype=DTYPE)
    free()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    kept, t0 = [], time.perf_counter()

    def load(make, *args):
        module = build(make, *args)[0]
        kept.extend([] if low else [module])
        return module

    with torch.no_grad():
        te = load(make_text_encoder, p, 49408)
        emb = te(ids)[0]
        del te
        free()
        unet = load(make_unet, p)
        with feed_forward_chunking(unet, 8 if sliced else 0):
            unet(x, 981, encoder_hidden_states=emb, return_dict=False)
        del unet
        free()
        vae, latents, n = load(make_vae, p), x[0].transpose(0, 1), min(chunk, frames) if chunked else frames
        video = [vae.decode(latents[i : i + n], return_dict=False)[0].cpu() for i in range(0, frames, n)]
        del vae, video
    sync()
    kept.clear()
    row = {"component": "pipeline", "frames": frames, "size": size, "savings": savings, "chunk": n,
           "allocated_mb": round(allocated(peak=True) / MB), "ms": round(1e3 * (time.perf_counter() - t0))}
    if DEVICE == "cuda":
        row["device_mb"] = round((CONTEXT + torch.cuda.max_memory_reserved()) / MB)
    free()
    log.info("%s", row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="modelscope-1.7b")
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--size", type=int, default=256, help="height and width in pixels")
    ap.add_argument("--ff", nargs="+", default=["whole", "slices8", "slices32", "diffusers"], help="feed-forward modes")
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="VAE frames per call")
    ap.add_argument("--parts", nargs="+", default=["text", "vae", "unet", "pipeline"], help="what to measure")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    global CONTEXT
    p = PRESETS[args.preset]
    if DEVICE == "cuda":
        free_b, total = torch.cuda.mem_get_info()  # creates the context: what it takes, before any tensor
        CONTEXT = total - free_b
    parts = {"text": lambda: text_rows(p), "vae": lambda: vae_rows(p, args.size, args.chunks),
             "unet": lambda: unet_rows(p, args.frames, args.size, args.ff),
             "pipeline": lambda: [pipeline_row(p, f, args.size, k) for f in args.frames for k in SAVINGS]}
    rows = [r for name in args.parts for r in parts[name]()]
    info = {"gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "none (rehearsal)", "torch": torch.__version__,
            "cuda": torch.version.cuda, "context_mb": round(CONTEXT / MB),
            "date": time.strftime("%Y-%m-%d"), "preset": args.preset}
    print(json.dumps(info))
    keys = ["component", "frames", "chunk", "size", "attention", "ff", "savings", "weights_mb", "activations_mb",
            "allocated_mb", "device_mb", "ms", "rel_to_whole"]
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k, "")) for k in keys))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
