"""Time UNet ONNX graphs against each other on ONNX Runtime's CPU provider, alternating in one process.

Each graph gets one session with t2vrt's own session options; every round runs each graph once, in turn, so the
machine's drift falls on all of them alike. Prints the median and every call per graph, and how far each graph's
output is from the first's (relative L2: 0.0 for a rewrite that only moves data).

    python -m benchmarks.onnx_ab BASE.onnx REWRITTEN.onnx [...] --frames 16 --size 256 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def feed_for(session, frames: int, latent: int, seed: int = 0) -> dict:
    """The text-to-video request's UNet call under guidance: batch 2, ``frames`` frames, square latents."""
    rng = np.random.default_rng(seed)
    inputs = {i.name: i for i in session.get_inputs()}
    width = inputs["encoder_hidden_states"].shape[-1]
    channels = inputs["sample"].shape[1]
    stamp = np.float32 if "float" in inputs["timestep"].type else np.int64
    return {"sample": rng.standard_normal((2, channels, frames, latent, latent), dtype=np.float32),
            "timestep": np.array([500], dtype=stamp),
            "encoder_hidden_states": rng.standard_normal((2, 77, width), dtype=np.float32)}


def main(argv=None) -> int:
    import onnxruntime as ort

    from t2vrt.bench.machine import describe, machine
    from t2vrt.engines.onnxruntime import session_options

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graphs", nargs="+", help="UNet ONNX files (fp32)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="pixels (latents: size / 8)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads; omitted: ONNX Runtime's default")
    a = p.parse_args(argv)
    sessions = [
        ort.InferenceSession(g, session_options(a.threads), providers=["CPUExecutionProvider"]) for g in a.graphs
    ]
    feed = feed_for(sessions[0], a.frames, a.size // 8)
    outs = [s.run(None, feed)[0] for s in sessions]  # also the warm-up
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(a.runs):
        for s, t in zip(sessions, times):
            t0 = time.perf_counter()
            s.run(None, feed)
            t.append(time.perf_counter() - t0)
    print(describe(machine()))
    for g, o, t in zip(a.graphs, outs, times):
        diff = float(np.linalg.norm(o - outs[0]) / np.linalg.norm(outs[0]))
        print(
            f"{g}: median {statistics.median(t):.3f} s, calls {[round(x, 3) for x in t]}, "
            f"rel. L2 from the first {diff:.2g}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
