"""The GPU baseline, in one command: diffusers eager per stage, and our loop's glue on CUDA.

On one H100/H200 with PyTorch and diffusers (no TensorRT, no onnxruntime-gpu, no network, no hub):

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python3 benchmarks/gpu/run.py OUT_DIR          # real-size ModelScope, fp16

builds the ModelScope architecture with random weights (t2vrt.presets PRESETS["modelscope-1.7b"]) into a local
folder, then measures at 256x256, 16 frames, 25 DDIM steps, guidance 9:
  1. diffusers' TextToVideoSDPipeline eager fp16: text encoder, UNet per step, loop glue, VAE decode per frame,
     end to end, peak CUDA memory (the baseline a TensorRT engine must beat);
  2. our Pipeline.denoise on CUDA tensors with a stand-in UNet runner (the torch UNet): the loop's time per step
     outside the UNet, and host syncs per step (torch.cuda.set_sync_debug_mode("warn"), warnings counted);
  3. that our loop and diffusers' give the same latents from the same noise and embeddings.
Writes OUT_DIR/gpu_results.json (after every phase) and OUT_DIR/summary.md, and prints the summary.
CPU check of the same code: ``--preset tiny --device cpu`` (seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from t2vrt.bench.machine import describe, machine
from t2vrt.bench.measure import Recorder, TimedRunner, no_sync, spread, sync_for
from t2vrt.bench.report import summarize
from t2vrt.bench.runs import BenchRequest, DiffusersRun
from t2vrt.engines.backends import LoadOptions
from t2vrt.runtime.locking import new_locks
from t2vrt.runtime.noise import Noise
from t2vrt.runtime.pipeline import Pipeline
from t2vrt.runtime.schedulers import make_sampler

log = logging.getLogger("gpu-bench")


class TorchUNetRunner:
    """A stand-in for a GPU engine: the Runner protocol's ``infer`` over the torch UNet on device tensors.

    The runtime hands the timestep over as a NumPy array of shape [1]; ``cache_timesteps`` uploads each value once
    (what converting at the edge, before the loop, would give) instead of once per step.
    """

    def __init__(self, unet, device: str, cache_timesteps: bool = False):
        import torch

        self.unet, self.device, self.dtype, self.cache = unet, torch.device(device), unet.dtype, cache_timesteps
        self._timesteps: dict[float, object] = {}

    def timestep(self, t):
        import torch

        if torch.is_tensor(t):
            return t.to(self.device)
        if not self.cache:
            return torch.from_numpy(np.ascontiguousarray(t)).to(self.device)  # a host-to-device copy every step
        key = float(t[0])
        if key not in self._timesteps:
            self._timesteps[key] = torch.from_numpy(np.ascontiguousarray(t)).to(self.device)
        return self._timesteps[key]

    def infer(self, feed):
        import torch

        with torch.inference_mode():
            out = self.unet(feed["sample"].to(self.dtype), self.timestep(feed["timestep"]),
                            encoder_hidden_states=feed["encoder_hidden_states"], return_dict=False)[0]
        return {"noise_pred": out.to(feed["sample"].dtype)}

    def close(self) -> None:
        pass


class LoopOnly(Pipeline):
    """Our Pipeline's denoise loop, unchanged, over a given UNet runner (no engine directory)."""

    def __init__(self, unet_runner):
        self._runners, self.options, self._observers = {"unet": unet_runner}, LoadOptions(), []
        self._lock, self._call_lock = new_locks()


class SyncCounter:
    """Host syncs inside the block, counted as the warnings of torch.cuda.set_sync_debug_mode("warn").

    Without CUDA (the CPU check of this script) the same code runs and counts nothing.
    """

    def __enter__(self) -> SyncCounter:
        import torch

        self.cuda = torch.cuda.is_available()
        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        if self.cuda:
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.cuda:
            torch.cuda.set_sync_debug_mode(0)
        self._catch.__exit__(*exc)

    @property
    def count(self) -> int:
        return sum("synchroniz" in str(w.message) for w in self.caught)

    def example(self) -> str | None:
        return next((str(w.message)[:300] for w in self.caught if "synchroniz" in str(w.message)), None)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for gpu_results.json and summary.md")
    p.add_argument("--preset", default="modelscope-1.7b", help="t2vrt.presets preset (tiny for a CPU check)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model-dir", default=None, help="where the random-weight model folder goes (reused if there)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="height and width in pixels")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--syncs", default="auto", choices=["auto", "on", "off"], help="count host syncs (auto: on CUDA)")
    p.add_argument("--budget", type=float, default=420.0, help="seconds; later phases are skipped past it")
    return p.parse_args(argv)


def model_folder(args) -> Path:
    from t2vrt.export.random_model import build_model

    folder = Path(args.model_dir or f"/tmp/t2vrt-random-{args.preset}")
    if not (folder / "model_index.json").is_file():
        t0 = time.perf_counter()
        build_model(folder, args.preset, seed=0)
        log.info("built %s in %.0f s", folder, time.perf_counter() - t0)
    return folder


def phase_diffusers(args, run: DiffusersRun) -> dict:
    """Warm-up, then measured runs of diffusers' pipeline with every stage timed (t2vrt.bench's wrappers)."""
    run.run()
    records = [run.run()[0] for _ in range(args.runs)]
    return {"runs": records, "summary": summarize(records)}


def diffusers_syncs(run: DiffusersRun, request: BenchRequest) -> dict:
    """Host syncs in one diffusers call (latents out, no decode): before its loop and inside it."""
    import torch

    pipe, marks = run.pipe, {}
    forward, run.recorder.sync = pipe.unet.forward, no_sync  # the timers' own synchronize must not count
    try:
        with SyncCounter() as sc:

            def first_call(*a, **k):
                marks.setdefault("loop", sc.count)
                return forward(*a, **k)

            pipe.unet.forward = first_call
            pipe(request.prompt, generator=torch.Generator("cpu").manual_seed(request.seed), output_type="latent",
                 **request.common())
    finally:
        pipe.unet.forward, run.recorder.sync = forward, sync_for(run.device)
    before = marks.get("loop", 0)
    return {"before_loop": before, "in_loop": sc.count - before,
            "per_step": (sc.count - before) / request.num_inference_steps, "example": sc.example()}


class LoopBench:
    """Our denoise loop on the device against the bare UNet calls it makes; same noise, embeddings and schedule."""

    def __init__(self, run: DiffusersRun, folder: Path, request: BenchRequest):
        import torch

        pipe, self.request = run.pipe, request
        vars(pipe.unet).pop("forward", None)  # the bare module, without the diffusers-side timers
        self.unet, self.device, self.sync = pipe.unet, run.device, sync_for(run.device)
        with torch.inference_mode():
            pos, neg = pipe.encode_prompt(request.prompt, torch.device(run.device), 1, True, request.negative_prompt)
        self.emb = torch.cat([neg, pos])
        config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        self.sampler = make_sampler(request.scheduler, config, request.num_inference_steps)
        s = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, request.num_frames, request.height // s, request.width // s)
        self.latents = torch.from_numpy(Noise(request.seed).randn(shape))  # the runtime's noise, on the host
        self.x0 = self.latents.to(run.device, pipe.unet.dtype)
        self.naive = TorchUNetRunner(pipe.unet, run.device)
        self.cached = TorchUNetRunner(pipe.unet, run.device, cache_timesteps=True)

    def loop(self, runner):
        import torch

        r = self.request
        with torch.inference_mode():
            return LoopOnly(runner).denoise(self.x0, self.emb, self.sampler, r.guidance_scale, Noise(r.seed), progress=False)

    def bare(self):
        """The UNet calls alone, timesteps already on the device: what the loop costs with zero glue."""
        import torch

        ts = [self.cached.timestep(np.array([t], np.float32)) for t in self.sampler.timesteps]
        xin = torch.cat([self.x0, self.x0])
        with torch.inference_mode():
            for t in ts:
                self.unet(xin, t, encoder_hidden_states=self.emb, return_dict=False)

    def wall(self, fn) -> float:
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return (time.perf_counter() - t0) / self.request.num_inference_steps

    def serial_glue(self) -> float:
        """Per step, time outside the UNet calls when each call is synchronized (host + device work of the glue)."""
        rec = Recorder(sync=self.sync)
        with rec.time("loop"):
            self.loop(TimedRunner(self.naive, "unet", rec))
        return (rec.seconds["loop"] - rec.seconds["unet"]) / self.request.num_inference_steps


def phase_glue(args, bench: LoopBench) -> dict:
    import torch

    bench.loop(bench.naive), bench.loop(bench.cached), bench.bare()  # warm-up, fills the timestep cache
    t = {"bare_unet": [], "ours": [], "ours_cached_timesteps": [], "serial_glue": []}
    for _ in range(args.runs):
        t["bare_unet"].append(bench.wall(bench.bare))
        t["ours"].append(bench.wall(lambda: bench.loop(bench.naive)))
        t["ours_cached_timesteps"].append(bench.wall(lambda: bench.loop(bench.cached)))
        t["serial_glue"].append(bench.serial_glue())
    out = {f"{k}_per_step_s": spread(v) for k, v in t.items()}
    out["overhead_per_step_s"] = spread([o - b for o, b in zip(t["ours"], t["bare_unet"])])
    out["overhead_cached_per_step_s"] = spread([o - b for o, b in zip(t["ours_cached_timesteps"], t["bare_unet"])])
    if args.syncs == "on" or (args.syncs == "auto" and bench.device.startswith("cuda")):
        steps = bench.request.num_inference_steps
        syncs = {}
        for name, fn in (("ours", lambda: bench.loop(bench.naive)), ("ours_cached_timesteps", lambda: bench.loop(bench.cached)),
                         ("bare_unet", bench.bare)):
            with SyncCounter() as sc:
                fn()
            syncs[name] = {"per_step": sc.count / steps, "total": sc.count, "example": sc.example()}
        out["syncs"] = syncs
    if bench.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        bench.loop(bench.naive)
        out["loop_cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def phase_same_latents(bench: LoopBench, run: DiffusersRun) -> dict:
    """Our loop and diffusers' from the same initial latents: relative L2 of the final latents."""
    import torch

    r = bench.request
    ours = bench.loop(bench.naive).float().cpu().numpy()
    with torch.no_grad():
        ref = run.pipe(r.prompt, generator=torch.Generator("cpu").manual_seed(r.seed), latents=bench.x0.clone(),
                       output_type="latent", **r.common()).frames
    ref = ref.float().cpu().numpy()
    rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    return {"rel_l2": rel, "max_abs": float(np.abs(ours - ref).max()), "dtype": str(bench.x0.dtype)}


def summary_md(res: dict) -> str:
    ms = lambda s: f"{1e3 * s['median']:.2f} [{1e3 * s['min']:.2f}-{1e3 * s['max']:.2f}]"  # noqa: E731
    r = res["request"]
    lines = [f"# GPU baseline: {res['preset']} random weights, {res['dtype']}, {r['num_frames']} frames "
             f"{r['width']}x{r['height']}, {r['num_inference_steps']} steps, {res['runs']} runs (median [min-max])", "",
             "```", describe(res["machine"]), "```", ""]
    d = (res.get("diffusers") or {}).get("summary")
    if d:
        lines += ["| diffusers eager | ms |", "|---|---|"]
        for key, label in (("total_s", "end to end"), ("text_encoder_s", "text encoder (2 calls)"), ("unet_per_step_s", "UNet per step (batch 2)"),
                           ("glue_per_step_s", "loop glue per step"), ("vae_per_frame_s", "VAE decode per frame")):
            lines.append(f"| {label} | {ms(d[key])} |")
        lines.append(f"| peak CUDA allocated (MB) | {d['cuda_max_allocated_mb']['median']:.0f} |" if "cuda_max_allocated_mb" in d else "")
    g = res.get("glue")
    if g:
        lines += ["", "| our loop (Pipeline.denoise, stand-in UNet runner) | ms per step |", "|---|---|"]
        for key, label in (("bare_unet_per_step_s", "bare UNet calls"), ("ours_per_step_s", "our loop"),
                           ("overhead_per_step_s", "our loop - bare UNet"), ("ours_cached_timesteps_per_step_s", "our loop, timesteps uploaded once"),
                           ("overhead_cached_per_step_s", "that - bare UNet"), ("serial_glue_per_step_s", "outside the UNet, each call synchronized")):
            lines.append(f"| {label} | {ms(g[key])} |")
        for name, s in g.get("syncs", {}).items():
            lines.append(f"| host syncs per step: {name} | {s['per_step']:.2f} |")
    if res.get("diffusers_syncs"):
        s = res["diffusers_syncs"]
        lines.append(f"| host syncs per step: diffusers loop | {s['per_step']:.2f} (before the loop: {s['before_loop']}) |")
    if res.get("same_latents"):
        lines.append(f"\nour loop vs diffusers' from the same latents: relative L2 {res['same_latents']['rel_l2']:.2e}")
    lines += [f"\nphase errors: {res['errors']}" if res["errors"] else "", f"wall time {res['wall_s']:.0f} s"]
    return "\n".join(x for x in lines if x is not None)


class Phases:
    """Runs each phase once, records its time or its error, and rewrites the JSON after each (a timeout keeps what was done)."""

    def __init__(self, res: dict, out: Path, budget: float):
        self.res, self.out, self.budget, self.t_start = res, out, budget, time.perf_counter()

    def save(self) -> None:
        self.res["wall_s"] = time.perf_counter() - self.t_start
        (self.out / "gpu_results.json").write_text(json.dumps(self.res, indent=2, default=str))

    def __call__(self, name: str, fn, keep: bool = True):
        res = self.res
        if time.perf_counter() - self.t_start > self.budget:
            res["errors"][name] = f"skipped: past the {self.budget:.0f} s budget"
            return None
        t0, value = time.perf_counter(), None
        try:
            value = fn()
        except Exception as e:  # one failed phase must not cost the others (the GPU time is one shot)
            log.error("phase %s failed:\n%s", name, traceback.format_exc())
            res["errors"][name] = f"{type(e).__name__}: {e}"
        if keep and value is not None:
            res[name] = value
        res["phase_s"][name] = time.perf_counter() - t0
        log.info("phase %s: %.1f s", name, res["phase_s"][name])
        self.save()
        return value


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("diffusers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp16 = args.device.startswith("cuda")
    request = BenchRequest(num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=args.steps)
    res = {"machine": machine(), "preset": args.preset, "dtype": "fp16" if fp16 else "fp32", "runs": args.runs,
           "request": request.to_json(), "errors": {}, "phase_s": {}}
    phase = Phases(res, out, args.budget)
    torch.manual_seed(0)
    folder = phase("model", lambda: str(model_folder(args)))
    run = phase("load", lambda: DiffusersRun(folder, request, args.device, "fp16" if fp16 else "fp32"), keep=False) if folder else None
    if run is not None:
        phase("diffusers", lambda: phase_diffusers(args, run))
        if args.syncs == "on" or (args.syncs == "auto" and fp16):
            phase("diffusers_syncs", lambda: diffusers_syncs(run, request))
        bench = phase("loop_setup", lambda: LoopBench(run, Path(folder), request), keep=False)
        if bench is not None:
            phase("glue", lambda: phase_glue(args, bench))
            phase("same_latents", lambda: phase_same_latents(bench, run))
    phase.save()
    text = summary_md(res)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
