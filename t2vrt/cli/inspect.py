"""`t2vrt inspect DIR`: what an engine directory holds."""

from __future__ import annotations

import json

from t2vrt.cli.options import HELP


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show an engine directory's manifest", formatter_class=HELP)
    p.add_argument("dir")
    p.add_argument("--json", action="store_true", help="print the raw manifest")
    p.set_defaults(func=run)


def run(args) -> int:
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
