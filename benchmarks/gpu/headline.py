"""GPU command 1 (at most 6 minutes): the headline rows.

    python3 -m benchmarks.gpu.headline OUT_DIR --trtexec /tmp/trt/trt860_sm90/bin/trtexec

Phases, in order of value, each within what is left of ``--budget`` (300 s; a phase that says it needs more is not
started, one that runs past the end is stopped) and OUT_DIR/headline.json rewritten after each:
  1. model: the random-weight model built and exported on this machine (`t2vrt export PRESET --random-weights`,
     fp32 + fp16 graphs, no validation): the real-size ModelScope architecture if its estimated headline phases fit
     the budget, else the ``small`` preset (the JSON says which and why);
  2. main: t2vrt on ONNX Runtime CUDA fp16 against diffusers eager fp16, 256x256, 16 frames, 25 DDIM steps,
     guidance 9, one warm-up and --runs measured runs each, alternated; per-stage times, peak GPU memory as the
     device reports it (NVML), PSNR/SSIM/NaN/black frames, the UNet step's GFLOP/s against the GPU's measured
     matrix-product peak (`t2vrt bench`'s session);
  3. trtexec: TensorRT 8.6's fp16 engine of that UNet at exactly that shape (batch 2, 16 frames: a static build is
     the quickest), its step timed with CUDA graphs, beside phase 2's UNet steps;
  4. gpu_tests: the `gpu`-marked tests (real TensorRT / ONNX Runtime CUDA runners) when pytest is installed (its
     wheels travel in .whl), killed at the budget.
The same command on the CPU, for a check before any GPU time: ``--device cpu --preset tiny --precision fp32
--frames 2 --size 32 --steps 2 --runs 1`` (tests/bench/test_gpu_scripts.py runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.gpu.common import ESTIMATE_S, make_model, parser, phase_trtexec, setup, trtexec_lines, write_summary


def phase_main(args, model: dict) -> dict:
    from t2vrt.bench.runs import BenchRequest
    from t2vrt.bench.session import BenchConfig, run_bench

    request = BenchRequest(num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=args.steps)
    config = BenchConfig(engines=model["engines"], diffusers=model["model"], runs=args.runs, warmup=1,
                         backend="onnxruntime", precision=args.precision, device=args.device, fp16_check=False,
                         threads=args.threads)
    return run_bench(config, request)


def phase_gpu_tests(args, phases) -> dict:
    """The gpu-marked engine tests, in a child killed at the budget; skipped without pytest on this machine."""
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        return {"skipped": "pytest is not installed here"}
    rec = phases.child([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"])
    text = rec.pop("stdout") or ""
    return {**rec, "tail": text[-3000:]}


def summary(res: dict) -> str:
    from t2vrt.bench.machine import describe
    from t2vrt.bench.report import headline, table

    model = res.get("model") or {}
    lines = [f"# GPU headline: {model.get('preset', '?')} random weights ({model.get('why', '')}), "
             f"{res['args']['precision']}", "", "```", describe(res["machine"]), "```", ""]
    main = res.get("main")
    if main:
        r = main["request"]
        lines += [f"{r['num_frames']} frames {r['width']}x{r['height']}, {r['num_inference_steps']} steps, "
                  f"{main['config']['runs']} runs after a warm-up, median [min-max]", "", table(main), "",
                  headline(main), ""]
    lines += trtexec_lines(res)
    tests = res.get("gpu_tests")
    if tests:
        lines.append(f"gpu tests: {tests.get('skipped') or tests['tail'].strip().splitlines()[-1:]}")
    lines += ["", f"phase seconds: {res['phase_s']}", f"errors: {res['errors'] or 'none'}",
              f"wall {res['wall_s']:.0f} s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    import time

    started = time.perf_counter()
    args = parser(__doc__, budget=300.0).parse_args(argv)
    ort = setup(args)
    from t2vrt.bench.harness import Phases

    out = Path(args.out)
    phases = Phases(out / "headline.json", args.budget, {"args": vars(args), "onnxruntime": ort}, started=started)
    model = phases("model", lambda: make_model(args, phases))
    if model:
        need = ESTIMATE_S.get(model["preset"], {})  # not started when clearly short of time: its JSON says so
        phases("main", lambda: phase_main(args, model), need_s=need.get("run", 0))
        if args.trtexec:
            f = (args.frames,) * 3
            phases("trtexec", lambda: phase_trtexec(args, model["engines"], phases, f, f),
                   need_s=need.get("trtexec", 0) / 2)
    if args.device.startswith("cuda"):
        phases("gpu_tests", lambda: phase_gpu_tests(args, phases))
    phases.save()
    write_summary(out, summary(phases.res))
    return 1 if phases.res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
