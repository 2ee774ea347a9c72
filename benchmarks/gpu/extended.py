"""GPU command 2 (what the headline leaves; may not run): 64 frames, CUDA graphs, fusions, TensorRT over a range.

    python3 -m benchmarks.gpu.extended OUT_DIR --trtexec /tmp/trt/trt860_sm90/bin/trtexec

Reuses command 1's model and export in --work when they are still there (else exports again, as command 1 does).
Phases, each within what is left of ``--budget`` (500 s), OUT_DIR/extended.json rewritten after each:
  1. fp16_vs_fp32: our fp16 frames against our fp32 frames on ONNX Runtime CUDA (one run each, untimed);
  2. long: --frames-long (64) frames with each pipeline's memory savings (diffusers: forward chunking and VAE
     slicing; ours: low-memory mode), one warm-up and one measured run each, peak GPU memory from the device;
  3. unet_graphs: the fp16 UNet alone on ONNX Runtime CUDA, eager calls against CUDA-graph replay;
  4. cuda_fused: the UNet with ONNX Runtime's CUDA fusions against the portable graph, and one generation with it
     (ort_fused.py; it estimates its cost and skips itself when the budget left is smaller);
  5. trtexec_range: TensorRT 8.6's fp16 UNet built for frames 8:16:64 and timed at 16 and 64 frames.
Size buckets need TensorRT's Python bindings (none for Python 3.12 in TensorRT 8.6): the `gpu`-marked engine tests
of command 1 cover them where a TensorRT with bindings exists.
CPU check: ``--device cpu --preset tiny --precision fp32 --frames 2 --frames-long 3 --size 32 --steps 2 --runs 1``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from benchmarks.gpu.common import make_model, parser, phase_trtexec, setup, trtexec_lines, unet_feed, write_summary


def request(args, frames: int):
    from t2vrt.bench.runs import BenchRequest

    return BenchRequest(num_frames=frames, height=args.size, width=args.size, num_inference_steps=args.steps)


def phase_fp16_vs_fp32(args, model: dict) -> dict:
    from t2vrt.bench.runs import OursRun
    from t2vrt.bench.session import BenchConfig, fp16_against_fp32

    req = request(args, args.frames)
    ours = OursRun(model["engines"], req, "onnxruntime", args.precision, args.device, args.threads)
    _, frames = ours.run()
    config = BenchConfig(engines=model["engines"], precision=args.precision, device=args.device, threads=args.threads)
    q = fp16_against_fp32(config, req, ours, frames)
    ours.close()
    return q


def phase_long(args, model: dict) -> dict:
    """--frames-long frames with each pipeline's memory savings, one warm-up and one measured run each."""
    from t2vrt.bench.runs import DiffusersRun, OursRun
    from t2vrt.bench.session import BenchConfig, measure

    req = request(args, args.frames_long)
    # low-memory mode: each stage's runner is opened when it starts and closed when it ends; the stage seam times the
    # reopened ones
    ours = OursRun(model["engines"], req, "onnxruntime", args.precision, args.device, args.threads, low_memory=True)
    ref = DiffusersRun(model["model"], req, args.device, args.precision)
    ref.pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
    ref.pipe.vae.enable_slicing()  # decodes one frame at a time
    config = BenchConfig(engines=model["engines"], diffusers=model["model"], runs=1, warmup=1, device=args.device,
                         precision=args.precision)
    data, _ = measure(config, req, [ours, ref])
    data["savings"] = {"t2vrt": "low_memory", "diffusers": "forward chunking + VAE slicing (one frame per decode)"}
    return data


def phase_unet_graphs(args, model: dict) -> dict:
    """The UNet alone at the main request's shape: eager calls against CUDA-graph replay (one session per shape,
    inputs copied into fixed buffers), median of 10 calls after 3 warm-ups each."""
    from t2vrt.bench.measure import sync_for
    from t2vrt.engines.loader import open_runner
    from t2vrt.manifest import load_manifest

    m, sync = load_manifest(model["engines"]), sync_for(args.device)
    feed = unet_feed(args, m)
    out = {}
    for graphs in (False, True):
        runner = open_runner(Path(model["engines"]), m, "unet", "onnxruntime", args.precision, cuda_graphs=graphs)
        times = []
        for _ in range(13):
            sync()
            t0 = time.perf_counter()
            runner.infer(feed)
            sync()
            times.append(time.perf_counter() - t0)
        out["graph_replay" if graphs else "eager"] = {"median_s": statistics.median(times[3:]), "first_s": times[0],
                                                      "providers": getattr(runner, "providers", None)}
        runner.close()
    return out


def phase_cuda_fused(args, model: dict, phases) -> dict:
    from benchmarks.gpu.ort_fused import phase_cuda_fused as run
    from t2vrt.manifest import load_manifest

    feed = unet_feed(args, load_manifest(model["engines"]))
    return run(args, model["engines"], feed, None, phases.left)


def summary(res: dict) -> str:
    from benchmarks.gpu.ort_fused import summary_lines
    from t2vrt.bench.machine import describe
    from t2vrt.bench.report import quality_line, table

    model = res.get("model") or {}
    lines = [f"# GPU, command 2: {model.get('preset', '?')} random weights, {res['args']['precision']}", "", "```",
             describe(res["machine"]), "```"]
    if res.get("fp16_vs_fp32"):
        lines.append(quality_line("ours fp16 against ours fp32", res["fp16_vs_fp32"]))
    if res.get("long"):
        r = res["long"]["request"]
        lines += ["", f"{r['num_frames']} frames with the memory savings ({res['long']['savings']})", "",
                  table(res["long"]), "", "t2vrt in low-memory mode: its stage times include opening its sessions"]
    g = res.get("unet_graphs")
    if g:
        lines.append(f"UNet step on ONNX Runtime ({g['eager']['providers']}): eager {1e3 * g['eager']['median_s']:.1f} "
                     f"ms, CUDA-graph replay {1e3 * g['graph_replay']['median_s']:.1f} ms")
    if res.get("cuda_fused"):
        lines += summary_lines(res["cuda_fused"])
    lines += trtexec_lines(res, "trtexec_range")
    lines += ["", f"phase seconds: {res['phase_s']}", f"errors: {res['errors'] or 'none'}",
              f"wall {res['wall_s']:.0f} s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    started = time.perf_counter()
    p = parser(__doc__, budget=500.0)
    p.add_argument("--frames-long", type=int, default=64, help="the memory-savings run's frames (0: skip it)")
    p.add_argument("--fused-nhwc", action="store_true", help="phase cuda_fused: fuse NhwcConv too (off by default)")
    args = p.parse_args(argv)
    ort = setup(args)
    from t2vrt.bench.harness import Phases

    out = Path(args.out)
    phases = Phases(out / "extended.json", args.budget, {"args": vars(args), "onnxruntime": ort}, started=started)
    model = phases("model", lambda: make_model(args, phases))
    if model:
        if args.precision == "fp16":
            phases("fp16_vs_fp32", lambda: phase_fp16_vs_fp32(args, model))
        if args.frames_long:
            phases("long", lambda: phase_long(args, model))
        phases("unet_graphs", lambda: phase_unet_graphs(args, model))
        phases("cuda_fused", lambda: phase_cuda_fused(args, model, phases))
        if args.trtexec:
            frames = (8, args.frames, max(args.frames, args.frames_long, 8))
            phases("trtexec_range", lambda: phase_trtexec(args, model["engines"], phases, frames, frames[1:]))
    phases.save()
    write_summary(out, summary(phases.res))
    return 1 if phases.res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
