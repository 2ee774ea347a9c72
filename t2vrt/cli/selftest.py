"""`t2vrt selftest [DIR]`: every backend available here, checked against ONNX Runtime CPU fp32."""

from __future__ import annotations

import argparse

from t2vrt.cli.options import HELP
from t2vrt.errors import InputError


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--budget-s {text}: give a number of seconds above 0, e.g. --budget-s 300")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "selftest", help="check this install: every available backend against ONNX Runtime CPU fp32",
        formatter_class=HELP,
        description="Find the backends available here (ONNX Runtime CPU and CUDA, TensorRT or TensorRT-RTX, "
                    "OpenVINO), build what they need (TensorRT engines, two size buckets; without a GPU a "
                    "TensorRT-RTX build for sm89), run every component on the same seeded feeds and compare them "
                    "with Polygraphy's comparator against ONNX Runtime CPU fp32, run one generation per backend "
                    "(PSNR, NaN, black frames), time a UNet step. Prints one table; exit 0 only when every "
                    "available backend passes. The engine directory is never changed (a private copy is used).",
    )
    p.add_argument("dir", nargs="?", default=None,
                   help="engine directory made by `t2vrt export` (only the runtime and the backends' packages are "
                        "needed); without it a tiny random-weight model is exported first (the export extra)")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT",
                   help="also write every backend, check, comparator error, tolerance and timing to OUT ('-': stdout "
                        "instead of the table)")
    p.add_argument("--budget-s", type=_seconds, default=600.0, metavar="N",
                   help="checks that would start after N seconds are not run (listed, and the exit code is 1)")
    p.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                   help="check only these backends (name prefixes, e.g. tensorrt,onnxruntime-cuda); the reference "
                        "(ONNX Runtime CPU fp32) is computed either way")
    p.add_argument("--keep", action="store_true", help="keep the temporary engine directory the checks ran in")
    p.set_defaults(func=run)


def _check_output(path: str | None) -> None:
    from pathlib import Path

    if path in (None, "-"):
        return
    out = Path(path)
    if out.is_dir():
        raise InputError(f"--json {path} is a folder; give a file name, e.g. --json {out / 'selftest.json'}")
    if not out.parent.is_dir():
        raise InputError(f"--json {path}: folder {out.parent} does not exist; create it or choose another path")


def run(args) -> int:
    import json
    import sys

    from t2vrt.selftest import SelftestOptions, run_selftest
    from t2vrt.selftest.report import table, to_json, write_json

    _check_output(args.json_out)  # before any model runs
    only = tuple(n.strip() for n in (args.only or "").split(",") if n.strip())
    reports, extra = run_selftest(args.dir, SelftestOptions(budget_s=args.budget_s, only=only, keep=args.keep))
    record = to_json(reports, extra)
    if args.json_out == "-":
        print(json.dumps(record, default=str))
    else:
        print(table(reports))
        results = {c["result"] for b in record["backends"] for c in b["checks"]}
        verdict = ("every available backend passed" if record["passed"] else
                   "a check FAILED (see above)" if "fail" in results else "not every check ran (see above)")
        print(f"\n{verdict} ({record['seconds']:.0f} s; reference: {record['reference']})")
        if args.json_out:
            write_json(args.json_out, record)
    sys.stdout.flush()
    return 0 if record["passed"] else 1
