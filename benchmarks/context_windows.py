"""Issue 15: time per frame and peak memory against total frames, denoising in context windows, on the CPU.

    python -m benchmarks.context_windows --workdir /tmp/t2vrt-bench --frames 16 32 64 128 256 --context-frames 16 \\
        --context-stride 4 --size 64 --steps 2 --plain-max 64 --json benchmarks/results/context_windows.json

Uses cpu_small.py's ``small`` engines (frames 1:16:64, exported once into --workdir), then runs each request in a
fresh subprocess (after an unmeasured one-step warm-up at one window's frames), so its peak resident set
(getrusage ru_maxrss, exact) is its own: every total frame count with
windows of W frames, and, up to --plain-max frames, the same request without windows (the UNet over all frames at
once) for comparison. Each child counts the UNet calls and checks them against the formula of runtime/context.py.
Weights are random: time and memory do not depend on their values, the seam numbers say little about a real model.
Prints a markdown table, then one JSON document with the machine and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from t2vrt.bench.harness import child_json
from t2vrt.bench.machine import describe, machine
from t2vrt.bench.report import write_json
from t2vrt.host import peak_rss_bytes, rss_bytes
from t2vrt.runtime.stages import StageSeconds

PROMPT = "a panda eating bamboo on a rock"


def child(cfg: dict) -> dict:
    """One generation; returns its times, UNet calls and peak RSS (MB)."""
    from t2vrt import Pipeline
    from t2vrt.runtime.context import seam_metric, unet_calls_per_evaluation, window_schedule

    pipe = Pipeline.load(cfg["dir"], backend="onnxruntime")
    for name in ("text_encoder", "unet", "vae_decoder"):
        pipe.runner(name)
    loaded = rss_bytes() / 2**20
    counter = pipe.add_observer(UNetCalls({"unet": "denoise", "vae_decoder": "decode"}))
    calls, seconds = counter.frames, counter.seconds
    f, w, s = cfg["frames"], cfg["context_frames"], cfg["context_stride"]
    ctx = {} if w is None else dict(context_frames=w, context_stride=s, free_noise=cfg["free_noise"])
    # warm-up (ONNX Runtime's first calls allocate and plan): one step at one window's frames, not measured
    pipe(
        PROMPT, num_frames=min(f, w or f), height=cfg["size"], width=cfg["size"], num_inference_steps=1, progress=False
    )
    counter.clear()
    calls.clear()
    t0 = time.perf_counter()
    video = pipe(PROMPT, num_frames=f, height=cfg["size"], width=cfg["size"], num_inference_steps=cfg["steps"], seed=0,
                 scheduler="ddim", progress=False, **ctx)
    total = time.perf_counter() - t0
    out = {
        "seconds": total,
        "per_frame_ms": 1000 * total / f,
        "denoise_s": seconds["denoise"],
        "decode_s": seconds["decode"],
        "unet_calls_per_step": len(calls) / cfg["steps"],
        "unet_max_frames": max(calls),
        "loaded_mb": loaded,
        "peak_mb": peak_rss_bytes() / 2**20,
        "latents_mb": video.latents.nbytes / 2**20,
        "frames_mb": video.images.nbytes / 2**20,
    }
    if w is not None:
        out["formula_calls_per_step"] = unet_calls_per_evaluation(f, w, s)
        out["seams"] = seam_metric(video.images, window_schedule(f, w, s))
    return out


class UNetCalls(StageSeconds):
    """Seconds per stage (the pipeline's stage seam) and the frames of every UNet call (how many windows ran)."""

    def __init__(self, names: dict[str, str]):
        super().__init__(names)
        self.frames: list[int] = []

    def wrap_runner(self, stage: str, runner):
        if stage != "unet":
            return runner
        frames = self.frames

        class Counted:
            def infer(self, feed):
                frames.append(feed["sample"].shape[2])
                return runner.infer(feed)

        return Counted()


def run_child(cfg: dict) -> dict:
    out = child_json("benchmarks.context_windows", cfg)
    if "error" in out:
        raise SystemExit(f"child {cfg} failed: {out['error']}")
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| frames | windows | UNet calls per step (formula) | total (s) | per frame (ms) | denoise (s) | decode (s) "
        "| peak RSS (MB) | RSS after load (MB) | seams: edge / inside |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        c, m = r["config"], r["result"]
        win = f"W={c['context_frames']} S={c['context_stride']}" if c["context_frames"] else "none"
        calls = f"{m['unet_calls_per_step']:.0f}" + (
            f" ({m['formula_calls_per_step']})" if "formula_calls_per_step" in m else ""
        )
        seams = m.get("seams")
        seam = f"{seams['boundary']:.4f} / {seams['inside']:.4f}" if seams else "-"
        lines.append(
            f"| {c['frames']} | {win} | {calls} | {m['seconds']:.1f} | {m['per_frame_ms']:.0f} | "
            f"{m['denoise_s']:.1f} | "
            f"{m['decode_s']:.1f} | {m['peak_mb']:.0f} | {m['loaded_mb']:.0f} | {seam} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default="/tmp/t2vrt-bench", help="cpu_small.py's work folder (engines reused)")
    ap.add_argument("--preset", default="small", help="the random-weight preset (tiny for a quick check)")
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--context-frames", type=int, default=16)
    ap.add_argument("--context-stride", type=int, default=4)
    ap.add_argument("--free-noise", action="store_true")
    ap.add_argument(
        "--size", type=int, default=64, help="height and width in pixels (multiples of 64 for the small preset)"
    )
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument(
        "--plain-max", type=int, default=64, help="also run without windows up to this many frames (the profile's max)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from benchmarks.cpu_small import small_engines

    _, engines = small_engines(args.workdir, args.preset)
    rows = []
    for f in args.frames:
        for w in ([args.context_frames] + ([None] if f <= args.plain_max and f > args.context_frames else [])):
            cfg = dict(dir=str(engines), frames=f, context_frames=w, context_stride=args.context_stride if w else None,
                       free_noise=args.free_noise and w is not None, size=args.size, steps=args.steps)
            t0 = time.strftime("%H:%M:%S", time.gmtime())
            rows.append(
                {"config": cfg, "result": run_child(cfg), "started_utc": t0, "load_average": list(os.getloadavg())}
            )
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    doc = {"machine": machine(), "args": vars(args), "rows": rows}
    print(describe(doc["machine"]))
    if args.json:
        write_json(doc, args.json)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
