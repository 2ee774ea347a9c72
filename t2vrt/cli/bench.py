"""``t2vrt bench DIR [--diffusers MODEL]``: latency per stage and peak memory, against diffusers on the same request."""

from __future__ import annotations

import argparse
import logging
import sys

from t2vrt.cli.options import HELP
from t2vrt.engines.backends import backend_names

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    from t2vrt.bench.report import FRAME_TOL
    from t2vrt.bench.runs import DIFFUSERS_SCHEDULERS, BenchRequest
    from t2vrt.bench.session import TORCH_DTYPES

    d = BenchRequest()
    p = sub.add_parser("bench", help="time each stage and peak memory; compare with diffusers", formatter_class=HELP,
                       description=__doc__)
    p.add_argument("dir", help="engine directory")
    p.add_argument("--diffusers", metavar="MODEL", default=None,
                   help="the diffusers model folder DIR was exported from: run TextToVideoSDPipeline alternately and "
                   "check the frames agree")
    p.add_argument("--runs", type=int, default=3, help="measured runs of each pipeline (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each pipeline first")
    p.add_argument("--prompt", default=d.prompt, help="prompt of both pipelines")
    p.add_argument("--negative-prompt", default=None, help="omitted: the empty negative prompt")
    p.add_argument("--frames", type=int, default=d.num_frames, help="number of frames")
    p.add_argument("--height", type=int, default=None, help="height in pixels; omitted: the model's native size")
    p.add_argument("--width", type=int, default=None, help="width in pixels; omitted: the model's native size")
    p.add_argument("--steps", type=int, default=d.num_inference_steps, help="inference steps")
    p.add_argument("--guidance", type=float, default=d.guidance_scale, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of both pipelines (torch.Generator('cpu'))")
    p.add_argument("--scheduler", default=d.scheduler, choices=sorted(DIFFUSERS_SCHEDULERS),
                   help="sampler of both pipelines")
    p.add_argument("--decode-chunk", type=int, default=None, help="our VAE frames per call; omitted: the profile's opt")
    p.add_argument("--context-frames", type=int, default=None, metavar="W",
                   help="ours only: denoise in windows of W frames (a video longer than the UNet's range); reports the "
                   "seams")
    p.add_argument("--context-stride", type=int, default=None, help="frames between windows; omitted: W // 4")
    p.add_argument("--free-noise", action="store_true", help="FreeNoise's initial noise (with --context-frames)")
    p.add_argument("--backend", default="onnxruntime", choices=backend_names(auto=False), help="our backend")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="our precision")
    p.add_argument("--torch-dtype", nargs="+", default=None, choices=TORCH_DTYPES, metavar="DTYPE",
                   help="diffusers' torch_dtype, one pipeline each (float32, bfloat16, float16); omitted: the one like "
                        "--precision. Quality is measured against float32 where it runs")
    p.add_argument("--ours", nargs="+", default=None, type=our_side, metavar="BACKEND:PRECISION",
                   help="several of our pipelines in one run (e.g. onnxruntime:fp32 openvino:bf16); "
                        "omitted: --backend with --precision")
    p.add_argument("--device", default="cpu", help="torch device of diffusers (cpu, cuda)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of torch and ONNX Runtime alike; omitted: each library's default")
    p.add_argument("--tolerance", type=float, default=FRAME_TOL,
                   help="largest allowed frame difference (frames in [0, 1])")
    p.add_argument("--json", metavar="PATH", default=None, help="also write every run and the summary as JSON")
    p.set_defaults(func=run)
    return p


PRECISIONS = ("fp32", "fp16", "bf16")


def our_side(text: str) -> tuple[str, str]:
    """``BACKEND:PRECISION`` (precision fp32 when omitted) -> (backend, precision)."""
    backend, _, precision = text.partition(":")
    precision = precision or "fp32"
    names = backend_names(auto=False)
    if backend not in names or precision not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BACKEND:PRECISION with BACKEND one of "
                                         f"{', '.join(names)} and PRECISION one of {', '.join(PRECISIONS)}")
    return backend, precision


def run(args) -> int:
    from t2vrt.bench.report import write_json
    from t2vrt.bench.runs import BenchRequest
    from t2vrt.bench.session import BenchConfig, run_bench
    from t2vrt.runtime.media.paths import check_output

    if args.json:
        check_output(args.json, suffixes=(".json",))  # before any model runs

    request = BenchRequest(
        prompt=args.prompt, negative_prompt=args.negative_prompt, num_frames=args.frames, height=args.height,
        width=args.width, num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed,
        scheduler=args.scheduler, decode_chunk_size=args.decode_chunk, context_frames=args.context_frames,
        context_stride=args.context_stride, free_noise=args.free_noise,
    )
    config = BenchConfig(engines=args.dir, diffusers=args.diffusers, runs=args.runs, warmup=args.warmup,
                         backend=args.backend, precision=args.precision, device=args.device, tolerance=args.tolerance,
                         threads=args.threads, ours=tuple(args.ours or ()), torch_dtypes=tuple(args.torch_dtype or ()))
    data = run_bench(config, request)
    if args.json:
        log.info("wrote %s", write_json(data, args.json))
    print(summary_text(data))
    parity = data["parity"]
    if parity and not parity["ok"]:
        print("error: the two pipelines produced different frames, so their times do not compare the same work",
              file=sys.stderr)
        return 2
    return 0


def summary_text(data: dict) -> str:
    from t2vrt.bench.machine import describe
    from t2vrt.bench.report import headline, parity_line, quality_line, table

    r, c = data["request"], data["config"]
    loads = [run["load_average"][0] for run in data["ours"]["runs"] if run["load_average"]]
    return "\n".join([
        describe(data["machine"]),
        f"request: {r['num_frames']} frames {r['width']}x{r['height']}, {r['num_inference_steps']} steps "
        f"{r['scheduler']}, "
        f"guidance {r['guidance_scale']}, seed {r['seed']}; {c['runs']} runs after {c['warmup']} warm-up; "
        f"threads {c['threads'] or 'library defaults'}",
        "backends: " + "; ".join(f"{k}: {v}" for k, v in c["backends"].items()) + f"; peak memory by {c['memory']}",
        f"1-minute load average during our runs: {loads}",
        "",
        table(data),
        "",
    ] + ([headline(data), ""] if any(s["kind"] == "diffusers" for s in data["sides"]) else []) + [
        parity_line(data["parity"]),
    ] + ([quality_line("fp16 against fp32 (ours, same backend)",
                       data["fp16_vs_fp32"])] if "fp16_vs_fp32" in data else [])
      + seam_lines(data))


def seam_lines(data: dict) -> list[str]:
    """For a request in context windows: frame-to-frame change across window edges against inside windows."""
    seams = [run.get("seams") for run in data["ours"]["runs"]]
    if not seams or seams[0] is None:
        return []
    s = seams[0]  # the same frames every run (same seed)
    return [f"seams: mean |frame t+1 - frame t| {s['boundary']:.4f} across window edges ({s['boundary_pairs']} pairs) "
            f"vs {s['inside']:.4f} inside windows ({s['inside_pairs']} pairs): ratio {s['ratio']:.2f}"]
