"""Time, peak memory and plan size of one `t2vrt build` in a fresh process (psutil-sampled, children included).

    PYTHONPATH=. python benchmarks/build_scale.py --log /tmp/b.log -- DIR --frames 8:16:64 --height 256:256:256 \
        --width 256:256:256 --flavour tensorrt-rtx --compute-capability sm89 --components unet

Everything after ``--`` is passed to `t2vrt build`. Prints one JSON record: seconds, peak RSS/anon GiB, exit
status, and the size of each plan the build recorded; with --json, appends it to that file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from export_scale import GB, run_measured

log = logging.getLogger("build_scale")
CODE = "import sys; from t2vrt.cli import main; sys.exit(main({argv!r}))"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True, help="the build's output goes here")
    p.add_argument("--json", default=None, help="append the record to this JSON-lines file")
    p.add_argument("build", nargs=argparse.REMAINDER, help="-- then `t2vrt build` arguments")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build = [a for a in args.build if a != "--"]
    rec = {"build": build, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           **run_measured(CODE.format(argv=["build", *build]), Path(args.log))}
    manifest = Path(build[0]) / "manifest.json"
    if rec["returncode"] == 0 and manifest.is_file():
        engines = json.loads(manifest.read_text())["engines"].values()
        rec["plans_gb"] = {e["component"]: round(e["bytes"] / GB, 3) for e in engines}
    print(json.dumps(rec))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(rec) + "\n")
    return rec["returncode"]


if __name__ == "__main__":
    sys.exit(main())
