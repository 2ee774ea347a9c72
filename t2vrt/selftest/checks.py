"""The checks one backend runs: its components and a whole generation against ONNX Runtime CPU fp32, a timed UNet
step, and on a GPU the switch between size buckets and the memory given back by ``close()``.

Every check returns a Check; an exception inside a backend is that check's failure (one line), never the end of
the selftest.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from t2vrt.manifest import Manifest
from t2vrt.selftest.compare import compare_outputs, frame_checks, to_numpy
from t2vrt.selftest.feeds import PROMPTS, Case, cases, feeds
from t2vrt.selftest.report import FAIL, PASS, SKIP, Check
from t2vrt.selftest.targets import Target

log = logging.getLogger(__name__)
REFERENCE = "onnxruntime-cpu fp32 (portable graph)"
STEPS = 3  # inference steps of the whole generation: enough for the scheduler and guidance to act


@dataclass
class Context:
    """What every backend is compared with: the cases, their seeded feeds and the reference's outputs and frames."""

    root: Path
    manifest: Manifest
    cases: list[Case] = field(default_factory=list)
    feeds: dict = field(default_factory=dict)  # case -> component -> feed
    reference: dict = field(default_factory=dict)  # case -> component -> outputs
    frames: object = None  # the reference generation's frames

    @classmethod
    def make(cls, root: Path, manifest: Manifest) -> Context:
        ctx = cls(root, manifest, cases(manifest))
        ctx.feeds = {c: feeds(root, manifest, c, seed=i) for i, c in enumerate(ctx.cases)}
        return ctx

    def reference_outputs(self) -> dict:
        """Every component on ONNX Runtime CPU with the portable fp32 graph (not the CPU-fused one), every case;
        computed on first use (a build-only pass needs none)."""
        from t2vrt.engines.onnxruntime import OrtRunner

        if self.reference:
            return self.reference

        for name in self.feeds[self.cases[0]]:
            runner = OrtRunner(self.manifest.onnx_path(self.root, name, "fp32"), self.manifest.spec(name),
                               providers=["CPUExecutionProvider"])
            for case in self.cases:
                self.reference.setdefault(case, {})[name] = runner.infer(self.feeds[case][name])
            runner.close()
        return self.reference


    def engines_here(self, precision: str) -> str:
        """What the engine directory already holds for this GPU: "" unless every component has a ``precision``
        engine that runs here and holds every case (then those are checked, not rebuilt)."""
        from t2vrt.engines.tensorrt.records import check_plans, find_engines
        from t2vrt.errors import T2VError

        plans, chunk = 0, self.manifest.profile.decode_chunk[2]
        for name in self.feeds[self.cases[0]]:
            records, _ = find_engines(self.manifest.engines, name, precision)
            try:
                for c in self.cases:
                    check_plans(records, {"frames": c.frames, "height": c.size.height, "width": c.size.width,
                                          "batch": 1, "decode_chunk": min(c.frames, chunk)})
            except (T2VError, IndexError, KeyError):
                return ""
            plans += len(records)
        return f"the directory's {precision} engines ({plans} plans) run here and hold every case: not rebuilt"


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def open_runner(ctx: Context, target: Target, name: str, precision: str, cuda_graphs: bool = False):
    from t2vrt.engines.loader import open_runner as open_

    providers = list(target.providers) if target.providers else None
    return open_(ctx.root, ctx.manifest, name, target.backend, precision, providers, cuda_graphs=cuda_graphs)


def components(ctx: Context, target: Target, precision: str) -> Check:
    """Every component at every case against the reference, with Polygraphy's comparator."""
    t0, results, worst = time.perf_counter(), {}, {}
    for name in ctx.feeds[ctx.cases[0]]:
        runner = open_runner(ctx, target, name, precision)
        try:
            for case in ctx.cases:
                out = runner.infer(ctx.feeds[case][name])
                names = (REFERENCE, f"{target.name} {precision}")
                r = compare_outputs(ctx.reference_outputs()[case][name], out, precision, names)
                results.setdefault(name, {})[str(case)] = r
                for o, e in r["outputs"].items():
                    worst[f"{name}.{o}"] = max(worst.get(f"{name}.{o}", 0.0), e["max_abs"] or 0.0)
        finally:
            runner.close()
    passed = all(r["passed"] for per_case in results.values() for r in per_case.values())
    failed = [f"{n} {c}" for n, per in results.items() for c, r in per.items() if not r["passed"]]
    tol = next(iter(next(iter(results.values())).values()))
    summary = (f"max |diff| {max(worst.values()):.2g} (atol {tol['atol']:g}, rtol {tol['rtol']:g}) over "
               f"{len(ctx.cases)} cases x {len(results)} components")
    if failed:
        summary += f"; off: {', '.join(failed[:3])}"
    return Check(target.name, f"components {precision}", PASS if passed else FAIL, summary,
                 round(time.perf_counter() - t0, 2), {"precision": precision, "reference": REFERENCE,
                                                       "cases": [str(c) for c in ctx.cases], "results": results})


def _generate(ctx: Context, backend: str, precision: str, providers, case: Case):
    from t2vrt.runtime.pipeline import Pipeline

    providers = list(providers) if providers else None
    pipe = Pipeline.load(ctx.root, backend=backend, precision=precision, providers=providers)
    try:
        return pipe(PROMPTS[0], num_frames=case.frames, height=case.size.height, width=case.size.width,
                    num_inference_steps=STEPS, seed=0).frames
    finally:
        pipe.close()


def generation(ctx: Context, target: Target, precision: str) -> Check:
    """One whole generation (prompt -> frames) against the CPU fp32 frames: PSNR, NaN and black frames."""
    case = ctx.cases[0]
    t0 = time.perf_counter()
    if ctx.frames is None:
        ctx.frames = _generate(ctx, "onnxruntime", "fp32", ("CPUExecutionProvider",), case)
    frames = _generate(ctx, target.backend, precision, target.providers, case)
    r = frame_checks(frames, ctx.frames, precision)
    psnr = r.get("psnr_db")
    summary = (f"PSNR {psnr if isinstance(psnr, str) else f'{psnr:.1f}'} dB (min {r['psnr_min_db']:g}), "
               f"NaN {r['nan']}, black frames {r.get('black_frames', '?')}/{r.get('frames', '?')}, "
               f"{case}, {STEPS} steps")
    return Check(target.name, f"generate {precision}", PASS if r["passed"] else FAIL, summary,
                 round(time.perf_counter() - t0, 2), {"precision": precision, "case": str(case), "steps": STEPS, **r})


def _device_feed(feed: dict, gpu: bool) -> dict:
    if not gpu:
        return feed
    import torch

    return {k: torch.from_numpy(v).cuda() for k, v in feed.items()}


def _time_steps(runner, feed: dict, gpu: bool, runs: int) -> list[float]:
    sync = (lambda: __import__("torch").cuda.synchronize()) if gpu else (lambda: None)
    runner.infer(feed)  # warm-up: allocations, kernel selection, the CUDA graph's capture
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner.infer(feed)
        sync()
        times.append(time.perf_counter() - t0)
    return times


def unet_step(ctx: Context, target: Target, precision: str, runs: int = 5) -> Check:
    """The median of ``runs`` UNet calls at the first case (batch 2: one guided step), with CUDA graphs too where
    the backend has them; the ratio of the two where both ran."""
    case, t0, numbers = ctx.cases[0], time.perf_counter(), {}
    feed = _device_feed(ctx.feeds[case]["unet"], target.gpu)
    for graphs in (False, True) if target.cuda_graphs else (False,):
        runner = open_runner(ctx, target, "unet", precision, cuda_graphs=graphs)
        try:
            times = _time_steps(runner, feed, target.gpu, runs)
        finally:
            runner.close()
        numbers["cuda_graphs" if graphs else "plain"] = {"median_ms": round(1e3 * statistics.median(times), 3),
                                                         "runs_ms": [round(1e3 * t, 3) for t in times]}
    summary = ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in numbers.items())
    if len(numbers) == 2:
        numbers["graph_speedup"] = round(numbers["plain"]["median_ms"] / numbers["cuda_graphs"]["median_ms"], 3)
        summary += f" ({numbers['graph_speedup']:.2f}x with graphs)"
    return Check(target.name, f"unet step {precision}", PASS, f"median of {runs} at {case}: {summary}",
                 round(time.perf_counter() - t0, 2), {"precision": precision, "case": str(case), **numbers})


def profile_switch(ctx: Context, target: Target, precision: str) -> Check:
    """The UNet at the first bucket, the second, the first again (one runner): each within tolerance of the
    reference, and the first bucket's output the same before and after the switch."""
    buckets = [c for c in ctx.cases if c.frames == ctx.cases[0].frames]
    if len(buckets) < 2:
        return Check(target.name, "profile switch", SKIP, "one size bucket in this engine directory")
    t0, runner = time.perf_counter(), open_runner(ctx, target, "unet", precision)
    try:
        order = [buckets[0], buckets[1], buckets[0]]
        outs = [{k: to_numpy(v) for k, v in runner.infer(ctx.feeds[c]["unet"]).items()} for c in order]
    finally:
        runner.close()
    names = (REFERENCE, target.name)
    ref = [compare_outputs(ctx.reference_outputs()[c]["unet"], o, precision, names) for c, o in zip(order, outs)]
    again = compare_outputs(outs[0], outs[2], "fp32", ("before", "after"))
    passed = all(r["passed"] for r in ref) and again["passed"]
    summary = f"{' -> '.join(str(c.size) for c in order)}: " + ("each within tolerance, repeatable" if passed else
                                                               "a bucket is off or differs after the switch")
    return Check(target.name, "profile switch", PASS if passed else FAIL, summary, round(time.perf_counter() - t0, 2),
                 {"order": [str(c) for c in order], "against_reference": ref, "first_again": again})


def _device_used_mib() -> float:
    """Device memory in use on this GPU, every allocator and context included (cudaMemGetInfo)."""
    import torch

    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def _open_run_close(ctx: Context, target: Target, precision: str) -> tuple[float, float]:
    """Device memory in use with a UNet runner open after one call, and after its ``close()``."""
    import torch

    runner = open_runner(ctx, target, "unet", precision)
    try:
        runner.infer(_device_feed(ctx.feeds[ctx.cases[0]]["unet"], True))
        loaded = _device_used_mib()
    finally:
        runner.close()
    torch.cuda.empty_cache()
    return loaded, _device_used_mib()


def low_memory(ctx: Context, target: Target, precision: str, slack_mb: float = 64.0) -> Check:
    """A UNet runner opened, called and closed twice: the second time, ``close()`` must give back all but
    ``slack_mb`` of what opening took (low-memory mode counts on it). The first cycle is not measured: the CUDA
    context, cuBLAS/cuDNN handles and kernel images a library loads once per process stay by design."""
    t0 = time.perf_counter()
    _open_run_close(ctx, target, precision)
    before = _device_used_mib()
    loaded, after = _open_run_close(ctx, target, precision)
    kept = after - before
    passed = kept <= slack_mb
    summary = f"{before:.0f} -> {loaded:.0f} -> {after:.0f} MiB used ({kept:+.0f} MiB kept, at most {slack_mb:g})"
    return Check(target.name, "low memory", PASS if passed else FAIL, summary, round(time.perf_counter() - t0, 2),
                 {"before_mib": before, "loaded_mib": loaded, "after_close_mib": after, "slack_mib": slack_mb})
