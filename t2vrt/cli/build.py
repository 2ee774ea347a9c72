"""`t2vrt build DIR`: strongly typed TensorRT engines from an engine directory's ONNX graphs."""

from __future__ import annotations

import argparse

from t2vrt.cli.console import add_json, report
from t2vrt.cli.options import HELP, range_arg
from t2vrt.components import TEXT_TO_VIDEO
from t2vrt.errors import InputError


def _range_or_export(text: str):
    """MIN:OPT:MAX, or "export" (None): the range the model was exported with."""
    return None if text == "export" else range_arg(text)


def _size_range(text: str):
    """A height or width range: one profile over it instead of size buckets ("export": the export profile's)."""
    return "export" if text == "export" else range_arg(text)


def _sizes(text: str):
    from t2vrt.engines.buckets import parse_sizes

    try:
        return parse_sizes(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub) -> argparse.ArgumentParser:
    from t2vrt.engines.tensorrt.env import FLAVOURS

    p = sub.add_parser(
        "build", help="build TensorRT engines for an engine directory", formatter_class=HELP,
        description="Build strongly typed TensorRT engines: one optimization profile per size bucket (--sizes), frames "
                    "and batch dynamic inside each, or one profile over --height/--width ranges. Ranges are "
                    "MIN:OPT:MAX "
                    "('export': the range the model was exported with). A build whose inputs did not change is "
                    "skipped.",
    )
    p.add_argument("dir", help="engine directory made by `t2vrt export`")
    p.add_argument("--frames", type=_range_or_export, default="export", metavar="MIN:OPT:MAX", help="frames per video")
    p.add_argument("--sizes", type=_sizes, default=None, metavar="WxH[,WxH...]",
                   help="size buckets, WIDTHxHEIGHT (e.g. 256x256,576x320): one optimization profile each, frames and "
                        "batch dynamic inside each; default: the export profile's opt size and the model's native size")
    p.add_argument("--plan-per-bucket", action="store_true",
                   help="one plan per size bucket instead of one engine with a profile per bucket (done by itself, "
                        "with a warning, when TensorRT cannot build the buckets into one engine)")
    p.add_argument("--height", type=_size_range, default=None, metavar="MIN:OPT:MAX",
                   help="a height range in pixels, one profile over it, instead of --sizes ('export': the export "
                   "range)")
    p.add_argument("--width", type=_size_range, default=None, metavar="MIN:OPT:MAX",
                   help="a width range in pixels, one profile over it, instead of --sizes ('export': the export range)")
    p.add_argument("--batch", type=lambda v: None if v == "export" else int(v), default="export", metavar="N",
                   help="largest prompt batch (the UNet and text encoder see twice it)")
    p.add_argument("--decode-chunk", type=_range_or_export, default="export", metavar="MIN:OPT:MAX",
                   help="frames per VAE decoder call")
    p.add_argument("--flavour", choices=FLAVOURS, default="auto", help="TensorRT package to build with")
    p.add_argument("--compute-capability", default="current", metavar="SM[,SM...]",
                   help="GPU targets, comma separated (e.g. sm89 or sm86,sm89; several with tensorrt-rtx only); "
                        "'current' is this machine's GPU")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="graph precision to build from")
    p.add_argument("--opt-level", type=int, choices=range(6), default=3, help="builder optimization level")
    p.add_argument("--max-workspace", type=int, default=None, metavar="MIB",
                   help="limit TensorRT's scratch memory per layer (the GPU's memory if omitted); a tactic needing "
                   "more is skipped")
    p.add_argument("--components", default=",".join(TEXT_TO_VIDEO), metavar="NAME[,NAME...]",
                   help="components to build, comma separated")
    add_json(p, "each engine's record (path, cached, seconds)")
    p.set_defaults(func=run)
    return p


def options_from(args):
    """BuildOptions from the parsed arguments."""
    from t2vrt.engines.tensorrt.build import BuildOptions

    return BuildOptions(
        sizes=args.sizes, plan_per_bucket=args.plan_per_bucket,
        frames=args.frames, height=args.height, width=args.width, batch=args.batch, decode_chunk=args.decode_chunk,
        flavour=args.flavour, precision=args.precision, opt_level=args.opt_level, max_workspace_mb=args.max_workspace,
        compute_capability=tuple(t.strip() for t in args.compute_capability.split(",") if t.strip()),
        components=tuple(c.strip() for c in args.components.split(",") if c.strip()),
    )


def run(args) -> int:
    from t2vrt.engines.tensorrt import build as tensorrt_build

    results = tensorrt_build.build_engines(args.dir, options_from(args))
    if getattr(args, "json", False):
        report(args, "", {"dir": args.dir, "engines": results})
        return 0
    for name, r in results.items():
        for plan in r.get("plans", [r]):  # one plan per size bucket: a line each
            status = "cached" if plan["cached"] else f"built in {plan['seconds']:.1f} s"
            bucket = f" (size bucket {plan['size']})" if "size" in plan else ""
            print(f"{name:14s} {status:18s} {plan['path']}{bucket}")
    return 0
