"""Where ONNX Runtime's CPU time goes in the UNet, and which session options matter.

    PYTHONPATH=$PWD python benchmarks/ort_options.py --workdir /tmp/t2vrt-bench [--fusion] [--frames 16]

1. a per-operator profile of one UNet call (SessionOptions.enable_profiling), summed by operator type;
2. the same call under several session options, interleaved in one process, median of --reps;
3. the working memory of one call per memory option, each in a fresh process (the arenas keep what they took).
``--fusion`` adds onnxruntime.transformers' UNet optimizer (attention, LayerNorm fusions) as one more option.
The engines come from benchmarks/cpu_small.py's folder (built there if missing).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OPTIONS = {  # name -> (intra-op threads or 0, SessionOptions attributes, config entries, graph file suffix)
    "default (what t2vrt uses)": (0, {}, {}, ""),
    "memory pattern on": (0, {"enable_mem_pattern": True}, {}, ""),
    "no spinning": (0, {}, {"session.intra_op.allow_spinning": "0"}, ""),
    "1 intra-op thread": (1, {}, {}, ""),
    "ORT_PARALLEL, 1 thread per op": (1, {"execution_mode": "ORT_PARALLEL"}, {}, ""),
    "ORT_ENABLE_EXTENDED": (0, {"graph_optimization_level": "ORT_ENABLE_EXTENDED"}, {}, ""),
}
MEMORY = {"default": {}, "memory pattern on": {"enable_mem_pattern": True}, "arena off": {"enable_cpu_mem_arena": False}}


def session(path: Path, threads: int = 0, attrs: dict | None = None, entries: dict | None = None, profile: bool = False):
    import onnxruntime as ort

    from t2vrt.engines.onnxruntime import session_options

    so = session_options(threads or None)  # t2vrt's own options, then the variation
    for k, v in (attrs or {}).items():
        setattr(so, k, getattr(ort.ExecutionMode, v, None) or getattr(ort.GraphOptimizationLevel, v, None) or v
                if isinstance(v, str) else v)
    for k, v in (entries or {}).items():
        so.add_session_config_entry(k, v)
    if profile:
        so.enable_profiling, so.profile_file_prefix = True, "/tmp/t2vrt-ort-profile"
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def feed(frames: int) -> dict:
    rng = np.random.default_rng(0)
    return {"sample": rng.standard_normal((2, 4, frames, 32, 32), np.float32), "timestep": np.array([500.0], np.float32),
            "encoder_hidden_states": rng.standard_normal((2, 77, 256), np.float32)}


def profile(path: Path, frames: int) -> dict[str, float]:
    """Percent of kernel time per operator type in one call after a warm-up."""
    s, f = session(path, profile=True), feed(frames)
    s.run(None, f)
    s.run(None, f)
    events = json.loads(Path(s.end_profiling()).read_text())
    run = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][-1]
    by: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and run["ts"] <= e["ts"] <= run["ts"] + run["dur"]:
            by[e["args"]["op_name"]] += e["dur"]
    total = sum(by.values())
    return {op: round(100 * t / total, 1) for op, t in by.most_common(12)}


def fused_unet(path: Path) -> Path:
    """onnxruntime.transformers' UNet fusions (CPU-capable ones only), with get_num_heads fixed for NumPy 2."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    def get_num_heads(self, reshape_q, is_torch2=False):  # the shipped one calls int() on a 1-element array
        parent = self.model.get_parent(reshape_q, 1)
        value = self.model.get_constant_value(parent.input[2]) if is_torch2 and parent is not None and parent.op_type == "Concat" \
            and len(parent.input) == 4 else None
        return int(np.asarray(value).reshape(-1)[0]) if isinstance(value, np.ndarray) and value.size == 1 else 0

    for name, module in list(sys.modules.items()):
        if name.endswith("fusion_attention_unet"):
            module.FusionAttentionUnet.get_num_heads = get_num_heads
    opts = FusionOptions("unet")
    for k in ("enable_group_norm", "enable_nhwc_conv", "enable_bias_splitgelu", "enable_packed_qkv", "enable_packed_kv",
              "enable_bias_add", "enable_skip_group_norm"):
        setattr(opts, k, False)  # CUDA-only contrib ops
    out = Path(tempfile.gettempdir()) / "t2vrt-unet-fused.onnx"  # never inside the engine directory
    m = optimize_model(str(path), model_type="unet", optimization_options=opts, opt_level=0, use_gpu=False)
    print("fused:", {k: v for k, v in m.get_fused_operator_statistics().items() if v})
    m.save_model_to_file(str(out))
    return out


def timings(path: Path, frames: int, reps: int, fused: Path | None) -> dict[str, float]:
    sessions = {name: session(path, t, a, e) for name, (t, a, e, _) in OPTIONS.items()}
    if fused is not None:
        sessions["transformers optimizer fusions"] = session(fused)
    f, times = feed(frames), {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, f)
    for r in range(reps):
        for name, s in (list(sessions.items()) if r % 2 == 0 else list(sessions.items())[::-1]):
            t0 = time.perf_counter()
            s.run(None, f)
            times[name].append(time.perf_counter() - t0)
    return {name: round(statistics.median(v), 3) for name, v in times.items()}


def memory_child(path: Path, frames: int, name: str) -> dict:
    from t2vrt.bench.measure import PeakMemory

    s, f, mem = session(path, 1, MEMORY[name]), feed(frames), PeakMemory()
    start = mem.current_mb()
    mem.reset()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        s.run(None, f)
        times.append(round(time.perf_counter() - t0, 2))
    return {"peak_growth_mb": round(mem.peak_mb() - start), "held_mb": round(mem.current_mb() - start), "times_s": times}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/t2vrt-bench")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--fusion", action="store_true")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    from cpu_small import small_engines

    unet = small_engines(args.workdir)[1] / "onnx" / "unet" / "model.onnx"
    if args.memory_child:
        print("RESULT " + json.dumps(memory_child(unet, args.frames, args.memory_child)))
        return 0
    from t2vrt.bench.machine import describe, machine

    print(describe(machine()), f"\nUNet, batch 2, {args.frames} frames, 32x32 latents; load {os.getloadavg()}")
    print("profile, % of kernel time:", profile(unet, args.frames))
    print("seconds per call, median of", args.reps, timings(unet, args.frames, args.reps, fused_unet(unet) if args.fusion else None))
    for name in MEMORY:
        out = subprocess.run([sys.executable, __file__, "--workdir", args.workdir, "--frames", str(args.frames), "--memory-child", name],
                             capture_output=True, text=True).stdout
        print(f"memory, {name}:", [x[7:] for x in out.splitlines() if x.startswith("RESULT ")])
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
