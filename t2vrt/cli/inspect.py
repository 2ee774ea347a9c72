"""`t2vrt inspect DIR`: what an engine directory holds and serves, and any problem its files have (exit 2), for
people; --json for programs."""

from __future__ import annotations

import json
from pathlib import Path

from t2vrt.cli.console import add_json
from t2vrt.cli.options import HELP
from t2vrt.errors import T2VError
from t2vrt.integrity import read_json_file
from t2vrt.manifest_checks import graph_records

RANGE_FIELDS = ("batch", "frames", "height", "width", "decode_chunk")


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="show what an engine directory holds and serves", formatter_class=HELP)
    p.add_argument("dir", help="engine directory")
    add_json(p, "the summary below, the problems found and the whole manifest")
    p.set_defaults(func=run)


def mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.1f} MiB"


def validation(entry: dict, precision: str) -> dict:
    """The worst relative L2 of the export's comparison with PyTorch, and its tolerance (empty if not validated)."""
    return worst(entry.get("validation", {}).get(precision))


def worst(v: dict | None) -> dict:
    """A validation record's worst relative L2, tolerance and number of shapes (empty if none)."""
    if not v or not v.get("shapes"):
        return {}
    worst = max(o["rel_l2"] for s in v["shapes"] for o in s["outputs"].values())
    return {"worst_rel_l2": worst, "tolerance": v.get("tolerance"), "shapes": len(v["shapes"])}


def summary(root: Path, m) -> dict:
    """What a person asks of an engine directory, as plain values (the --json output and the lines below)."""
    native = m.model.sample_size * m.model.vae_scale
    try:
        scheduler = read_json_file(root, m.scheduler_config, "scheduler config").get("_class_name", "?")
    except T2VError:
        scheduler = "? (scheduler_config.json unreadable)"
    files = {}
    for name, entry in m.components.items():
        for precision, label, rec in graph_records(entry):
            size = rec.get("bytes", 0) + rec.get("external_data", {}).get("bytes", 0)
            checked = validation(entry, precision) if label == precision else worst(rec.get("validation"))
            fused = {"fused_ops": rec["fused_ops"]} if "fused_ops" in rec else {}
            files[f"{name} {label}"] = {"path": rec["path"], "bytes": size, **checked, **fused}
    engines = [engine_summary(r) for r in m.engines.values()]
    return {"dir": str(root), "model": m.source, "native_size": [native, native], "default_frames": 16,
            "size_multiple": m.model.size_multiple, "scheduler": scheduler,
            "profile": {f: list(getattr(m.profile, f)) for f in RANGE_FIELDS},
            "clip_skip": any(t["name"] == "hidden_states"
                             for t in m.components.get("text_encoder", {}).get("io", {}).get("outputs", [])),
            "components": list(m.components), "files": files, "engines": engines,
            "revision": m.extra.get("revision"), "variant": m.extra.get("variant")}


def engine_summary(r: dict) -> dict:
    """One engine record as plain values: its size buckets and, for one plan per bucket, why it is one."""
    from t2vrt.engines.buckets import record_sizes

    buckets = [str(s) for s in record_sizes(r)] if r.get("profile") else []
    return {"component": r.get("component"), "precision": r.get("precision"), "flavour": r.get("flavour"),
            "trt_version": r.get("trt_version"), "gpu": r.get("compute_capability"), "path": r.get("path"),
            "bytes": r.get("bytes"), "profile": r.get("profile"), "buckets": buckets,
            "plan_per_bucket": r.get("plan_per_bucket")}


def engine_line(e: dict) -> str:
    """``engine unet fp16 tensorrt-rtx 1.7.1 sm89 1.2 MiB size buckets 256x256, 576x320; batch 1:1:1, frames ...``"""
    gpu = ",".join(e["gpu"] or []) or "?"
    profile, where = dict(e["profile"] or {}), ""
    if e.get("buckets"):
        profile = {f: r for f, r in profile.items() if f not in ("height", "width")}
        where = f"size bucket{'s' if len(e['buckets']) > 1 else ''} {', '.join(e['buckets'])}"
        if e.get("plan_per_bucket"):
            why = "as asked" if e["plan_per_bucket"] == "requested" else "one engine failed to build"
            where += f" (one plan per bucket, {why})"
        where += "; "
    return (f"  engine     {e['component']} {e['precision']} {e['flavour']} {e['trt_version']} {gpu} "
            f"{mib(e['bytes'])} {where}{ranges(profile)}")


def ranges(profile: dict) -> str:
    return ", ".join(f"{f} {':'.join(map(str, r))}" for f, r in profile.items())


def text(s: dict) -> list[str]:
    n = s["native_size"]
    src = s["model"] + "".join(f", {k} {s[k]}" for k in ("revision", "variant") if s[k])
    lines = [f"engine directory {s['dir']}",
             f"  model      {src}",
             f"  native     {n[1]}x{n[0]} (width x height), {s['default_frames']} frames: the default call; "
             f"sizes in multiples of {s['size_multiple']}",
             f"  scheduler  {s['scheduler']} (the model's own; generate --scheduler picks another)",
             f"  profile    {ranges(s['profile'])} (MIN:OPT:MAX)",
             "  clip_skip  "
             f"{'served' if s['clip_skip'] else 'not served (exported before t2vrt exported hidden states)'}",
             "  files"]
    for k, v in s["files"].items():
        checked = (f"  validated {k.split(' ', 1)[1]}: worst relative L2 {v['worst_rel_l2']:.1e} (tolerance "
                   f"{v['tolerance']:g})" if "worst_rel_l2" in v else "  not validated")
        lines.append(f"    {k:<22} {mib(v['bytes']):>12}  {v['path']}{checked}")
        if "fused_ops" in v:
            lines.append(f"    {'':<22} {'':>12}  ONNX Runtime CPU only, fused "
                         f"{', '.join(f'{n} {op}' for op, n in v['fused_ops'].items())}")
    if not s["engines"]:
        lines.append("  engines    none built (t2vrt build DIR builds TensorRT engines)")
    lines += [engine_line(e) for e in s["engines"]]
    return lines


def run(args) -> int:
    from t2vrt.manifest import load_manifest

    root = Path(args.dir)
    m = load_manifest(root)
    s = summary(root, m)
    problems = find_problems(root, m)
    if args.json:
        print(json.dumps({**s, "problems": problems, "manifest": m.to_json()}, indent=2, default=str))
    else:
        print("\n".join(text(s) + problem_lines(problems)))
    return 2 if problems else 0


def find_problems(root: Path, m) -> list[str]:
    """The load-time checks (sizes; sha256 of files the stamp does not vouch for; tokenizer, scheduler config)."""
    from t2vrt.integrity import check_files, hashed_files, readable_problems

    return check_files(root, hashed_files(m)) + readable_problems(root, m)


def problem_lines(problems: list[str]) -> list[str]:
    """One line per problem (the command exits 2), or that none were found."""
    if not problems:
        return ["  integrity  no problems found (`t2vrt verify DIR` re-hashes every file)"]
    return [f"  problem    {line}" for line in problems] + [f"  {len(problems)} problem(s) found"]
