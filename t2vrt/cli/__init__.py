"""The t2vrt command line: export, build, generate, upscale, batch, serve, bench, inspect, verify, selftest, demo.

One module per command (its parser and its run), the option groups they share in options.py.
"""

from __future__ import annotations

import argparse
import sys

from t2vrt.errors import T2VError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser; the command modules import only what their own options need."""
    from t2vrt.cli import batch, bench, build, demo, export, generate, inspect, selftest, serve, upscale, verify
    from t2vrt.cli.console import add_verbosity
    from t2vrt.cli.options import HELP

    parser = argparse.ArgumentParser(prog="t2vrt", description=__doc__.splitlines()[0], formatter_class=HELP)
    add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    # `t2vrt --help`'s order
    for command in (export, build, generate, upscale, batch, serve, bench, inspect, verify, selftest, demo):
        command.add_parser(sub)
    for p in sub.choices.values():
        add_verbosity(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its exit code; a T2VError is one line on stderr and exit code 2 (as argparse's errors)."""
    from t2vrt.cli.console import console
    from t2vrt.textcheck import utf8_problem

    for i, arg in enumerate(sys.argv[1:] if argv is None else argv, 1):  # before argparse, before anything loads
        why = utf8_problem(arg)
        if why:
            print(f"error: argument {i} ({arg.encode('utf-8', 'backslashreplace').decode()[:60]!r}): {why}; "
                  "give text that encodes as UTF-8", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    with console(args.verbosity):
        try:
            return args.func(args)
        except T2VError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

