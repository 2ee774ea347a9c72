"""`t2vrt verify DIR`: hash every file the manifest records and read the tokenizer and scheduler config."""

from __future__ import annotations

import sys
import time

from t2vrt.cli.options import HELP


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check every file of an engine directory against its manifest (full sha256)",
                       formatter_class=HELP, description=__doc__)
    p.add_argument("dir", help="engine directory")
    p.set_defaults(func=run)


def run(args) -> int:
    """Exit 0 when every file matches, else one line per problem on stderr and exit 2."""
    from t2vrt.integrity import verify

    t0 = time.perf_counter()
    problems, files, size = verify(args.dir)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.dir}: {files} files ({size / 1e6:.1f} MB) match the manifest, tokenizer and scheduler config read "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
