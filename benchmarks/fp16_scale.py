"""Time and peak memory of the fp16 conversion and fp16 validation of each component of an exported engine dir.

    PYTHONPATH=. python benchmarks/fp16_scale.py /tmp/big2/ms --workdir /tmp/big2/fp16

For each component with an fp32 graph, a fresh process (sampled by export_scale's psutil Sampler) converts it
with ``export_fp16``, then runs the fp16 graph in ONNX Runtime at the export's validation sizes, then the fp32
graph at the same inputs as the reference. The process logs its peak RSS (getrusage) after each phase, so the
table gives the conversion's peak and the fp16 validation's peak apart from the fp32 reference run's.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from export_scale import GB, machine, run_measured

log = logging.getLogger("fp16_scale")
CHILD = "import sys; sys.argv = ['fp16_scale', {root!r}, {name!r}, {dst!r}, {shape_set!r}]; import runpy; runpy.run_path({me!r}, run_name='child')"


def child(root: Path, name: str, dst: Path, shape_set: str) -> None:
    """Convert, run fp16, run fp32; print one JSON line of seconds and peaks per phase."""
    import time

    from t2vrt.engines.onnxruntime import OrtRunner
    from t2vrt.export.exporter import validation_sizes
    from t2vrt.export.fp16 import export_fp16
    from t2vrt.export.onnx import sample_inputs
    from t2vrt.export.validate import rel_l2
    from t2vrt.host import peak_rss_bytes, release_memory
    from t2vrt.manifest import load_manifest

    m = load_manifest(root)
    spec, rec = m.spec(name), {"component": name}
    t0 = time.perf_counter()
    export_fp16(m.onnx_path(root, name, "fp32"), dst, name)
    rec["convert_s"], rec["convert_peak_gb"] = round(time.perf_counter() - t0, 1), round(peak_rss_bytes() / GB, 2)
    feeds = [{t.name: a.numpy() for t, a in zip(spec.inputs, sample_inputs(spec, s, seed=100 + k, vocab=1000))}
             for k, s in enumerate(validation_sizes(m.model, shape_set == "small"))]
    outs = {}
    for precision, path in (("fp16", dst), ("fp32", m.onnx_path(root, name, "fp32"))):
        t0 = time.perf_counter()
        runner = OrtRunner(path, spec, providers=["CPUExecutionProvider"])
        outs[precision] = [runner.infer(f) for f in feeds]
        runner.close()
        del runner
        release_memory()
        rec[f"{precision}_run_s"], rec[f"{precision}_peak_gb"] = round(time.perf_counter() - t0, 1), round(peak_rss_bytes() / GB, 2)
    rec["rel_l2"] = max(rel_l2(a[k], b[k]) for a, b in zip(outs["fp16"], outs["fp32"]) for k in a)
    rec["fp16_bytes_gb"] = round(sum(p.stat().st_size for p in dst.parent.glob(dst.name + "*")) / GB, 2)
    print("RESULT " + json.dumps(rec), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="engine directory with fp32 graphs")
    p.add_argument("--workdir", required=True, help="fp16 graphs and logs go here (removed after each component)")
    p.add_argument("--components", nargs="*", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root, work = Path(args.dir), Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((root / "manifest.json").read_text())
    results = {"command": " ".join(["fp16_scale.py", *(argv if argv is not None else sys.argv[1:])]),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "runs": []}
    for name in args.components or list(manifest["components"]):
        shape_set = manifest["components"][name].get("validation", {}).get("fp32", {}).get("shape_set", "small")
        dst = work / name / "model_fp16.onnx"
        code = CHILD.format(root=str(root), name=name, dst=str(dst), shape_set=shape_set, me=str(Path(__file__).resolve()))
        run = run_measured(code, work / f"{name}.log")
        lines = [x for x in Path(run["log"]).read_text().splitlines() if x.startswith("RESULT ")]
        rec = {**(json.loads(lines[-1][7:]) if lines else {"component": name}), "shape_set": shape_set, **run}
        results["runs"].append(rec)
        log.info("%s", rec)
        shutil.rmtree(work / name, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["returncode"] == 0 for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
elif __name__ == "child":
    child(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4])
