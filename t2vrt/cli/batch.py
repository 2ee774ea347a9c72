"""`t2vrt batch DIR PROMPTS.jsonl -o OUTDIR`: one video per line, locally or on Ray Data (--ray), and the option
groups `t2vrt serve` shares (request defaults, Ray)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from t2vrt.cli.options import HELP, NEGATIVE_HELP, add_load_args, load_options
from t2vrt.serve.request import VideoRequest


def add_request_args(p: argparse.ArgumentParser, unit: str = "line") -> None:
    """Defaults of every request (a ``unit``, a line of `batch` or a POST body of `serve`, may override each);
    `t2vrt generate`'s defaults."""
    from t2vrt.runtime.schedulers import SCHEDULERS

    d = VideoRequest()
    g = p.add_argument_group(f"defaults of each request (a {unit}'s own keys win)")
    g.add_argument("--negative-prompt", default=None, help=NEGATIVE_HELP)
    g.add_argument("--frames", type=int, default=d.num_frames, help="num_frames")
    g.add_argument("--height", type=int, default=None, help="height in pixels; omitted: the model's native size")
    g.add_argument("--width", type=int, default=None, help="width in pixels; omitted: the model's native size")
    g.add_argument("--steps", type=int, default=d.num_inference_steps, help="num_inference_steps")
    g.add_argument("--guidance", type=float, default=d.guidance_scale, help="guidance_scale")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of {unit}s without one")
    g.add_argument("--scheduler", default=None, choices=sorted(SCHEDULERS), help="sampler; omitted: the model's own")
    g = p.add_argument_group("runtime")
    g.add_argument("--fps", type=float, default=8.0, help="frames per second of the written videos")
    add_load_args(g)


def add_ray_args(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("Ray (needs the ray extra: pip install 't2vrt[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help=f"run {what} on the Ray cluster at ADDRESS (e.g. ray://head:10001 or auto); alone: a local "
                   "cluster")
    g.add_argument("--workers", type=int, default=None,
                   help="Ray workers (each loads the model once); default: one per GPU, 1 without GPUs")
    g.add_argument("--gpus-per-worker", type=float, default=None, help="default: 1 when the cluster has GPUs, else 0")


def request_defaults(args) -> VideoRequest:
    return VideoRequest(negative_prompt=args.negative_prompt, seed=args.seed, num_frames=args.frames,
                        height=args.height,
                        width=args.width, num_inference_steps=args.steps, guidance_scale=args.guidance,
                        scheduler=args.scheduler)


def ray_options(args):
    from t2vrt.serve.ray_batch import RayOptions

    return RayOptions(address=None if args.ray == "local" else args.ray, workers=args.workers,
                      gpus_per_worker=args.gpus_per_worker, retries=args.retries)


def run(args) -> int:
    from t2vrt.runtime.media.paths import check_fps
    from t2vrt.serve.batch import writing

    check_fps(args.fps)  # before any line is planned or any model runs
    with writing(args.output):  # one writer per folder: a second batch is refused at once
        return _run(args)


def _run(args) -> int:
    from t2vrt.serve.batch import messages, plan, run_local, summary

    lines = plan(args.dir, args.prompts, args.output, request_defaults(args), overwrite=args.overwrite)  # no model yet
    for item in lines:
        if item.error:
            print(f"{args.prompts}:{item.line}: {item.error} (skipped)", file=sys.stderr)
    t0 = time.perf_counter()
    runtime = dict(fps=args.fps, options=load_options(args))
    if args.ray:
        from t2vrt.serve.ray_batch import run_ray

        results = run_ray(args.dir, lines, args.output, opts=ray_options(args), **runtime)
    else:
        results = run_local(args.dir, lines, args.output, **runtime)
    counts = summary(results, lines)
    for n, text in messages(results, lines):
        print(f"{args.prompts}:{n}: {text}", file=sys.stderr)
    if args.json:
        print(json.dumps({"counts": counts, "results": str(results.path),
                          "seconds": round(time.perf_counter() - t0, 2)}))
    else:
        print(f"batch: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))} in {time.perf_counter() - t0:.1f} s; "
              f"records in {results.path}")
    return 0 if set(counts) <= {"ok", "skipped"} else 1


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="render a JSON-lines prompt file (one video per line), locally or on Ray",
                       formatter_class=HELP, description="Each line: {\"prompt\": ..., optional \"negative_prompt\", "
                       "\"seed\", \"num_frames\", \"height\", \"width\", \"num_inference_steps\", \"guidance_scale\", "
                       "\"scheduler\", \"output\"}. Bad lines are reported and skipped; a rerun skips finished lines.")
    p.add_argument("dir", help="engine directory")
    p.add_argument("prompts", help="JSON-lines file, one request per line (# comments and blank lines ignored)")
    p.add_argument("-o", "--output", required=True, help="output folder: the videos and results.jsonl")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--overwrite", action="store_true",
                   help="render lines whose output exists (made by another request or other arguments) over it")
    add_request_args(p)
    add_ray_args(p, "the batch")
    p.add_argument("--retries", type=int, default=2, help="with --ray: retries of a video whose worker died")
    p.set_defaults(func=run)
