"""Peak memory of gathering a >2 GiB graph's loose weight files into one, before and after the streaming gather.

    PYTHONPATH=. python benchmarks/gather_peak.py --model /tmp/t2vrt-scale/model --workdir /tmp/t2vrt-gather

1. exports the UNet with torch alone (gathering switched off): model.onnx plus one file per weight;
2. copies that folder;
3. gathers one copy the previous way (``onnx.load`` with the weights, ``onnx.save_model`` to one file);
4. gathers the other with ``t2vrt.export.external_data.gather_external_data`` (one tensor at a time).
Each step runs in its own process, sampled as in export_scale.py. Needs twice the graph's size on disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from export_scale import machine, run_measured

TORCH_ONLY = (
    "import torch; from t2vrt.export import external_data as ed; ed.gather_external_data = lambda p: None;"
    "from t2vrt.export.load import load_model; from t2vrt.export.modules import module_for;"
    "from t2vrt.export.onnx import export_onnx; from t2vrt.export.exporter import trace_sizes; from t2vrt.components import component_specs;"
    "lm = load_model({model!r}); export_onnx(module_for({name!r}, lm), component_specs(lm.dims)[{name!r}], trace_sizes(lm.dims),"
    " __import__('pathlib').Path({out!r}), vocab=lm.vocab_size)"
)
# The gather of t2vrt before the streaming one (t2vrt/export/onnx.py at 1bf1aa2), verbatim but for the folder argument.
PREVIOUS = (
    "import onnx, pathlib; path = pathlib.Path({path!r});"
    "loose = [p for p in path.parent.iterdir() if p != path];"
    "model = onnx.load(str(path), load_external_data=True);"
    "[p.unlink() for p in loose];"
    "onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + '.data', size_threshold=1024)"
)
CURRENT = "from t2vrt.export.external_data import gather_external_data; gather_external_data(__import__('pathlib').Path({path!r}))"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="diffusers model folder (e.g. the one export_scale.py --keep leaves)")
    p.add_argument("--component", default="unet")
    p.add_argument("--workdir", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(args.workdir)
    a, b = work / "previous" / "model.onnx", work / "current" / "model.onnx"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runs = {"torch export, no gather": run_measured(TORCH_ONLY.format(model=args.model, name=args.component, out=str(a)), work / "torch.log")}
    loose = len(list(a.parent.iterdir())) - 1
    shutil.copytree(a.parent, b.parent)
    runs["gather, previous (onnx.load + save)"] = run_measured(PREVIOUS.format(path=str(a)), work / "previous.log")
    runs["gather, current (streamed)"] = run_measured(CURRENT.format(path=str(b)), work / "current.log")
    sizes = {k: sum(f.stat().st_size for f in d.parent.iterdir()) for k, d in (("previous", a), ("current", b))}
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.component}: {loose} loose weight files; gathered sizes {sizes}")
    print(f"{'step':<38}{'seconds':>9}{'peak RSS GB':>13}{'peak anon GB':>14}")
    for name, r in runs.items():
        print(f"{name:<38}{r['seconds']:>9.1f}{r['peak_rss_gb']:>13.2f}{r['peak_anon_gb']:>14.2f}{'' if r['returncode'] == 0 else '  FAILED'}")
    print(json.dumps({"machine": machine(), "loose_files": loose, "runs": runs, "bytes": sizes}, indent=2))
    return 0 if all(r["returncode"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
