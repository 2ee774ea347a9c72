"""`t2vrt upscale` and `t2vrt generate --upscale-with`: video-to-video, e.g. Zeroscope 576w -> XL.

Every argument of both stages is checked before the first backend runs, and the first stage's frames go to
the second in memory (uint8, exactly what a lossless intermediate file would hold): nothing is written but
the final video, unless --keep-intermediate asks for the first stage's too.
"""

from __future__ import annotations

import argparse
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
from t2vrt.errors import InputError

UPSCALE_GUIDANCE = 15.0  # diffusers' VideoToVideoSDPipeline default, which the Zeroscope XL card uses


def add_parser(sub) -> None:
    p = sub.add_parser("upscale", help="re-render a video with a video-to-video model (Zeroscope XL upscaling)",
                       formatter_class=HELP)
    p.add_argument("dir", help="engine directory exported with a vae_encoder")
    p.add_argument("input", help="input video: .mp4 (anything ffmpeg reads), .gif, an image, or a folder of images")
    p.add_argument("prompt", help="what the re-rendered video shows (usually the first stage's prompt)")
    p.add_argument("--strength", type=float, default=0.6, help="how much to change the input, in (0, 1]")
    add_video_args(p, "upscaled.mp4", "the input's (resized to it when given)", None,
                   "frames per second written; omitted: the input's (8 for images)")
    add_run_args(p, guidance=UPSCALE_GUIDANCE,
                 steps_help="inference steps of the full schedule (strength runs the last part)")
    add_context_args(p, free_noise=False)
    add_json(p, "the written file, its size, the seed and the seconds")
    p.set_defaults(func=run)


def add_chain_args(p: argparse.ArgumentParser) -> None:
    """`generate --upscale-with DIR`: the second stage's options (the rest are generate's own)."""
    g = p.add_argument_group("upscale stage", "re-render the generated video with a video-to-video engine directory; "
                             "it uses generate's prompt, --negative-prompt, --steps, --seed, --scheduler, --eta, "
                             "--decode-chunk, --backend and --precision")
    g.add_argument("--upscale-with", metavar="DIR", default=None,
                   help="engine directory with a vae_encoder (e.g. Zeroscope XL)")
    g.add_argument("--upscale-strength", type=float, default=0.6,
                   help="how much the second stage changes the video, in (0, 1]")
    g.add_argument("--upscale-height", type=int, default=None, help="second stage height; omitted: the first stage's")
    g.add_argument("--upscale-width", type=int, default=None, help="second stage width; omitted: the first stage's")
    g.add_argument("--upscale-guidance", type=float, default=UPSCALE_GUIDANCE, help="second stage guidance scale")
    g.add_argument("--keep-intermediate", metavar="PATH", default=None, help="also write the first stage's video here")


def _load(path: str, args):
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    return quiet_bars(VideoToVideoPipeline.load(path, load_options(args)), args)


def run(args) -> int:
    from t2vrt.runtime.media.video import check_output_path, read_fps

    t0 = time.perf_counter()
    check_output_path(args.output, args.fps, args.overwrite)
    pipe = _load(args.dir, args)
    video = pipe(
        args.prompt, args.input, strength=args.strength, negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps, guidance_scale=args.guidance, eta=args.eta, seed=args.seed,
        height=args.height, width=args.width, scheduler=args.scheduler, decode_chunk_size=args.decode_chunk,
        **context_kwargs(args),
    )
    fps = args.fps or read_fps(args.input) or 8.0
    path = video.save(args.output, fps=fps, overwrite=args.overwrite)
    _, f, h, w, _ = video.images.shape
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"wrote {path} ({f} frames, {w}x{h}) in {seconds:.1f} s",
           {"output": str(path), "frames": f, "height": h, "width": w, "fps": fps, "seed": args.seed,
            "steps": args.steps, "strength": args.strength, "backend": pipe.backend, "seconds": seconds})
    return 0


def run_chained(args, generate_kwargs: dict) -> int:
    """generate, then upscale the frames in memory; both stages are planned (every check) before the first runs."""
    import numpy as np

    from t2vrt.runtime.pipeline import Pipeline

    if args.upscale_with is None:
        raise InputError("--keep-intermediate needs --upscale-with DIR: without a second stage there is no "
                         "intermediate video")
    t0 = time.perf_counter()
    check_chain_outputs(args)
    base = quiet_bars(Pipeline.load(args.dir, load_options(args)), args)
    up = _load(args.upscale_with, args)
    first_plan = base.plan(args.prompt, **generate_kwargs)
    # The second stage planned on a stand-in of the first stage's frames (same count and size, no memory): every
    # check of both stages fails here, before the first stage runs; the plan gets the real frames after it.
    stand_in = np.broadcast_to(np.zeros((), np.uint8), (first_plan.num_frames, first_plan.height, first_plan.width, 3))
    up_plan = up.plan(args.prompt, stand_in, negative_prompt=args.negative_prompt, guidance_scale=args.upscale_guidance,
                      seed=args.seed, height=args.upscale_height or first_plan.height,
                      width=args.upscale_width or first_plan.width, strength=args.upscale_strength,
                      num_inference_steps=args.steps, eta=args.eta, scheduler=args.scheduler,
                      decode_chunk_size=args.decode_chunk, **context_kwargs(args))
    first = base.run(first_plan)
    if args.keep_intermediate is not None:
        first.save(args.keep_intermediate, fps=args.fps, overwrite=args.overwrite)
    mid = first.uint8[0]  # uint8 [f, H, W, 3]: what a lossless intermediate file would hold
    video = up.run(up_plan.with_frames(mid))
    path = video.save(args.output, fps=args.fps, overwrite=args.overwrite)
    _, f, h, w, _ = video.images.shape
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"wrote {path} ({f} frames, {w}x{h}, upscaled from {mid.shape[2]}x{mid.shape[1]}) in {seconds:.1f} s",
           {"output": str(path), "frames": f, "height": h, "width": w, "fps": args.fps, "seed": args.seed,
            "intermediate": args.keep_intermediate, "from_height": mid.shape[1], "from_width": mid.shape[2],
            "seconds": seconds})
    return 0


def check_chain_outputs(args) -> None:
    """Both outputs of generate --upscale-with, and the second stage's guidance, before any model runs."""
    from pathlib import Path

    from t2vrt.runtime.checks import check_real
    from t2vrt.runtime.media.video import check_output_path

    for path in (args.output, args.keep_intermediate):
        if path is not None:
            check_output_path(path, args.fps, args.overwrite)
    if args.keep_intermediate is not None and Path(args.keep_intermediate).absolute() == Path(args.output).absolute():
        raise InputError(f"--keep-intermediate and -o are both {args.output!r}; the upscaled video would replace the "
                         "intermediate one: give two paths")
    check_real("upscale_guidance (--upscale-guidance)", args.upscale_guidance)
