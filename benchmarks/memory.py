"""Peak memory on the CPU with ONNX Runtime, with and without the three memory savings.

    python -m benchmarks.memory generate --preset small --frames 16 64 --size 128 --steps 2
    python -m benchmarks.memory generate --preset modelscope-1.7b --frames 16 64 --size 64 --steps 1
    python -m benchmarks.memory vae --size 256 --frames 16 --chunks 1 2 4 8   # the real-size VAE alone
    python -m benchmarks.memory unet --preset modelscope-1.7b --frames 16 64 --size 64   # real-size UNet alone

``generate`` runs the whole pipeline in five configurations per frame count: none of the savings, each alone
(low-memory mode, chunked VAE decode, feed-forward chunking at export), and all three. ``vae`` runs the real-size
VAE decoder and encoder over a clip, ``chunk`` frames per call; ``unet`` runs UNet graphs alone (by default the
preset's, traced whole and sliced). Every configuration runs in a fresh subprocess that reports its own peak
resident set (getrusage ru_maxrss: exact) and, from an RSS sampler every 5 ms, the peak while each component ran;
the parent kills a child above --max-gb (this machine is shared). --mem-pattern and --no-trim undo two ONNX Runtime
settings of t2vrt to measure what they save. Weights are random: memory and time do not depend on their values.
Prints a table, then one JSON document with the machine and the library versions; results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

from t2vrt.bench.harness import child_json
from t2vrt.bench.machine import describe, machine
from t2vrt.host import peak_rss_bytes, rss_bytes

log = logging.getLogger("memory")
MEM_PATTERN = False  # --mem-pattern
NO_TRIM = False  # --no-trim
PROMPT = "a panda eating bamboo on a rock"
SAVINGS = {  # name: (low_memory, chunked decode, feed-forward chunking)
    "none": (False, False, False),
    "low-memory": (True, False, False),
    "chunked decode": (False, True, False),
    "ff chunking": (False, False, True),
    "all three": (True, True, True),
}


def rss_mb() -> float:
    return rss_bytes() / 2**20


def peak_mb() -> float:
    """This process's peak resident set so far."""
    return peak_rss_bytes() / 2**20


class StageSampler(threading.Thread):
    """Samples RSS every ``every`` seconds and keeps the peak per stage (whatever ``stage`` says at the time)."""

    def __init__(self, every: float = 0.005):
        super().__init__(daemon=True)
        self.every, self.stage, self.peaks, self._done = every, "load", {}, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss_mb())
            time.sleep(self.every)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self.join()
        return {k: round(v) for k, v in self.peaks.items()}


# -- children: one configuration each -------------------------------------------------------------------------------
def child_generate(cfg: dict) -> dict:
    from t2vrt import Pipeline
    from t2vrt.runtime.stages import StageObserver

    base = rss_mb()
    sampler = StageSampler()
    sampler.start()

    class Probe(StageObserver):  # a stage starts before its runner opens: the samples from then on are its own
        def stage_started(self, stage):
            sampler.stage = {"text_encoder": "text", "vae_decoder": "decode"}.get(stage, stage)

    t0 = time.perf_counter()
    pipe = Pipeline.load(cfg["dir"], low_memory=cfg["low_memory"])
    pipe.add_observer(Probe())
    video = pipe(
        PROMPT,
        num_frames=cfg["frames"],
        height=cfg["size"],
        width=cfg["size"],
        num_inference_steps=cfg["steps"],
        decode_chunk_size=cfg["chunk"],
        seed=0,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    stages = sampler.stop()
    return {"peak_mb": round(peak_mb()), "base_mb": round(base), "stages": stages, "seconds": round(seconds, 1),
            "frames_mb": round(video.images.nbytes / 2**20, 1)}


def child_component(cfg: dict) -> dict:
    """One exported component alone on random inputs at ``sizes``; along the frame batch ``n`` (the VAE's), ``chunk``
    frames per call as Pipeline.run_chunked does."""
    import numpy as np

    from t2vrt.engines.onnxruntime import OrtRunner

    spec = preset_specs(cfg["preset"])[cfg["component"]]
    base = rss_mb()
    runner = OrtRunner(cfg["onnx"], spec, providers=["CPUExecutionProvider"])
    loaded = rss_mb()
    rng = np.random.default_rng(0)
    feed = {t.name: (np.full(t.shape(cfg["sizes"]), 981.0, np.float32) if t.name == "timestep" else
                     rng.standard_normal(t.shape(cfg["sizes"]), dtype=np.float32)) for t in spec.inputs}
    n, chunk = cfg["sizes"].get("n", 1), cfg.get("chunk") or 1
    t0 = time.perf_counter()
    calls = (
        [runner.infer({k: v[i : i + chunk] for k, v in feed.items()}) for i in range(0, n, chunk)]
        if "n" in cfg["sizes"]
        else [runner.infer(feed)]
    )
    seconds = time.perf_counter() - t0
    del calls
    runner.close()  # what low-memory mode does between stages: the RSS left is what the next stage cannot use
    return {
        "peak_mb": round(peak_mb()),
        "base_mb": round(base),
        "loaded_mb": round(loaded),
        "closed_mb": round(rss_mb()),
        "seconds": round(seconds, 1),
    }


def preset_specs(preset: str) -> dict:
    """The component specs of a t2vrt.presets.PRESETS architecture (what export would read from its checkpoint)."""
    from t2vrt.components import ModelDims, component_specs
    from t2vrt.presets import PRESETS

    p = PRESETS[preset]
    return component_specs(
        ModelDims(4, p.text_hidden, 77, 2 ** (len(p.vae_channels) - 1), 2 ** (len(p.unet_channels) - 1), p.sample_size)
    )


def child_prepare(cfg: dict) -> dict:
    """Random-weight model and engine directories (reused when present); in a child so its memory goes back."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model
    from t2vrt.export.random_model import build_model

    work = Path(cfg["work"])
    model = work / "model"
    if not (model / "model_index.json").is_file():
        build_model(model, cfg["preset"])
    f, s = cfg["frames"], cfg["size"]
    profile = Profile(
        frames=(1, min(f), max(f)), height=(s, s, s), width=(s, s, s), decode_chunk=(1, cfg["chunk"], max(f))
    )
    for out, slices in ((cfg["plain"], 0), (cfg["ff"], cfg["ff_slices"])):
        if not (Path(out) / "manifest.json").is_file():
            export_model(str(model), out, ExportOptions(profile=profile, ff_chunks=slices, validate=cfg["validate"]))
    return {}


def child_prepare_vae(cfg: dict) -> dict:
    """A preset's VAE decoder and encoder as ONNX graphs (no manifest: nothing else is needed)."""
    import torch

    from t2vrt.export.modules import VaeDecoder, VaeEncoder
    from t2vrt.export.onnx import export_onnx
    from t2vrt.export.random_model import make_vae
    from t2vrt.presets import PRESETS

    torch.manual_seed(0)
    vae = make_vae(PRESETS[cfg["preset"]]).eval()
    specs = preset_specs(cfg["preset"])
    for name, wrapper in (("vae_decoder", VaeDecoder), ("vae_encoder", VaeEncoder)):
        path = Path(cfg["work"]) / name / "model.onnx"
        if not path.is_file():
            export_onnx(wrapper(vae).eval(), specs[name], {"n": 2, "h": 4, "w": 6}, path)
    return {}


def child_prepare_unet(cfg: dict) -> dict:
    """A preset's UNet traced whole and ff-chunked, from one set of weights built once.

    As ``t2vrt export`` traces it (same wrapper, trace sizes, dynamic axes, opset) but without constant folding,
    which would materialize a transposed copy of every Linear weight beside the module's (ONNX Runtime folds the
    same constants when it loads the graph), and without validation: the UNet alone, quickly, in one copy of
    its weights (1.4B parameters: about 6 GB).
    """
    import torch

    from t2vrt.components import ModelDims
    from t2vrt.export.exporter import trace_sizes
    from t2vrt.export.modules import UNet, feed_forward_chunking
    from t2vrt.export.onnx import OPSET, sample_inputs
    from t2vrt.export.random_model import make_unet
    from t2vrt.presets import PRESETS

    p = PRESETS[cfg["preset"]]
    spec = preset_specs(cfg["preset"])["unet"]
    torch.manual_seed(0)
    unet = UNet(make_unet(p)).eval()
    args = sample_inputs(
        spec, trace_sizes(ModelDims(4, p.text_hidden, 77, 8, 2 ** (len(p.unet_channels) - 1), p.sample_size))
    )
    for path, slices in ((Path(cfg["plain"]), 0), (Path(cfg["ff"]), cfg["ff_slices"])):
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad(), feed_forward_chunking(unet, slices):
            torch.onnx.export(
                unet,
                args,
                str(path),
                input_names=[t.name for t in spec.inputs],
                output_names=["noise_pred"],
                dynamic_axes=spec.dynamic_axes(),
                opset_version=OPSET,
                do_constant_folding=False,
                dynamo=False,
            )
    return {}


CHILDREN = {
    "generate": child_generate,
    "component": child_component,
    "prepare": child_prepare,
    "prepare_vae": child_prepare_vae,
    "prepare_unet": child_prepare_unet,
}


# -- parent -----------------------------------------------------------------------------------------------------------
def spawn(kind: str, cfg: dict, max_gb: float) -> dict:
    """Run one child; killed if its RSS passes ``max_gb`` (this machine is shared), reporting that instead."""
    out = child_json("benchmarks.memory", dict(cfg, kind=kind, mem_pattern=MEM_PATTERN, no_trim=NO_TRIM),
                     max_rss_gb=max_gb)
    out.pop("child_seconds")
    out.pop("child_peak_rss_mb")
    return out


def run_generate(args) -> list[dict]:
    work = Path(args.work) / args.preset
    tag = f"{args.size}px-{max(args.frames)}f-chunk{args.chunk}"  # what the profile holds
    plain, ff = work / f"engines-{tag}", work / f"engines-{tag}-ff{args.ff_slices}"
    prep = dict(
        work=str(work),
        preset=args.preset,
        frames=args.frames,
        size=args.size,
        chunk=args.chunk,
        plain=str(plain),
        ff=str(ff),
        ff_slices=args.ff_slices,
        validate=not args.no_validate,
    )
    t0 = time.perf_counter()
    res = spawn("prepare", prep, args.max_gb)
    if "error" in res:
        raise SystemExit(f"preparing the {args.preset} engines failed: {res['error']}")
    log.info("engines ready in %.0f s", time.perf_counter() - t0)
    rows = []
    for frames in args.frames:
        for name in args.configs:
            low, chunked, ffc = SAVINGS[name]
            cfg = dict(dir=str(ff if ffc else plain), low_memory=low, frames=frames, size=args.size, steps=args.steps,
                       chunk=args.chunk if chunked else frames)
            row = {"preset": args.preset, "frames": frames, "size": args.size, "savings": name, "chunk": cfg["chunk"],
                   **spawn("generate", cfg, args.max_gb)}
            log.info("%s", row)
            rows.append(row)
    return rows


def run_vae(args) -> list[dict]:
    work = Path(args.work) / f"vae-{args.preset}"
    res = spawn("prepare_vae", dict(work=str(work), preset=args.preset), args.max_gb)
    if "error" in res:
        raise SystemExit(f"exporting the {args.preset} VAE failed: {res['error']}")
    rows = []
    for component in args.components:
        for frames in args.frames:
            for chunk in (c for c in args.chunks if c <= frames):
                sizes = {"n": frames, "h": args.size // 8, "w": args.size // 8}
                cfg = dict(
                    preset=args.preset,
                    component=component,
                    onnx=str(work / component / "model.onnx"),
                    sizes=sizes,
                    chunk=chunk,
                )
                row = {
                    "component": component,
                    "frames": frames,
                    "size": args.size,
                    "chunk": chunk,
                    **spawn("component", cfg, args.max_gb),
                }
                row["s_per_frame"] = round(row["seconds"] / frames, 2) if "seconds" in row else None
                log.info("%s", row)
                rows.append(row)
    return rows


def run_unet(args) -> list[dict]:
    """UNet graphs alone, one guided step (batch 2), per frame count and graph; by default the preset's UNet traced
    whole and ff-chunked here (child_prepare_unet)."""
    graphs = args.onnx
    if not graphs:
        work = Path(args.work) / f"unet-{args.preset}"
        graphs = [str(work / "whole" / "model.onnx"), str(work / f"ff{args.ff_slices}" / "model.onnx")]
        res = spawn(
            "prepare_unet",
            dict(preset=args.preset, plain=graphs[0], ff=graphs[1], ff_slices=args.ff_slices),
            args.max_gb,
        )
        if "error" in res:
            raise SystemExit(f"tracing the {args.preset} UNet failed: {res['error']}")
    rows = []
    for frames in args.frames:
        for onnx in graphs:
            sizes = {"b": 2, "f": frames, "h": args.size // 8, "w": args.size // 8}
            cfg = dict(preset=args.preset, component="unet", onnx=onnx, sizes=sizes)
            row = {
                "component": "unet",
                "graph": onnx,
                "frames": frames,
                "size": args.size,
                **spawn("component", cfg, args.max_gb),
            }
            log.info("%s", row)
            rows.append(row)
    return rows


def table(rows: list[dict], keys: list[str]) -> str:
    stage_keys = sorted({k for r in rows for k in r.get("stages", {})}, key=["load", "text", "unet", "decode"].index)
    extra = [k for k in ("loaded_mb", "closed_mb", "s_per_frame", "error") if any(k in r for r in rows)]
    cols = keys + ["peak_mb"] + [f"{k}_mb" for k in stage_keys] + ["seconds"] + extra
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        vals = {**r, **{f"{k}_mb": v for k, v in r.get("stages", {}).items()}}
        lines.append(" | ".join(str(vals.get(c, "")) for c in cols))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from t2vrt.components import Profile

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--work", default="/tmp/t2vrt-memory", help="where models and engine directories are kept between runs"
    )
    p.add_argument("--max-gb", type=float, default=7.5, help="kill a configuration whose RSS passes this")
    p.add_argument(
        "--mem-pattern", action="store_true", help="with ONNX Runtime's memory pattern on (t2vrt's default: off)"
    )
    p.add_argument(
        "--no-trim", action="store_true", help="closing a runner does not give the freed heap back (malloc_trim)"
    )
    sub = p.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("generate", help="the whole pipeline, with and without each saving")
    g.add_argument("--preset", default="small", help="a t2vrt.presets preset")
    g.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    g.add_argument("--size", type=int, default=128, help="height and width in pixels")
    g.add_argument("--steps", type=int, default=2)
    g.add_argument(
        "--chunk", type=int, default=Profile().decode_chunk[1], help="VAE frames per call when decode is chunked"
    )
    g.add_argument("--ff-slices", type=int, default=8, help="feed-forward pieces of the ff-chunked export")
    g.add_argument("--configs", nargs="+", default=list(SAVINGS), choices=list(SAVINGS))
    g.add_argument("--no-validate", action="store_true", help="export without the comparison with PyTorch")
    v = sub.add_parser("vae", help="the VAE decoder and encoder alone, by frames per call")
    v.add_argument("--preset", default="modelscope-1.7b")
    v.add_argument("--size", type=int, default=256)
    v.add_argument("--frames", type=int, nargs="+", default=[16])
    v.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4, 8])
    v.add_argument(
        "--components", nargs="+", default=["vae_decoder", "vae_encoder"], choices=["vae_decoder", "vae_encoder"]
    )
    u = sub.add_parser("unet", help="exported UNet graphs alone (e.g. the real-size one, whole and ff-chunked)")
    u.add_argument(
        "onnx", nargs="*", help="model.onnx of each UNet graph to compare; none: trace the preset's whole and sliced"
    )
    u.add_argument("--ff-slices", type=int, default=8, help="feed-forward pieces of the sliced trace")
    u.add_argument("--preset", default="modelscope-1.7b", help="the architecture the graphs were exported from")
    u.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    u.add_argument("--size", type=int, default=64)
    return p


def with_memory_pattern() -> None:
    """Turn ONNX Runtime's memory pattern back on (t2vrt turns it off), to measure what that costs."""
    from t2vrt.engines import onnxruntime as ortr

    plain = ortr.session_options

    def options(threads=None):
        so = plain(threads)
        so.enable_mem_pattern = True
        return so

    ortr.session_options = options


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        logging.basicConfig(level=logging.WARNING)
        cfg = json.loads(sys.argv[2])
        if cfg.get("mem_pattern"):
            with_memory_pattern()
        if cfg.get(
            "no_trim"
        ):  # closing a runner leaves the freed heap with the C allocator, as before the trim was added
            import t2vrt.engines.onnxruntime as ortr

            ortr.return_freed_heap = lambda: None
        print(json.dumps(CHILDREN[cfg["kind"]](cfg)))
        return
    global MEM_PATTERN, NO_TRIM
    args = build_parser().parse_args()
    MEM_PATTERN, NO_TRIM = args.mem_pattern, args.no_trim
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = {"generate": run_generate, "vae": run_vae, "unet": run_unet}[args.mode](args)
    keys = {
        "generate": ["preset", "frames", "size", "savings", "chunk"],
        "vae": ["component", "frames", "size", "chunk"],
        "unet": ["graph", "frames", "size"],
    }[args.mode]
    info = machine()
    print("\n" + describe(info))
    print(f"command: python -m benchmarks.memory {' '.join(sys.argv[1:])}\n")
    print(table(rows, keys))
    print(json.dumps({"machine": info, "argv": sys.argv[1:], "rows": rows}))


if __name__ == "__main__":
    main()
