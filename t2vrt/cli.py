"""The t2vrt command line: export, generate, inspect, demo (and build, upscale, bench as they land)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from t2vrt.errors import T2VError

log = logging.getLogger("t2vrt")
FF_SLICES = 8  # --ff-chunking without a number


class HELP(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except None (whose meaning the help text says)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def triple(text: str) -> tuple[int, int, int]:
    """Parse MIN:OPT:MAX (or a single N for N:N:N)."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN:OPT:MAX integers") from None
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise argparse.ArgumentTypeError(f"{text!r} must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX")
    return tuple(parts)


def add_profile_args(p: argparse.ArgumentParser) -> None:
    from t2vrt.specs import Profile

    d = Profile()
    p.add_argument("--frames", type=triple, default=d.frames, metavar="MIN:OPT:MAX", help="frame counts served")
    p.add_argument("--height", type=triple, default=d.height, metavar="MIN:OPT:MAX", help="heights in pixels")
    p.add_argument("--width", type=triple, default=d.width, metavar="MIN:OPT:MAX", help="widths in pixels")
    p.add_argument("--batch", type=int, default=d.batch[2], help="most prompts per call")
    p.add_argument("--decode-chunk", type=triple, default=d.decode_chunk, metavar="MIN:OPT:MAX", help="VAE frames per call")


def profile_from(args):
    from t2vrt.specs import Profile

    return Profile(batch=(1, 1, args.batch), frames=args.frames, height=args.height, width=args.width, decode_chunk=args.decode_chunk)


def cmd_export(args) -> int:
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.tiny import PRESETS, build_model

    opts = ExportOptions(
        components=tuple(args.components), profile=profile_from(args), precisions=tuple(args.precision),
        validate=not args.no_validate, validation=args.validation, overwrite=args.overwrite, ff_chunks=args.ff_chunking,
    )
    t0 = time.perf_counter()
    if args.random_weights:
        if args.model not in PRESETS:
            raise SystemExit(f"error: --random-weights needs a preset name as MODEL; choose one of {', '.join(PRESETS)}")
        with tempfile.TemporaryDirectory(prefix="t2vrt-model-") as tmp:
            out = export_model(str(build_model(tmp, args.model, seed=args.seed)), args.output, opts)
    else:
        out = export_model(args.model, args.output, opts)
    print(f"exported {args.model} to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def add_generate_args(p: argparse.ArgumentParser) -> None:
    from t2vrt.runtime.schedulers import SCHEDULERS

    p.add_argument("-o", "--output", default="out.mp4", help="output .mp4, .gif, or folder of png frames")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--frames", type=int, default=16, help="number of frames")
    p.add_argument("--height", type=int, default=None, help="height in pixels; omitted: the model's native size")
    p.add_argument("--width", type=int, default=None, help="width in pixels; omitted: the model's native size")
    p.add_argument("--steps", type=int, default=25, help="inference steps")
    p.add_argument("--guidance", type=float, default=9.0, help="classifier-free guidance scale (<= 1 disables it)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--seed", type=int, default=0, help="seed (same noise as diffusers with torch.Generator('cpu').manual_seed)")
    p.add_argument("--scheduler", default=None, choices=sorted(SCHEDULERS), help="sampler; omitted: the model's own")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second of the written video")
    p.add_argument("--decode-chunk", type=int, default=None, help="VAE frames per call; omitted: the profile's opt")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
    p.add_argument("--precision", default=None, choices=["fp32", "fp16"], help="omitted: fp32 ONNX on onnxruntime, the best built engine (fp16 first) on tensorrt")
    p.add_argument("--low-memory", action="store_true", help="load each component only while it runs (slower, lower peak)")


def generate_kwargs(args) -> dict:
    return dict(
        negative_prompt=args.negative_prompt, num_frames=args.frames, height=args.height, width=args.width,
        num_inference_steps=args.steps, guidance_scale=args.guidance, eta=args.eta, seed=args.seed,
        scheduler=args.scheduler, decode_chunk_size=args.decode_chunk,
    )


def cmd_generate(args) -> int:
    from t2vrt import Pipeline

    if getattr(args, "upscale_with", None) is not None or getattr(args, "keep_intermediate", None) is not None:
        from t2vrt.cli_upscale import cmd_generate_upscaled

        return cmd_generate_upscaled(args)
    t0 = time.perf_counter()
    pipe = Pipeline.load(args.dir, backend=args.backend, precision=args.precision, low_memory=args.low_memory)
    video = pipe(args.prompt, **generate_kwargs(args))
    path = video.save(args.output, fps=args.fps)
    _, f, h, w, _ = video.images.shape
    print(f"wrote {path} ({f} frames, {w}x{h}) in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_inspect(args) -> int:
    from t2vrt.manifest import load_manifest

    m = load_manifest(args.dir)
    if args.json:
        print(json.dumps(m.to_json(), indent=2))
        return 0
    print(f"engine directory {args.dir} (from {m.source})")
    print(f"  model: {m.model}")
    print(f"  profile: {m.profile}")
    for name, entry in m.components.items():
        print(f"  {name}: onnx {', '.join(entry['onnx'])}")
        for t in entry["io"]["inputs"] + entry["io"]["outputs"]:
            print(f"    {t['name']:<24} {t['dtype']:<8} {t['dims']}")
        for prec, v in entry.get("validation", {}).items():
            worst = max(o["rel_l2"] for s in v["shapes"] for o in s["outputs"].values())
            print(f"    validated {prec}: worst relative L2 {worst:.2e} (tolerance {v['tolerance']:g}) over {len(v['shapes'])} shapes")
    for key, rec in m.engines.items():
        print(f"  engine {key}: {rec}")
    print(f"  versions: {m.versions}")
    return 0


def cmd_demo(args) -> int:
    from t2vrt import Pipeline
    from t2vrt.bench.measure import Recorder, wrap_stage
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.tiny import build_model
    from t2vrt.manifest import load_manifest
    from t2vrt.specs import Profile

    work, rec = Path(args.workdir), Recorder()
    with rec.time("build model"):
        model = build_model(work / "model", args.preset)
    profile = Profile(frames=(1, args.frames, 64), height=(64, args.size, 512), width=(64, args.size, 512))
    with rec.time("export"):
        engines = export_model(str(model), work / "engines", ExportOptions(profile=profile, overwrite=True))
    with rec.time("generate"):
        pipe = Pipeline.load(engines)
        for stage, name in (("embed", "encode_prompt"), ("denoise", "denoise"), ("decode", "decode")):
            wrap_stage(pipe, stage, name, rec)
        video = pipe(args.prompt, num_frames=args.frames, height=args.size, width=args.size,
                     num_inference_steps=args.steps, seed=0)
    with rec.time("write video"):
        video.save(args.output, fps=8)
    print(f"wrote {args.output}: {args.frames} frames {args.size}x{args.size} from a random-weight {args.preset} model")
    export = load_manifest(engines).extra.get("export_seconds", {})
    s = rec.seconds
    print("  " + ", ".join(f"{k} {s[k]:.1f} s" for k in ("build model", "export", "generate", "write video")))
    print("  export: " + ", ".join(f"{k} {v:.1f} s" for k, v in export.items()))
    print(f"  generate: text encoding {s['encode_prompt']:.2f} s, denoising {s['denoise'] / args.steps:.3f} s per step "
          f"x {args.steps}, VAE decode {s['decode']:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from t2vrt.cli_upscale import add_chain_args, add_upscale_parser
    from t2vrt.engines.tensorrt_build import add_build_parser
    from t2vrt.export.exporter import DEFAULT_COMPONENTS

    parser = argparse.ArgumentParser(prog="t2vrt", description=__doc__, formatter_class=HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a diffusers model to an engine directory", formatter_class=HELP)
    p.add_argument("model", help="diffusers model folder or hub id (with --random-weights: a preset name)")
    p.add_argument("-o", "--output", required=True, help="engine directory to write")
    add_profile_args(p)
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "fp16"], help="graph precisions")
    p.add_argument("--components", nargs="+", default=list(DEFAULT_COMPONENTS),
                   choices=["text_encoder", "unet", "vae_decoder", "vae_encoder"])
    p.add_argument("--no-validate", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--validation", default="auto", choices=["auto", "standard", "small"],
                   help="validation shapes; auto: small for components over 250 M parameters (the real UNet on a CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine directory")
    p.add_argument("--ff-chunking", type=int, nargs="?", const=FF_SLICES, default=0, metavar="SLICES",
                   help=f"compute the UNet's feed-forward layers in SLICES pieces (alone: {FF_SLICES}) to lower its peak memory")
    p.add_argument("--random-weights", action="store_true", help="MODEL is a preset (tiny, small, modelscope-1.7b) built with random weights")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("generate", help="generate a video from a prompt", formatter_class=HELP)
    p.add_argument("dir", help="engine directory")
    p.add_argument("prompt")
    add_generate_args(p)
    add_chain_args(p)
    p.set_defaults(func=cmd_generate)
    add_upscale_parser(sub, HELP)
    add_build_parser(sub)

    p = sub.add_parser("inspect", help="show an engine directory's manifest", formatter_class=HELP)
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print the raw manifest")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("demo", help="tiny random model -> export -> mp4, on the CPU", formatter_class=HELP)
    p.add_argument("-o", "--output", default="demo.mp4")
    p.add_argument("--workdir", default="demo", help="where the model and engine directory go")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    p.add_argument("--prompt", default="a panda eating bamboo on a rock")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="height and width in pixels")
    p.add_argument("--steps", type=int, default=20)
    p.set_defaults(func=cmd_demo)

    from t2vrt.bench import add_bench_parser  # issue 6: t2vrt/bench/

    add_bench_parser(sub, HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        result = args.func(args)  # `build` returns its results (for callers in Python): still a success
        return result if isinstance(result, int) else 0
    except T2VError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
