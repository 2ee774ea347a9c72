"""t2vrt on ONNX Runtime CUDA fp16 against diffusers eager fp16 on one GPU, same process, alternating.

On one H100/H200 with PyTorch and no network (onnxruntime-gpu from ../shared/gpu's kit, diffusers from a local wheel;
benchmarks/README.md has the two commands):

    python3 benchmarks/gpu/ort_cuda.py OUT_DIR

  1. builds the real-size ModelScope architecture with random weights (t2vrt.presets "modelscope-1.7b") in /tmp, so no
     weights travel, and exports it there with t2vrt (fp32 and fp16 graphs, no validation: quality is measured below);
  2. 256x256, 16 frames, 25 DDIM steps, guidance 9: warm-up, then --runs measured runs of each pipeline, alternated
     (ABBA); per-stage times, and per pair the quality numbers (max/mean frame difference, PSNR, SSIM, final latents'
     relative L2, NaN and black frames); then our fp16 against our fp32 on the same backend;
  3. 64 frames with the memory savings on (diffusers: forward chunking and VAE slicing; ours: low-memory mode),
     one measured run each, with peak CUDA memory;
  4. the fp16 UNet alone on ONNX Runtime CUDA, eager calls against CUDA-graph replay;
  5. the UNet with ONNX Runtime's CUDA fusions (flash MultiHeadAttention, GroupNorm, ...) against the portable graph,
     and one whole generation with it (ort_fused.py; off CUDA a CPU-capable stand-in is timed);
  6. with --trtexec (TensorRT 8.6 from ../shared/gpu/trt): that UNet's fp16 engine, frames 8:16:64, timed at 16 and
     64 frames with CUDA graphs, beside diffusers' eager UNet step of phases 2 and 3.
Writes OUT_DIR/ort_cuda.json after every phase (a timeout keeps what was done) and OUT_DIR/summary.md.
CPU check of the same code (ONNX Runtime CPU, fp32): ``--preset tiny --device cpu --precision fp32 --frames 4
--frames-long 6 --size 64 --steps 3 --runs 1`` (about two minutes on a busy two-core box).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

log = logging.getLogger("gpu-ort")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for ort_cuda.json and summary.md (created)")
    p.add_argument("--preset", default="modelscope-1.7b", help="t2vrt.presets preset (tiny for a CPU check)")
    p.add_argument("--device", default="cuda", help="where diffusers runs; ours runs on ONNX Runtime CUDA where it can")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--work", default="/tmp/t2vrt-gpu", help="model folder and engine directory go here (reused)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--frames-long", type=int, default=64, help="the memory-savings run's frames (0: skip it)")
    p.add_argument("--size", type=int, default=256, help="height and width in pixels")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--budget", type=float, default=450.0, help="seconds; later phases are skipped past it")
    p.add_argument("--trtexec", default=None, help="TensorRT 8.6's trtexec (../shared/gpu/trt): time a TensorRT UNet too")
    p.add_argument("--fused-nhwc", action="store_true", help="phase cuda_fused: fuse NhwcConv too (off by default)")
    p.add_argument("--trt-opt-level", type=int, default=2, help="trtexec --builderOptimizationLevel (3 is its default)")
    return p.parse_args(argv)


class Phases:
    """Runs each phase once, records its time or its error, rewrites the JSON after each."""

    def __init__(self, res: dict, path: Path, budget: float):
        self.res, self.path, self.budget, self.t0 = res, path, budget, time.perf_counter()

    def save(self) -> None:
        self.res["wall_s"] = time.perf_counter() - self.t0
        self.path.write_text(json.dumps(self.res, indent=2, default=str))

    def __call__(self, name: str, fn, keep: bool = True):
        if time.perf_counter() - self.t0 > self.budget:
            self.res["errors"][name] = f"skipped: past the {self.budget:.0f} s budget"
            return None
        t0, value = time.perf_counter(), None
        try:
            value = fn()
        except TimeoutError as e:  # a phase that sees it cannot finish in the budget left
            self.res["errors"][name] = str(e)
        except Exception as e:  # one failed phase must not cost the others: the GPU time is one shot
            log.error("phase %s failed:\n%s", name, traceback.format_exc())
            self.res["errors"][name] = f"{type(e).__name__}: {e}"
        if keep and value is not None:
            self.res[name] = value
        self.res["phase_s"][name] = round(time.perf_counter() - t0, 2)
        log.info("phase %s: %.1f s", name, self.res["phase_s"][name])
        self.save()
        return value


def make_model(args) -> tuple[str, str]:
    """The random-weight model folder and its t2vrt export (fp32 + fp16), both reused when already there."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.random_model import build_model

    work = Path(args.work)
    folder, engines = work / f"model-{args.preset}", work / f"engines-{args.preset}"
    if not (folder / "model_index.json").is_file():
        build_model(folder, args.preset, seed=0)
    if not (engines / "manifest.json").is_file():
        s, f = args.size, max(args.frames, args.frames_long)
        profile = Profile(batch=(1, 1, 1), frames=(1, args.frames, f), height=(s, s, s), width=(s, s, s),
                          decode_chunk=(1, 4, 16))
        export_model(str(folder), engines, ExportOptions(profile=profile, precisions=("fp32", "fp16"), validate=False))
    return str(folder), str(engines)


def alternate(ours, ref, runs: int, warmup: int) -> dict:
    """Warm-up, then ``runs`` measured runs of each, alternated; the quality numbers of every pair."""
    from t2vrt.bench.report import compare_frames, merge_parity, ratios, summarize

    for _ in range(warmup):
        ours.run(), ref.run()
    rec = {"t2vrt": [], "diffusers": []}
    checks = []
    for i in range(runs):
        frames = {}
        for p in (ours, ref) if i % 2 == 0 else (ref, ours):
            r, frames[p.name] = p.run()
            rec[p.name].append(r)
        checks.append(compare_frames(frames["t2vrt"], frames["diffusers"], 1 / 255, ours.latents, ref.latents))
    return {"backends": {"t2vrt": ours.backend, "diffusers": ref.backend},
            "t2vrt": {"runs": rec["t2vrt"], "summary": summarize(rec["t2vrt"])},
            "diffusers": {"runs": rec["diffusers"], "summary": summarize(rec["diffusers"])},
            "speedup": ratios(rec["t2vrt"], rec["diffusers"]), "quality": merge_parity(checks), "_frames": frames}


def phase_main(args, folder: str, engines: str, state: dict) -> dict:
    from t2vrt.bench.runs import BenchRequest, DiffusersRun, OursRun

    request = BenchRequest(num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=args.steps)
    ours = OursRun(engines, request, "onnxruntime", args.precision, args.device)
    ref = DiffusersRun(folder, request, args.device, args.precision)
    out = alternate(ours, ref, args.runs, 1)
    state.update(ours=ours, frames=out.pop("_frames")["t2vrt"])
    ref.pipe = None  # diffusers' weights go before the next phases load more
    return {"request": request.to_json(), **out}


def phase_fp16_vs_fp32(args, engines: str, state: dict) -> dict:
    from t2vrt.bench.session import BenchConfig, fp16_against_fp32

    ours = state["ours"]
    config = BenchConfig(engines=engines, backend="onnxruntime", precision=args.precision, device=args.device)
    q = fp16_against_fp32(config, ours.request, ours, state["frames"])
    ours.pipe.close()
    return q


def phase_long(args, folder: str, engines: str) -> dict:
    """--frames-long frames with the memory savings of each pipeline on, one warm-up and one measured run each."""
    from t2vrt.bench.runs import BenchRequest, DiffusersRun, OursRun

    request = BenchRequest(num_frames=args.frames_long, height=args.size, width=args.size, num_inference_steps=args.steps)
    ours = OursRun(engines, request, "onnxruntime", args.precision, args.device)
    # each stage's runner is opened when it starts and closed when it ends; the stage seam times the reopened ones
    ours.pipe.options = replace(ours.pipe.options, low_memory=True)
    ref = DiffusersRun(folder, request, args.device, args.precision)
    ref.pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)
    ref.pipe.vae.enable_slicing()  # decodes one frame at a time
    return {"request": request.to_json(), "savings": {"t2vrt": "low_memory", "diffusers": "forward chunking + VAE slicing (one frame per decode)"},
            **{k: v for k, v in alternate(ours, ref, 1, 1).items() if k != "_frames"}}


def unet_feed(args, m) -> dict:
    """One UNet call at the main request's shape, batch 2 (as under guidance), on ``args.device``."""
    import torch

    lat = args.size // m.model.vae_scale
    g = torch.Generator().manual_seed(0)  # the same feed in every run, so the comparisons repeat exactly
    sample = torch.randn(2, m.model.latent_channels, args.frames, lat, lat, generator=g)
    text = torch.randn(2, m.model.max_length, m.model.text_hidden, generator=g)
    return {"sample": sample.to(args.device), "timestep": torch.tensor([981.0], device=args.device),
            "encoder_hidden_states": text.to(args.device)}


def phase_unet_graphs(args, engines: str) -> dict:
    """The fp16 UNet alone on ONNX Runtime CUDA at the main request's shape: eager calls against CUDA-graph replay
    (one session per shape, inputs copied into fixed buffers), median of 10 calls after 3 warm-ups each."""
    import statistics

    import torch

    from t2vrt.engines.loader import open_runner
    from t2vrt.manifest import load_manifest

    m = load_manifest(engines)
    feed = unet_feed(args, m)
    out = {}
    for graphs in (False, True):
        runner = open_runner(Path(engines), m, "unet", "onnxruntime", args.precision, cuda_graphs=graphs)
        times = []
        for i in range(13):
            torch.cuda.synchronize() if args.device.startswith("cuda") else None
            t0 = time.perf_counter()
            runner.infer(feed)
            torch.cuda.synchronize() if args.device.startswith("cuda") else None
            times.append(time.perf_counter() - t0)
        out["graph_replay" if graphs else "eager"] = {"median_s": statistics.median(times[3:]), "first_s": times[0],
                                                      "providers": getattr(runner, "providers", None)}
        runner.close()
    return out


def phase_cuda_fused(args, engines: str, main_frames, seconds_left) -> dict:
    """The UNet with ONNX Runtime's CUDA fusions against the portable graph (benchmarks/gpu/ort_fused.py)."""
    from ort_fused import phase_cuda_fused as run

    from t2vrt.manifest import load_manifest

    return run(args, engines, unet_feed(args, load_manifest(engines)), main_frames, seconds_left)


GPU_TIME = re.compile(r"GPU Compute Time: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, median = ([\d.]+) ms")


def trtexec_times(text: str) -> dict | None:
    """The GPU compute time trtexec reports (ms), or None if it printed none."""
    found = GPU_TIME.findall(text)
    if not found:
        return None
    lo, hi, mean, median = map(float, found[-1])
    return {"min_ms": lo, "max_ms": hi, "mean_ms": mean, "median_ms": median}


def trtexec_commands(trtexec: str, onnx: Path, plan: Path, dims: dict, frames: tuple[int, int, int], opt_level: int):
    """trtexec's build (timed at the opt frames) and the re-timing of the saved plan at the max frames, with CUDA
    graphs; fp16 from the fp16 graph (TensorRT 8.6 predates strongly typed networks), no cuDNN/cuBLAS tactics."""
    c, lat, length, hidden = dims["c"], dims["lat"], dims["length"], dims["hidden"]

    def shapes(f: int) -> str:
        return f"sample:2x{c}x{f}x{lat}x{lat},encoder_hidden_states:2x{length}x{hidden}"  # timestep: static [1]

    timing = ["--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--warmUp=500", "--iterations=20", "--duration=5"]
    build = [trtexec, f"--onnx={onnx}", "--fp16", f"--minShapes={shapes(frames[0])}", f"--optShapes={shapes(frames[1])}",
             f"--maxShapes={shapes(frames[2])}", "--tacticSources=-CUDNN,-CUBLAS,-CUBLAS_LT",
             f"--builderOptimizationLevel={opt_level}", f"--saveEngine={plan}", f"--shapes={shapes(frames[1])}", *timing]
    again = [trtexec, f"--loadEngine={plan}", f"--shapes={shapes(frames[2])}", *timing]
    return build, again


def phase_trtexec(args, engines: str, seconds_left) -> dict:
    """A TensorRT 8.6 fp16 engine of the UNet with frames 8:16:64 at the request's size, timed by trtexec at 16 and
    64 frames with CUDA graphs (batch 2, as under guidance)."""
    import subprocess

    from t2vrt.manifest import load_manifest

    m = load_manifest(engines)
    dims = {"c": m.model.latent_channels, "lat": args.size // m.model.vae_scale, "length": m.model.max_length,
            "hidden": m.model.text_hidden}
    plan = Path(args.work) / "unet_fp16_trt86.plan"
    build, again = trtexec_commands(args.trtexec, m.onnx_path(Path(engines), "unet", "fp16"), plan, dims,
                                    (8, args.frames, max(args.frames, args.frames_long, 8)), args.trt_opt_level)
    out = {}
    for name, cmd in (("build_and_opt_frames", build), ("max_frames", again)):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, seconds_left()))
        out[name] = {"command": " ".join(cmd), "rc": p.returncode, "seconds": round(time.perf_counter() - t0, 1),
                     "gpu_compute": trtexec_times(p.stdout), "tail": p.stdout[-1500:] + p.stderr[-1500:]}
        if p.returncode != 0:
            break
    return out


def summary_md(res: dict) -> str:
    from t2vrt.bench.machine import describe
    from t2vrt.bench.report import quality_line

    lines = [f"# t2vrt ONNX Runtime CUDA vs diffusers eager: {res['preset']} random weights, {res['precision']}", "",
             "```", describe(res["machine"]), "```"]
    for key in ("main", "long"):
        d = res.get(key)
        if not d:
            continue
        r = d["request"]
        lines += ["", f"## {r['num_frames']} frames {r['width']}x{r['height']}, {r['num_inference_steps']} steps "
                      f"({len(d['t2vrt']['runs'])} measured runs each; median)", f"backends: {d['backends']}", "",
                  "| stage | t2vrt | diffusers | diffusers / t2vrt |", "|---|---|---|---|"]
        for k, label, scale in (("total_s", "end to end (ms)", 1e3), ("text_encoder_s", "text encoder (ms)", 1e3),
                                ("unet_per_step_s", "UNet per step (ms)", 1e3), ("glue_per_step_s", "glue per step (ms)", 1e3),
                                ("vae_per_frame_s", "VAE per frame (ms)", 1e3), ("cuda_max_allocated_mb", "peak CUDA allocated (MB)", 1)):
            o, f = d["t2vrt"]["summary"].get(k), d["diffusers"]["summary"].get(k)
            ratio = d["speedup"].get(k)
            cell = lambda s: f"{s['median'] * scale:.1f}" if s else "-"  # noqa: E731
            speed = f"{ratio['median']:.2f}x" if ratio else ""
            lines.append(f"| {label} | {cell(o)} | {cell(f)} | {speed} |")
        if key == "long":
            lines.append("\nt2vrt in low-memory mode: its loop time includes opening the UNet session, its text encoder "
                         "and VAE times their sessions' opening")
        lines.append("\n" + quality_line("quality against diffusers (worst pair)", d["quality"]))
    g = res.get("unet_graphs")
    if g:
        lines.append(f"UNet step on ONNX Runtime ({g['eager']['providers']}): eager {1e3 * g['eager']['median_s']:.1f} ms, "
                     f"CUDA-graph replay {1e3 * g['graph_replay']['median_s']:.1f} ms")
    for name, t in (res.get("trtexec") or {}).items():
        gc = t.get("gpu_compute")
        lines.append(f"TensorRT 8.6 UNet ({name}): rc {t['rc']}, {t['seconds']} s, GPU compute median "
                     f"{gc['median_ms'] if gc else '-'} ms")
    if res.get("fp16_vs_fp32"):
        lines.append(quality_line("ours fp16 against ours fp32", res["fp16_vs_fp32"]))
    if res.get("cuda_fused"):
        from ort_fused import summary_lines

        lines += summary_lines(res["cuda_fused"])
    lines += ["", f"phase seconds: {res['phase_s']}", f"errors: {res['errors'] or 'none'}", f"wall {res['wall_s']:.0f} s"]
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch  # before onnxruntime: the onnxruntime-gpu kit loads torch's CUDA and cuDNN libraries

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("diffusers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls") and torch.cuda.is_available():
        ort.preload_dlls()
    from t2vrt.bench.machine import machine
    from t2vrt.engines.onnxruntime_cuda import ort_cuda_unusable

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(), "preset": args.preset, "precision": args.precision, "args": vars(args),
           "onnxruntime": {"version": ort.__version__, "providers": ort.get_available_providers(),
                           "cuda_unusable": ort_cuda_unusable()}, "errors": {}, "phase_s": {}}
    phase, state = Phases(res, out / "ort_cuda.json", args.budget), {}
    made = phase("model", lambda: make_model(args))
    if made:
        folder, engines = made
        if phase("main", lambda: phase_main(args, folder, engines, state)) and args.precision == "fp16":
            phase("fp16_vs_fp32", lambda: phase_fp16_vs_fp32(args, engines, state))
        main_frames = state.get("frames")  # the fused UNet's generation is compared with these
        state.clear()
        if args.frames_long:
            phase("long", lambda: phase_long(args, folder, engines))
        phase("unet_graphs", lambda: phase_unet_graphs(args, engines))
        left = lambda: args.budget - (time.perf_counter() - phase.t0)  # noqa: E731
        phase("cuda_fused", lambda: phase_cuda_fused(args, engines, main_frames, left))
        if args.trtexec:
            phase("trtexec", lambda: phase_trtexec(args, engines, left))
    phase.save()
    text = summary_md(res)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
