"""Frame scaling: time and peak memory of our generate at 8, 16, 32 and 64 frames (small preset).

    python -m benchmarks.frame_scaling --steps 5 --json /tmp/frames.json

Each frame count runs in a fresh process (ONNX Runtime's arenas keep what a larger run took): a first run, whose
stages' growth above the RSS at their start is what each stage needs (text encoding, the denoising loop, the
chunked VAE decode), then --runs measured runs for the times and the process's peak RSS. ``--diffusers-decode`` adds,
for
contrast, diffusers' decode_latents (the VAE over all frames in one batch) at the same frame counts, up to
--diffusers-max-frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from t2vrt.bench.harness import last_json
from t2vrt.bench.harness import run_child as run_child_process

log = logging.getLogger("frame-scaling")


def measure_ours(engines: Path, frames: int, args) -> dict:
    from t2vrt.bench.measure import spread
    from t2vrt.bench.runs import BenchRequest, OursRun

    req = BenchRequest(num_frames=frames, height=args.size, width=args.size, num_inference_steps=args.steps,
                       decode_chunk_size=args.decode_chunk)
    run = OursRun(engines, req, threads=args.threads)
    cold = run.run()[0]  # the first run: ONNX Runtime's arenas grow to what each stage needs
    records = [run.run()[0] for _ in range(args.runs)]
    keys = ("total_s", "unet_per_step_s", "glue_per_step_s", "vae_per_frame_s", "peak_rss_mb")
    out = {k: spread([r[k] for r in records]) for k in keys}
    for field in ("stage_peak_rss_mb", "stage_rss_growth_mb"):
        out[field] = {s: max(r[field][s] for r in records) for s in records[0][field]}
    out["cold_peak_rss_mb"] = cold["peak_rss_mb"]
    out["cold_stage_rss_growth_mb"] = cold["stage_rss_growth_mb"]
    out["load_average"] = [r["load_average"] for r in records]
    return out


def measure_diffusers_decode(model: Path, frames: int, args) -> dict:
    """diffusers' decode_latents on random latents: the whole video through the VAE in one batch."""
    import time

    import torch
    from diffusers import AutoencoderKL

    from t2vrt.bench.measure import PeakMemory

    if args.threads:
        torch.set_num_threads(args.threads)
    vae = AutoencoderKL.from_pretrained(model / "vae").eval()
    lat = torch.randn(frames, 4, args.size // 8, args.size // 8) / vae.config.scaling_factor
    mem = PeakMemory()
    with torch.no_grad():
        vae.decode(lat[:1])
        start = mem.current_mb()
        mem.reset()
        t0 = time.perf_counter()
        vae.decode(lat)
        dt = time.perf_counter() - t0
    return {"vae_per_frame_s": dt / frames, "decode_rss_growth_mb": mem.peak_mb() - start}


def child(args) -> int:
    from benchmarks.cpu_small import small_engines

    model, engines = small_engines(args.workdir, args.preset)
    if args.what == "ours":
        out = measure_ours(engines, args.one, args)
    else:
        out = measure_diffusers_decode(model, args.one, args)
    print(json.dumps(out))
    return 0


def run_child(what: str, frames: int, argv: list[str]) -> dict | None:
    """One frame count in a fresh process (this script with --one): its JSON, or None when it failed."""
    rec = run_child_process(
        [sys.executable, "-m", "benchmarks.frame_scaling", *argv, "--one", str(frames), "--what", what]
    )
    out = last_json(rec)
    if "error" in out:
        log.error("%s at %d frames failed (%s):\n%s", what, frames, out["error"], (rec.get("stdout") or "")[-3000:])
        return None
    return out


def table(rows: dict) -> str:
    lines = [
        "| frames | end to end (s) | UNet per step (s) | UNet per step per frame (ms) | VAE per frame (ms) "
        "| peak RSS (MB) "
        "| first run, loop: RSS growth (MB) | first run, decode: RSS growth (MB) | diffusers decode: RSS growth (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f, r in rows.items():
        o, d = r.get("ours"), r.get("diffusers_decode")
        if o is None:
            lines.append(f"| {f} | failed | | | | | | | |")
            continue
        g = o["cold_stage_rss_growth_mb"]
        dd = f"{d['decode_rss_growth_mb']:.0f}" if d else "-"
        unet = o["unet_per_step_s"]["median"]
        lines.append(
            f"| {f} | {o['total_s']['median']:.1f} | {unet:.2f} | {1e3 * unet / int(f):.0f} | "
            f"{1e3 * o['vae_per_frame_s']['median']:.0f} | {o['peak_rss_mb']['median']:.0f} | {g.get('loop', 0):.0f} | "
            f"{g.get('decode', 0):.0f} | {dd} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--workdir", default="/tmp/t2vrt-bench", help="where the small model and engines are (built if missing)"
    )
    p.add_argument("--preset", default="small", help="the random-weight preset (tiny for a quick check)")
    p.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--decode-chunk", type=int, default=None, help="VAE frames per call; omitted: the profile's opt (8)")
    p.add_argument(
        "--threads", type=int, default=None, help="intra-op threads of ONNX Runtime and torch; omitted: defaults"
    )
    p.add_argument("--diffusers-decode", action="store_true", help="also diffusers' one-batch VAE decode")
    p.add_argument("--diffusers-max-frames", type=int, default=32, help="largest frame count for --diffusers-decode")
    p.add_argument("--json", default=None)
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--what", default="ours", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.one is not None:
        return child(args)
    from benchmarks.cpu_small import small_engines
    from t2vrt.bench.machine import describe, machine
    from t2vrt.bench.report import write_json

    small_engines(args.workdir, args.preset)  # build once, before the children
    passed = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--diffusers-decode"]
    rows = {}
    for f in args.frames:
        rows[f] = {"ours": run_child("ours", f, passed)}
        if args.diffusers_decode and f <= args.diffusers_max_frames:
            rows[f]["diffusers_decode"] = run_child("diffusers", f, passed)
        log.info("%d frames: %s", f, rows[f])
    info = machine()
    data = {"machine": info, "args": {k: v for k, v in vars(args).items() if k not in ("one", "what")}, "rows": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(data, args.json)
    print(describe(info))
    print(
        f"{args.steps} steps, {args.size}x{args.size}, {args.runs} run(s) after a first run, each frame count in a "
        "fresh "
        f"process, threads {args.threads or 'library defaults'}"
    )
    print(table(rows))
    return 0 if all(r.get("ours") for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
