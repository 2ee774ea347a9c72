"""`t2vrt export MODEL -o DIR`: a diffusers model (or a random-weight preset) -> an engine directory."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from t2vrt.cli.console import add_json, report
from t2vrt.cli.options import HELP, add_profile_args, profile_from
from t2vrt.components import COMPONENTS, TEXT_TO_VIDEO
from t2vrt.errors import InputError
from t2vrt.presets import PRESETS

FF_SLICES = 8  # --ff-chunking without a number


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a diffusers model to an engine directory", formatter_class=HELP)
    p.add_argument("model", help="diffusers model folder or hub id (with --random-weights: a preset name)")
    p.add_argument("-o", "--output", required=True, help="engine directory to write")
    add_profile_args(p)
    p.add_argument("--revision", default=None, help="of a hub id: a branch, tag or commit; omitted: main")
    p.add_argument("--variant", default=None, choices=["fp16"],
                   help="read the *.fp16.safetensors weights (as diffusers' variant='fp16'); a folder holding only "
                   "those is read without it")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "fp16"], help="graph precisions")
    p.add_argument("--components", nargs="+", default=list(TEXT_TO_VIDEO), choices=COMPONENTS,
                   help="components to export; add vae_encoder for video-to-video (upscale)")
    p.add_argument("--no-validate", action="store_true", help="skip the comparison with PyTorch")
    p.add_argument("--validation", default="auto", choices=["auto", "standard", "small"],
                   help="validation shapes; auto: small for components over 250 M parameters (the real UNet on a CPU)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine directory")
    p.add_argument("--add", action="store_true",
                   help="add --components to the existing engine directory -o (exported from MODEL), at its profile "
                        "and precisions, leaving its other components as they are (e.g. --components vae_encoder "
                        "--add for `upscale`)")
    p.add_argument("--ff-chunking", type=int, nargs="?", const=FF_SLICES, default=0, metavar="SLICES",
                   help=f"compute the UNet's feed-forward layers in SLICES pieces (alone: {FF_SLICES}) to lower its "
                   "peak memory")
    p.add_argument("--ort-fusion", action=argparse.BooleanOptionalAction, default=None,
                   help="also write a UNet graph with ONNX Runtime's attention fusion, which the onnxruntime backend "
                        "runs on the CPU (4-8%% faster; TensorRT and CUDA read the portable graph); default: when the "
                        "fp32 UNet's weights fit inline (under 1 GiB), not for the real-size UNet (5.6 GB more on "
                        "disk, about 31 GiB of memory while it is made)")
    p.add_argument("--random-weights", action="store_true",
                   help=f"MODEL is a preset ({', '.join(PRESETS)}) built with random weights")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load .bin (pickle) checkpoints, which can run code; safetensors need no flag")
    p.add_argument("--keep-model", metavar="DIR", default=None,
                   help="with --random-weights: also keep the random-weight diffusers folder in DIR (a new folder), "
                        "for `bench --diffusers`, video-to-video trials and diffusers' own pipelines")
    add_json(p, "the engine directory written and the seconds")
    p.set_defaults(func=run)


def run(args) -> int:
    from t2vrt.export import ExportOptions, export_model

    if args.random_weights and args.model not in PRESETS:
        raise InputError(f"--random-weights needs a preset name as MODEL; choose one of {', '.join(PRESETS)}")
    if args.keep_model is not None and not args.random_weights:
        raise InputError("--keep-model keeps the folder --random-weights builds; MODEL is a folder already without it")
    if args.keep_model is not None and Path(args.keep_model).exists():
        raise InputError(f"--keep-model {args.keep_model} exists; give a new folder (nothing is replaced)")
    if args.add:
        return _add(args)
    if args.random_weights:
        from t2vrt.export.exporter import _check_target

        _check_target(Path(args.output).resolve(), args.overwrite)  # before the model is built, not after
    opts = ExportOptions(
        components=tuple(args.components), profile=profile_from(args), precisions=tuple(args.precision),
        validate=not args.no_validate, validation=args.validation, overwrite=args.overwrite, ff_chunks=args.ff_chunking,
        ort_fusion=args.ort_fusion, allow_pickle=args.allow_pickle, revision=args.revision, variant=args.variant,
    )
    t0 = time.perf_counter()
    if args.random_weights and args.keep_model is not None:
        from t2vrt.export.random_model import build_model

        out = export_model(str(build_model(args.keep_model, args.model, seed=args.seed)), args.output, opts)
    elif args.random_weights:
        from t2vrt.export.random_model import build_model

        with tempfile.TemporaryDirectory(prefix="t2vrt-model-") as tmp:
            out = export_model(str(build_model(tmp, args.model, seed=args.seed)), args.output, opts)
    else:
        out = export_model(args.model, args.output, opts)
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"exported {args.model} to {out} in {seconds:.1f} s",
           {"model": args.model, "output": str(out), "revision": args.revision, "variant": args.variant,
            "components": list(args.components), "precisions": list(args.precision), "seconds": seconds})
    return 0


def _add(args) -> int:
    """`--add`: export the given components into the existing directory (t2vrt.export.add)."""
    from t2vrt.export import ExportOptions
    from t2vrt.export.add import add_components

    if args.overwrite or args.random_weights:
        other = "--overwrite" if args.overwrite else "--random-weights (give the model folder it recorded)"
        raise InputError(f"--add keeps the directory and adds to it; it does not go with {other}")
    given = [f for f, v in (("--frames", args.frames), ("--height", args.height), ("--width", args.width),
                            ("--precision", args.precision != ["fp32"] or None)) if v is not None]
    if given:
        raise InputError(f"--add exports at the directory's own profile and precisions; leave out {', '.join(given)} "
                         "(or re-export the whole directory with --overwrite)")
    opts = ExportOptions(components=tuple(args.components), validate=not args.no_validate, validation=args.validation,
                         ff_chunks=args.ff_chunking, ort_fusion=args.ort_fusion, allow_pickle=args.allow_pickle,
                         revision=args.revision, variant=args.variant)
    t0 = time.perf_counter()
    out = add_components(args.model, args.output, opts)
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"added {', '.join(args.components)} of {args.model} to {out} in {seconds:.1f} s",
           {"model": args.model, "output": str(out), "added": list(args.components), "seconds": seconds})
    return 0
