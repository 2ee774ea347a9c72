"""`t2vrt demo`: a random-weight model -> export -> an mp4, on the CPU, with the time of each step."""

from __future__ import annotations

from pathlib import Path

from t2vrt.cli.options import HELP


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="tiny random model -> export -> mp4, on the CPU", formatter_class=HELP)
    p.add_argument("-o", "--output", default="demo.mp4", help="the video to write (.mp4, .gif or a folder)")
    p.add_argument("--workdir", default="demo", help="where the model and engine directory go")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small"], help="size of the random-weight model")
    p.add_argument("--prompt", default="a panda eating bamboo on a rock", help="the prompt (the weights are random)")
    p.add_argument("--frames", type=int, default=16, help="number of frames")
    p.add_argument("--size", type=int, default=128, help="height and width in pixels")
    p.add_argument("--steps", type=int, default=20, help="inference steps")
    p.set_defaults(func=run)


def run(args) -> int:
    from t2vrt import Pipeline
    from t2vrt.bench.measure import Recorder
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.random_model import build_model
    from t2vrt.manifest import load_manifest
    from t2vrt.runtime.media.video import check_output_path
    from t2vrt.runtime.stages import StageSeconds

    check_output_path(args.output, 8)  # before the model is built
    work, rec = Path(args.workdir), Recorder()
    with rec.time("build model"):
        model = build_model(work / "model", args.preset)
    profile = Profile(frames=(1, args.frames, 64), height=(64, args.size, 512), width=(64, args.size, 512))
    with rec.time("export"):
        engines = export_model(str(model), work / "engines", ExportOptions(profile=profile, overwrite=True))
    with rec.time("generate"):
        pipe = Pipeline.load(engines)
        stages = pipe.add_observer(StageSeconds({"text_encoder": "encode_prompt", "unet": "denoise",
                                                 "vae_decoder": "decode"}))
        video = pipe(args.prompt, num_frames=args.frames, height=args.size, width=args.size,
                     num_inference_steps=args.steps, seed=0)
    with rec.time("write video"):
        video.save(args.output, fps=8)
    print(f"wrote {args.output}: {args.frames} frames {args.size}x{args.size} from a random-weight {args.preset} model")
    export = load_manifest(engines).extra.get("export_seconds", {})
    s = {**rec.seconds, **stages.seconds}
    print("  " + ", ".join(f"{k} {s[k]:.1f} s" for k in ("build model", "export", "generate", "write video")))
    print("  export: " + ", ".join(f"{k} {v:.1f} s" for k, v in export.items()))
    print(f"  generate: text encoding {s['encode_prompt']:.2f} s, denoising {s['denoise'] / args.steps:.3f} s per step "
          f"x {args.steps}, VAE decode {s['decode']:.2f} s")
    return 0
