"""The t2vrt command line: export, build, generate, upscale, bench, inspect, demo.

One module per command (its parser and its run), the option groups they share in options.py.
"""

from __future__ import annotations

import argparse
import logging
import sys

from t2vrt.errors import T2VError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser; the command modules import only what their own options need."""
    from t2vrt.cli import bench, build, demo, export, generate, inspect, upscale
    from t2vrt.cli.options import HELP

    parser = argparse.ArgumentParser(prog="t2vrt", description=__doc__.splitlines()[0], formatter_class=HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (export, build, generate, upscale, bench, inspect, demo):  # the order `t2vrt --help` lists
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its exit code; a T2VError is one line on stderr and exit code 2 (as argparse's errors)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return args.func(args)
    except T2VError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

