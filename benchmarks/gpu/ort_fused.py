"""extended.py's phase ``cuda_fused``: the UNet with ONNX Runtime's CUDA fusions against the portable graph.

ONNX Runtime's own Stable Diffusion recipe (``onnxruntime.transformers.models.stable_diffusion``): the transformer
optimizer (model type ``unet``, ``use_gpu=True``) fuses the **fp32** graph, then converts the result to fp16 with
its own float16 pass (inputs and outputs kept float32, as ours are). It is done the same way here, from the engine
directory's portable fp32 UNet graph, because the portable fp16 graph fuses nothing: the Casts our fp16 pass puts
around the ops it keeps in fp32 break every pattern the optimizer looks for (tiny preset: 0 fused operators from the
fp16 graph; 18 MultiHeadAttention, 11 SkipGroupNorm, 10 GroupNorm from the fp32 one). The fused graph goes to a
temp folder in --work, removed when the phase ends (it is the UNet's size; nothing in the engine directory changes).

Then, at the main request's UNet shape (batch 2): the portable graph against the fused one on ONNX Runtime CUDA with
I/O binding, alternated, median of ``ROUNDS`` calls each; their outputs on the same feed (relative L2, max abs,
NaN); and one whole generation of the main request with the fused UNet (its frames against the main phase's).

Off CUDA the CUDA-only operators (GroupNorm, SkipGroupNorm, BiasSplitGelu, BiasAdd, NhwcConv) have no kernel: the
CUDA option set is still built and the fusion run (pure graph rewriting; its operators recorded, its CPU load
recorded as an expected skip), and a graph fused with the CPU-capable subset (attention) stands in for the timing,
the comparison and the generation, so every line of the phase runs in a CPU check.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from t2vrt.export.ort_fusion import CPU_FUSIONS, memory_shortfall, quiet, run_optimizer, save_fused

log = logging.getLogger("gpu-ort")
# FusionOptions attributes set for CUDA (every other fusion off). NhwcConv off by default (extended.py --fused-nhwc
# turns it on): ONNX Runtime's Stable Diffusion notes recommend NHWC convolution for tensor cores in general, with no
# Hopper measurement, and on our UNet3D it converts only the 2-D convolutions (tiny preset: 25 of 57 Conv; the
# temporal ones are 5-D) while removing few layout Transposes (93 -> 86), so it is a separate, later question.
CUDA_FUSIONS = {"enable_attention": True, "use_multi_head_attention": True, "enable_packed_qkv": True,
                "enable_packed_kv": True, "enable_group_norm": True, "enable_skip_group_norm": True,
                "enable_bias_splitgelu": True, "enable_bias_add": True}
CUDA_ONLY_OPS = ("GroupNorm", "SkipGroupNorm", "BiasSplitGelu", "BiasAdd", "NhwcConv")
ROUNDS, WARMUP = 10, 2
# The optimizer's time grows with the graph's node count faster than linearly (mostly its symbolic shape inference
# over the dynamic frames/height/width): fused (CUDA options, patch_group_norm_lookup on) and converted to fp16 in
# 42.3 s for the small preset's 7327 nodes here (52.1 s unpatched), 7.1 s for tiny's 3487, so
# s = FUSE_S_PER_NODE2 * nodes**2 (a little above small's), plus reading/converting/writing the weights
# (FUSE_S_PER_GB) and the sessions, timing and generation after it (AFTER_FUSE_S). The phase skips itself when the
# budget left is below the estimate.
FUSE_S_PER_NODE2, FUSE_S_PER_GB, AFTER_FUSE_S = 9e-7, 3.0, 45.0


def patch_group_norm_lookup() -> None:
    """ONNX Runtime's GroupNorm fusion looks up each candidate's Mul child without the input map it was handed, so
    the whole map is rebuilt per candidate (quadratic in nodes; 15 s of the small preset's fusion). Hand it the map:
    within one fusion pass nodes are only added and removed after every candidate is matched, so it is current.
    Every module copy of the class is patched (the package imports it under two names)."""
    import sys

    import onnxruntime.transformers.optimizer  # noqa: F401  (imports the fusion modules)

    for cls in {m.FusionGroupNorm for n, m in list(sys.modules.items()) if n.endswith("fusion_group_norm")}:
        if cls.__dict__.get("_t2vrt_patched"):
            continue

        def fuse(self, add_node, input_name_to_nodes, output_name_to_node, _original=cls.fuse):
            find = self.model.find_first_child_by_type
            self.model.find_first_child_by_type = lambda node, t, names=None, recursive=True: find(
                node, t, names if names is not None else input_name_to_nodes, recursive)
            try:
                return _original(self, add_node, input_name_to_nodes, output_name_to_node)
            finally:
                del self.model.find_first_child_by_type  # the class's method again

        cls.fuse, cls._t2vrt_patched = fuse, True


def fuse(src: Path, dst: Path, on: dict, precision: str) -> dict:
    """Write ``dst``: ``src`` (fp32) fused with the FusionOptions in ``on`` (use_gpu=True), then fp16 if asked;
    with external data when ``src`` has it. Returns the fused operators' counts and the seconds of each step."""
    patch_group_norm_lookup()
    t0 = time.perf_counter()
    m = run_optimizer(src, "unet", on, use_gpu=True, only_onnxruntime=False)
    t1 = time.perf_counter()
    if precision == "fp16":
        with quiet():
            m.convert_float_to_float16(keep_io_types=True)
    t2 = time.perf_counter()
    external = src.with_name(src.name + ".data").exists()
    ops = save_fused(m, src, dst)
    return {"ops": ops, "cuda_only_ops": {k: ops[k] for k in CUDA_ONLY_OPS if k in ops}, "external_data": external,
            "fuse_s": round(t1 - t0, 2), "to_fp16_s": round(t2 - t1, 2), "save_s": round(time.perf_counter() - t2, 2)}


def cpu_load(path: Path) -> str:
    """Whether the CPU provider loads ``path``: "loads", or the expected skip with ONNX Runtime's first line."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return "loads"
    except Exception as e:  # no CPU kernel for a CUDA-only operator: what this check expects
        return f"skipped (expected, CUDA-only operators): {str(e).splitlines()[0][:200]}"


def timed_pair(a, b, feed: dict, sync) -> dict:
    """Warm-up, then ``ROUNDS`` calls of each runner alternated (ABBA); medians in seconds, and the outputs of the
    last calls (same feed)."""
    times: dict[str, list[float]] = {"portable": [], "fused": []}
    outs = {}
    for _ in range(WARMUP):
        a.infer(feed), b.infer(feed)
    for i in range(ROUNDS):
        for name, r in (("portable", a), ("fused", b)) if i % 2 == 0 else (("fused", b), ("portable", a)):
            sync()
            t0 = time.perf_counter()
            outs[name] = r.infer(feed)["noise_pred"]
            sync()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"median_s": med, "runs_s": times, "speedup": med["portable"] / med["fused"], "_outs": outs}


def compare(fused, portable) -> dict:
    """The fused graph's UNet output against the portable graph's, same feed."""
    import numpy as np

    from t2vrt.bench.quality import relative_l2
    from t2vrt.runtime.arrays import to_numpy

    f, p = (np.asarray(to_numpy(x), np.float64) for x in (fused, portable))
    return {"rel_l2": relative_l2(f, p), "max_abs": float(np.nanmax(np.abs(f - p))),
            "nan_fused": int(np.isnan(f).sum()), "nan_portable": int(np.isnan(p).sum())}


def against_fp32(path: Path, spec, device: str, feed: dict, outs: dict) -> dict:
    """Both fp16 outputs against the portable fp32 graph's on the same feed: which fp16 conversion loses more
    (ours keeps some paths in fp32 by measurement; ONNX Runtime's float16 pass keeps none)."""
    from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner

    ref = OrtBoundRunner(path, spec, device)
    r = ref.infer(feed)["noise_pred"]
    ref.close()
    return {name: compare(o, r) for name, o in outs.items()}


def generation(args, engines: str, make_unet, main_frames) -> dict:
    """The main request once more (warm-up, one measured run) with the fused UNet; its frames against the main
    phase's t2vrt frames (same seed and request: only the UNet graph differs)."""
    import t2vrt.runtime.pipeline as pipeline
    from t2vrt.bench.report import compare_frames
    from t2vrt.bench.runs import BenchRequest, OursRun

    request = BenchRequest(num_frames=args.frames, height=args.size, width=args.size, num_inference_steps=args.steps)
    original = pipeline.open_runner
    pipeline.open_runner = lambda root, m, name, *a, **k: (
        make_unet() if name == "unet" else original(root, m, name, *a, **k)
    )
    try:
        ours = OursRun(engines, request, "onnxruntime", args.precision, args.device)
    finally:
        pipeline.open_runner = original
    ours.run()
    record, frames = ours.run()
    unet = Path(ours.pipe.runner("unet").path).name  # the graph the loop ran, recorded as proof
    ours.pipe.close()
    out = {"unet_graph": unet, "total_s": record["total_s"], "unet_per_step_s": record["unet_per_step_s"]}
    if main_frames is not None:
        out["against_main_t2vrt"] = compare_frames(frames, main_frames, 1 / 255)
    return out


def estimate_s(src: Path) -> tuple[float, int]:
    """Seconds the phase needs: the optimizer's time for this graph's nodes and bytes, then sessions, timing and
    generation (the constants above)."""
    import onnx

    nodes = len(onnx.load(str(src), load_external_data=False).graph.node)
    size = sum(p.stat().st_size for p in (src, src.with_name(src.name + ".data")) if p.exists())
    return FUSE_S_PER_NODE2 * nodes ** 2 + FUSE_S_PER_GB * size / 1e9 + AFTER_FUSE_S, nodes


def phase_cuda_fused(args, engines: str, feed: dict, main_frames, seconds_left) -> dict:
    """The fused UNet graph made, timed against the portable one, compared, and run end to end (module docstring)."""
    from t2vrt.bench.measure import sync_for
    from t2vrt.engines.onnxruntime import OrtRunner
    from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner
    from t2vrt.manifest import load_manifest

    root, m = Path(engines), load_manifest(engines)
    src, spec, on_cuda = m.onnx_path(root, "unet", "fp32"), m.spec("unet"), args.device.startswith("cuda")
    need, nodes = estimate_s(src)
    options = {**CUDA_FUSIONS, "enable_nhwc_conv": bool(getattr(args, "fused_nhwc", False))}
    if seconds_left() < need:
        raise TimeoutError(f"skipped: {seconds_left():.0f} s of the budget left, the phase needs about {need:.0f} s")
    too_big = memory_shortfall(src)  # the real UNet: about 31 GB
    if too_big:
        raise MemoryError(f"skipped: {too_big}")
    # the fused graphs: in a temp folder of the work folder (beside the engine directory, never in it) rather than under
    # OUT, whose files travel back from the GPU machine: a run killed mid-phase must not leave the UNet's size there
    tmp = Path(tempfile.mkdtemp(prefix="cuda_fused-", dir=args.work))
    try:
        out = {"source": str(src.relative_to(root)), "source_nodes": nodes, "precision": args.precision,
               "options": options, "estimate_s": round(need, 1), "device": args.device}
        out["cuda_graph"] = fuse(src, tmp / "unet_cuda.onnx", options, args.precision)
        timed = tmp / "unet_cuda.onnx"
        if not on_cuda:
            out["cuda_graph"]["cpu_load"] = cpu_load(timed)
            out["cpu_stand_in"] = {
                "options": CPU_FUSIONS,
                **fuse(src, tmp / "unet_cpu.onnx", CPU_FUSIONS, args.precision),
            }
            timed = tmp / "unet_cpu.onnx"
        out["timed_graph"] = "CUDA fusions" if on_cuda else "CPU stand-in (attention fusion only)"
        portable = OrtBoundRunner(m.onnx_path(root, "unet", args.precision), spec, args.device)
        fused = OrtBoundRunner(timed, spec, args.device)
        out["providers"] = fused.providers
        pair = timed_pair(portable, fused, feed, sync_for(args.device))
        outs = pair.pop("_outs")
        out["unet"], out["fused_vs_portable"] = pair, compare(outs["fused"], outs["portable"])
        portable.close()
        if args.precision == "fp16":
            out["against_fp32"] = against_fp32(src, spec, args.device, feed, outs)
        make = (lambda: fused) if on_cuda else (lambda: OrtRunner(timed, spec, providers=["CPUExecutionProvider"]))
        out["generation"] = generation(args, engines, make, main_frames)
        fused.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # made by this call


def summary_lines(d: dict) -> list[str]:
    """summary.md's table for the phase."""
    g, u, c, gen = d["cuda_graph"], d["unet"], d["fused_vs_portable"], d["generation"]
    ms = lambda s: f"{1e3 * s:.1f}"  # noqa: E731
    nhwc = "on" if d["options"].get("enable_nhwc_conv") else "off"
    lines = [
        "",
        f"## UNet with ONNX Runtime's CUDA fusions ({d['precision']}, fused from the fp32 graph, NhwcConv {nhwc})",
        f"CUDA fusion: {g['ops']} in {g['fuse_s'] + g['to_fp16_s'] + g['save_s']:.1f} s "
        f"(fuse {g['fuse_s']} s, fp16 {g['to_fp16_s']} s, save {g['save_s']} s)",
    ]
    if "cpu_stand_in" in d:
        s = d["cpu_stand_in"]
        lines.append(f"CUDA-fused graph on the CPU: {g['cpu_load']}; timed instead: the CPU stand-in {s['ops']}")
    lines += [
        f"timed: {d['timed_graph']} on {d['providers']}, batch 2, median of {len(u['runs_s']['fused'])} "
        "alternated calls",
        "",
        "| UNet call | portable | fused | portable / fused |",
        "|---|---|---|---|",
        f"| ms | {ms(u['median_s']['portable'])} | {ms(u['median_s']['fused'])} | {u['speedup']:.2f}x |",
        "",
        f"fused against portable output: relative L2 {c['rel_l2']:.2e}, max abs {c['max_abs']:.2e}, "
        f"NaN {c['nan_fused']} (portable {c['nan_portable']})",
    ]
    for name, a in (d.get("against_fp32") or {}).items():
        lines.append(
            f"{name} fp16 against the portable fp32 graph: relative L2 {a['rel_l2']:.2e}, max abs {a['max_abs']:.2e}"
        )
    lines += [
        f"whole generation with the fused UNet: {ms(gen['total_s'])} ms, UNet {ms(gen['unet_per_step_s'])} ms/step"
    ]
    q = gen.get("against_main_t2vrt")
    if q:
        lines.append(f"its frames against the main phase's t2vrt frames: PSNR {q['psnr_db']:.1f} dB, max abs "
                     f"{q['max_abs']:.3g}, NaN frames {q['nan_frames']}, black frames {q['black_frames']}")
    return lines
