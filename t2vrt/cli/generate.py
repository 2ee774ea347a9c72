"""`t2vrt generate DIR PROMPT`: a video from a prompt (and, with --upscale-with, re-rendered by a second model)."""

from __future__ import annotations

import time

from t2vrt.cli.console import add_json, report
from t2vrt.cli.options import (
    HELP,
    add_context_args,
    add_run_args,
    add_video_args,
    context_kwargs,
    load_options,
    quiet_bars,
)


def add_parser(sub) -> None:
    from t2vrt.cli.upscale import add_chain_args

    p = sub.add_parser("generate", help="generate a video from a prompt", formatter_class=HELP)
    p.add_argument("dir", help="engine directory")
    p.add_argument("prompt", help="what the video shows")
    p.add_argument("--frames", type=int, default=16, help="number of frames")
    add_video_args(p, "out.mp4", "the model's native size", 8.0, "frames per second of the written video")
    add_run_args(p, guidance=9.0)
    add_context_args(p)
    add_chain_args(p)
    add_json(p, "the written file, its size, the seed and the seconds")
    p.set_defaults(func=run)


def generate_kwargs(args) -> dict:
    """Pipeline.__call__'s keyword arguments from generate's options."""
    return dict(
        negative_prompt=args.negative_prompt, num_frames=args.frames, height=args.height, width=args.width,
        num_inference_steps=args.steps, guidance_scale=args.guidance, eta=args.eta, seed=args.seed,
        scheduler=args.scheduler, decode_chunk_size=args.decode_chunk, free_noise=args.free_noise,
        **context_kwargs(args),
    )


def run(args) -> int:
    from t2vrt import Pipeline
    from t2vrt.runtime.media.video import check_output_path

    if args.upscale_with is not None or args.keep_intermediate is not None:
        from t2vrt.cli.upscale import run_chained

        return run_chained(args, generate_kwargs(args))
    t0 = time.perf_counter()
    check_output_path(args.output, args.fps, args.overwrite)  # before any model runs: suffix, fps, nothing replaced
    pipe = quiet_bars(Pipeline.load(args.dir, load_options(args)), args)
    video = pipe(args.prompt, **generate_kwargs(args))
    path = video.save(args.output, fps=args.fps, overwrite=args.overwrite)
    _, f, h, w, _ = video.images.shape
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"wrote {path} ({f} frames, {w}x{h}) in {seconds:.1f} s",
           {"output": str(path), "frames": f, "height": h, "width": w, "fps": args.fps, "seed": args.seed,
            "steps": args.steps, "backend": pipe.backend, "seconds": seconds})
    return 0
