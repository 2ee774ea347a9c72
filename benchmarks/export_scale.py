"""Time and peak memory of a real-size export, one subprocess per component and one for the whole model.

    PYTHONPATH=. python benchmarks/export_scale.py --preset modelscope-1.7b --workdir /tmp/t2vrt-scale

Builds the random-weight model once (its own subprocess, measured too), then runs ``export_model`` for each
component in a fresh process, and for all of them in one process, sampling the resident memory of the process
and its children with psutil every 0.2 s. Prints a table and writes JSON with the machine and library versions.
RSS counts memory-mapped weight files; "anon" (RSS less shared/file-backed pages) is what the process alone holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("export_scale")
GB = 2**30
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")

BUILD = "from t2vrt.export.random_model import build_model; build_model({out!r}, {preset!r})"
EXPORT = (
    "import logging; logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s');"
    "from t2vrt.export import ExportOptions, export_model;"
    "export_model({model!r}, {out!r}, ExportOptions(components={components!r}, validation={validation!r}, overwrite=True))"
)


class Sampler(threading.Thread):
    """Peak RSS and anonymous RSS of a process tree, sampled every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_rss = self.peak_anon = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.done.is_set():
            rss = anon = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    mi = p.memory_info()
                    rss, anon = rss + mi.rss, anon + mi.rss - getattr(mi, "shared", 0)
            except psutil.NoSuchProcess:
                pass
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            time.sleep(self.period)


def run_measured(code: str, log_path: Path) -> dict:
    """Run ``python -c code`` in a subprocess; wall seconds, peak RSS and anon in GB, exit status."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=logf, stderr=subprocess.STDOUT, env=env)
        sampler = Sampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.done.set()
        sampler.join()
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_gb": round(sampler.peak_rss / GB, 2),
            "peak_anon_gb": round(sampler.peak_anon / GB, 2), "returncode": rc, "log": str(log_path)}


def weights_gb(model: Path) -> dict[str, float]:
    """fp32 size of each component's weights, from the checkpoint headers."""
    from t2vrt.export.weights import stored_numel

    sizes = {src: stored_numel(model / src, "model" if src == "text_encoder" else "diffusion_pytorch_model") for src in ("unet", "vae", "text_encoder")}
    return {k: round(4 * v / GB, 2) for k, v in sizes.items() if v}


def output_record(out: Path) -> dict:
    """Bytes on disk, file count and validation errors of an engine directory."""
    from t2vrt.manifest import load_manifest

    m = load_manifest(out)
    files = [p for p in out.rglob("*") if p.is_file()]
    rec = {"bytes_gb": round(sum(p.stat().st_size for p in files) / GB, 2), "files": len(files), "validation": {}}
    for name, entry in m.components.items():
        v = entry.get("validation", {}).get("fp32")
        if v:
            rec["validation"][name] = {"shape_set": v.get("shape_set"), "sizes": [s["sizes"] for s in v["shapes"]],
                                       "worst_rel_l2": max(o["rel_l2"] for s in v["shapes"] for o in s["outputs"].values())}
    return rec


def machine() -> dict:
    import psutil

    from t2vrt.host import library_versions

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / GB, 1),
            "python": platform.python_version(), "platform": platform.platform(), "versions": library_versions()}


def run_export(name: str, model: Path, work: Path, components: tuple[str, ...], validation: str) -> dict:
    out = work / f"out-{name}"
    code = EXPORT.format(model=str(model), out=str(out), components=components, validation=validation)
    log.info("exporting %s ...", name)
    rec = {"name": name, "components": list(components), **run_measured(code, work / f"export-{name}.log")}
    if rec["returncode"] == 0:
        rec.update(output_record(out))
    shutil.rmtree(out, ignore_errors=True)
    log.info("%s: %s", name, rec)
    return rec


def print_table(results: dict) -> None:
    w = results["weights_fp32_gb"]
    print(f"\nfp32 weights: {w}  (limit: 2 x largest = {2 * max(w.values()):.2f} GB)")
    print(f"{'step':<14}{'seconds':>9}{'peak RSS GB':>13}{'peak anon GB':>14}{'output GB':>11}  validation (worst rel L2, shapes)")
    for r in results["runs"]:
        val = "; ".join(f"{k} {v['worst_rel_l2']:.1e} {v['shape_set']}" for k, v in r.get("validation", {}).items())
        status = "" if r["returncode"] == 0 else f"  FAILED rc={r['returncode']} (see {r['log']})"
        print(f"{r['name']:<14}{r['seconds']:>9.1f}{r['peak_rss_gb']:>13.2f}{r['peak_anon_gb']:>14.2f}{r.get('bytes_gb', 0):>11.2f}  {val}{status}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="modelscope-1.7b")
    p.add_argument("--workdir", default=None, help="model and outputs go here (default: a new temporary folder)")
    p.add_argument("--components", nargs="*", default=list(COMPONENTS), choices=COMPONENTS, help="one process each")
    p.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True, help="also all components in one process")
    p.add_argument("--validation", default="auto", choices=["auto", "standard", "small"])
    p.add_argument("--keep", action="store_true", help="keep the built model in workdir")
    p.add_argument("--json", default=None, help="write results here too")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="t2vrt-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "preset": args.preset, "machine": machine(), "runs": []}
    if not (model / "model_index.json").is_file():
        results["runs"].append({"name": "build model", **run_measured(BUILD.format(out=str(model), preset=args.preset), work / "build.log")})
    results["weights_fp32_gb"] = weights_gb(model)
    for name in args.components:
        results["runs"].append(run_export(name, model, work, (name,), args.validation))
    if args.whole:
        results["runs"].append(run_export("whole", model, work, tuple(args.components), args.validation))
    if not args.keep:
        shutil.rmtree(model, ignore_errors=True)
    print_table(results)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["returncode"] == 0 for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
