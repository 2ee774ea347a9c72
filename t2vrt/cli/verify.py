"""`t2vrt verify DIR`: hash every file the manifest records and read the tokenizer and scheduler config."""

from __future__ import annotations

import sys
import time

from t2vrt.cli.console import add_json, report
from t2vrt.cli.options import HELP


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check every file of an engine directory against its manifest (full sha256)",
                       formatter_class=HELP, description=__doc__)
    p.add_argument("dir", help="engine directory")
    add_json(p, "the files and bytes checked and the seconds (problems still go to stderr, exit 2)")
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
    seconds = round(time.perf_counter() - t0, 2)
    report(args, f"{args.dir}: {files} files ({size / 1e6:.1f} MB) match the manifest, tokenizer and scheduler config "
           f"read ({seconds:.1f} s)", {"dir": args.dir, "files": files, "bytes": size, "seconds": seconds})
    return 0
