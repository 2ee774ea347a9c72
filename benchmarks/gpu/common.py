"""What the two GPU commands share: their arguments, the libraries' setup, the random-weight model exported there,
the UNet's feed and the TensorRT 8.6 ``trtexec`` runs (benchmarks/gpu/README.md)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from pathlib import Path

log = logging.getLogger("gpu")
# What the headline phases cost per preset on the GPU machine (16 cores), seconds, for `--preset auto`'s choice.
# export: the real-size fp16 export took 437 s on a 2-core CPU (RESULTS.md "Real-size export"); on 16 cores it is
# assumed to run at most 4x faster (tracing and the fp16 pass are mostly single-threaded). run: loading both
# pipelines and 1 + runs generations each. trtexec: a static-shape fp16 UNet build at optimization level 2, a guess
# (never run on a GPU yet). The JSON records the estimate and the choice.
ESTIMATE_S = {"modelscope-1.7b": {"export": 437 * 2 / 8, "run": 120, "trtexec": 240},
              "small": {"export": 60, "run": 40, "trtexec": 60}}


def parser(doc: str, budget: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for the JSON and summary.md (created)")
    p.add_argument("--preset", default="auto", help="t2vrt.presets preset; auto: the real size if the estimated "
                   "headline phases fit the budget, else small (tiny for a CPU check)")
    p.add_argument("--device", default="cuda", help="where diffusers runs; ours runs on ONNX Runtime CUDA where it can "
                   "(cpu: the same code on the CPU, for a check before any GPU time)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--work", default="/tmp/t2vrt-gpu", help="model folder and engine directory go here (reused)")
    p.add_argument("--model", default=None, help="an existing diffusers model folder (with --engines): no export")
    p.add_argument("--engines", default=None, help="an existing engine directory exported from --model")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="height and width in pixels")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of torch and ONNX Runtime on the CPU; "
                   "omitted: each library's default")
    p.add_argument("--budget", type=float, default=budget, help="seconds for all phases; a phase that would cross "
                   "it is not started, one that runs past it is stopped")
    p.add_argument("--trtexec", default=None, help="TensorRT 8.6's trtexec (../shared/gpu/trt): time a TensorRT UNet")
    p.add_argument("--trt-opt-level", type=int, default=2, help="trtexec --builderOptimizationLevel (3 is its default)")
    return p


def setup(args) -> dict:
    """torch before onnxruntime (the onnxruntime-gpu kit loads torch's CUDA and cuDNN libraries), quiet logs; what
    ONNX Runtime offers, for the JSON."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("diffusers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls") and torch.cuda.is_available():
        ort.preload_dlls()
    from t2vrt.engines.onnxruntime_cuda import ort_cuda_unusable

    return {"version": ort.__version__, "providers": ort.get_available_providers(),
            "cuda_unusable": ort_cuda_unusable()}


def choose_preset(args, seconds_left: float) -> dict:
    """The preset to export: ``args.preset``, or for ``auto`` the real size when its estimated headline phases fit
    in the budget left (with a fifth spare), else ``small``."""
    if args.preset != "auto":
        return {"preset": args.preset, "why": "asked"}
    real = ESTIMATE_S["modelscope-1.7b"]
    need = sum(real.values()) + (0 if args.trtexec else -real["trtexec"])
    if need * 1.2 <= seconds_left:
        return {"preset": "modelscope-1.7b", "why": f"real size: about {need:.0f} s of {seconds_left:.0f} s"}
    return {"preset": "small", "why": f"the real size needs about {need:.0f} s, {seconds_left:.0f} s left"}


def export_cmd(preset: str, folder: Path, engines: Path, args, frames: tuple[int, int, int]) -> list[str]:
    """`t2vrt export PRESET --random-weights` on this machine (no weights travel), keeping the diffusers folder."""
    s = args.size
    return [sys.executable, "-m", "t2vrt.cli", "export", preset, "--random-weights", "--keep-model", str(folder),
            "-o", str(engines), "--precision", "fp32", "fp16", "--no-validate", "--batch", "1",
            "--frames", ":".join(map(str, frames)), "--height", f"{s}:{s}:{s}", "--width", f"{s}:{s}:{s}",
            "--decode-chunk", "1:4:16"]


def make_model(args, phases) -> dict:
    """The random-weight model and its export, reused from ``--work`` (or ``--model``/``--engines``) when there.
    The ONNX graphs have dynamic frames, so one export serves both commands (the profile's 64 frames are command
    2's long request)."""
    Path(args.work).mkdir(parents=True, exist_ok=True)  # the later phases' scratch folder too
    if args.model and args.engines:
        return {"preset": args.preset, "why": "given", "model": args.model, "engines": args.engines}
    chosen = choose_preset(args, phases.left())
    work, frames = Path(args.work), (1, args.frames, max(args.frames, 64))
    folder, engines = work / f"model-{chosen['preset']}", work / f"engines-{chosen['preset']}"
    if not (engines / "manifest.json").is_file():
        if folder.exists():  # a model kept by an export that did not finish: --keep-model wants a new folder
            import shutil

            shutil.rmtree(folder)
        rec = phases.child(export_cmd(chosen["preset"], folder, engines, args, frames), work / "export.log")
        chosen["export"] = rec
        if rec["rc"] != 0:
            raise RuntimeError(f"export failed ({rec.get('killed') or 'exit ' + str(rec['rc'])}); see {rec['log']}")
    return {**chosen, "model": str(folder), "engines": str(engines), "threads": os.cpu_count()}


def unet_feed(args, m, frames: int | None = None) -> dict:
    """One UNet call at the request's shape, batch 2 (as under guidance), on ``args.device``."""
    import torch

    lat = args.size // m.model.vae_scale
    g = torch.Generator().manual_seed(0)  # the same feed in every run, so the comparisons repeat exactly
    sample = torch.randn(2, m.model.latent_channels, frames or args.frames, lat, lat, generator=g)
    text = torch.randn(2, m.model.max_length, m.model.text_hidden, generator=g)
    return {"sample": sample.to(args.device), "timestep": torch.tensor([981.0], device=args.device),
            "encoder_hidden_states": text.to(args.device)}


GPU_TIME = re.compile(r"GPU Compute Time: min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, "
                      r"median = ([\d.]+) ms")


def trtexec_times(text: str) -> dict | None:
    """The GPU compute time trtexec reports (ms), or None if it printed none."""
    found = GPU_TIME.findall(text)
    if not found:
        return None
    lo, hi, mean, median = map(float, found[-1])
    return {"min_ms": lo, "max_ms": hi, "mean_ms": mean, "median_ms": median}


def trtexec_commands(trtexec: str, onnx: Path, plan: Path, dims: dict, frames: tuple[int, int, int], opt_level: int,
                     time_at: tuple[int, ...]) -> list[list[str]]:
    """trtexec's build (timed at the opt frames), then the saved plan re-timed at each other frame count of
    ``time_at``, with CUDA graphs; fp16 from the fp16 graph (TensorRT 8.6 predates strongly typed networks), no
    cuDNN/cuBLAS tactics."""
    c, lat, length, hidden = dims["c"], dims["lat"], dims["length"], dims["hidden"]

    def shapes(f: int) -> str:
        return f"sample:2x{c}x{f}x{lat}x{lat},encoder_hidden_states:2x{length}x{hidden}"  # timestep: static [1]

    timing = ["--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--warmUp=500", "--iterations=20", "--duration=5"]
    build = [trtexec, f"--onnx={onnx}", "--fp16", f"--minShapes={shapes(frames[0])}",
             f"--optShapes={shapes(frames[1])}", f"--maxShapes={shapes(frames[2])}",
             "--tacticSources=-CUDNN,-CUBLAS,-CUBLAS_LT", f"--builderOptimizationLevel={opt_level}",
             f"--saveEngine={plan}", f"--shapes={shapes(frames[1])}", *timing]
    return [build] + [[trtexec, f"--loadEngine={plan}", f"--shapes={shapes(f)}", *timing] for f in time_at
                      if f != frames[1]]


def phase_trtexec(args, engines: str, phases, frames: tuple[int, int, int], time_at: tuple[int, ...]) -> dict:
    """A TensorRT 8.6 fp16 engine of the UNet at the request's size, built by trtexec for ``frames`` (min:opt:max)
    and timed at each of ``time_at`` with CUDA graphs (batch 2, as under guidance)."""
    from t2vrt.manifest import load_manifest

    m = load_manifest(engines)
    dims = {"c": m.model.latent_channels, "lat": args.size // m.model.vae_scale, "length": m.model.max_length,
            "hidden": m.model.text_hidden}
    plan = Path(args.work) / f"unet_fp16_trt86_{'-'.join(map(str, frames))}.plan"
    plan.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for cmd in trtexec_commands(args.trtexec, m.onnx_path(Path(engines), "unet", "fp16"), plan, dims, frames,
                                args.trt_opt_level, time_at):
        shape = next(a for a in cmd if a.startswith("--shapes=")).split("x")[2]  # the frame count timed
        rec = phases.child(cmd)
        text = rec.pop("stdout") or ""
        out[f"frames_{shape}"] = {**rec, "gpu_compute": trtexec_times(text), "tail": text[-1500:]}
        if rec["rc"] != 0:
            break
    return out


def trtexec_lines(res: dict, key: str = "trtexec") -> list[str]:
    lines = []
    for name, t in (res.get(key) or {}).items():
        gc = t.get("gpu_compute")
        lines.append(f"TensorRT 8.6 fp16 UNet step, batch 2, {name.replace('_', ' ')}: GPU compute median "
                     f"{gc['median_ms'] if gc else '-'} ms (rc {t['rc']}, {t['seconds']} s with the build)")
    return lines


def write_summary(out: Path, text: str) -> None:
    from t2vrt.runtime.media.paths import write_text_atomic

    write_text_atomic(out / "summary.md", text + "\n")
    print(text)
