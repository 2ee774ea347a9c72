"""A benchmark session: load both pipelines once, warm up, then alternate measured runs pair by pair."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from t2vrt.bench.machine import machine
from t2vrt.bench.report import FRAME_TOL, compare_frames, merge_parity, result
from t2vrt.bench.runs import BenchRequest, DiffusersRun, OursRun
from t2vrt.errors import InputError
from t2vrt.runtime.checks import check_positive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    engines: str
    diffusers: str | None = None  # the model folder the engines were exported from; None: ours alone
    runs: int = 3
    warmup: int = 1
    backend: str = "onnxruntime"
    precision: str = "fp32"
    device: str = "cpu"  # where diffusers runs (ours runs where its backend puts it)
    tolerance: float = FRAME_TOL
    threads: int | None = None  # torch's and ONNX Runtime's intra-op threads; None: each library's default

    def to_json(self) -> dict:
        return asdict(self)


def run_bench(config: BenchConfig, request: BenchRequest = BenchRequest()) -> dict:
    """Warm-up, then ``config.runs`` measured runs of each pipeline, alternated (ABBA) so drift in the machine's load
    falls on both; the frames of every pair are compared so a speed-up never comes from doing different work."""
    check_positive("runs", config.runs)
    check_positive("warmup", config.warmup, allow_zero=True)
    if not config.threads:
        return _run(config, request)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, request)
    finally:
        torch.set_num_threads(before)


def _run(config: BenchConfig, request: BenchRequest) -> dict:
    ours = OursRun(config.engines, request, config.backend, config.precision, config.device, config.threads)
    if request.height is None or request.width is None:
        h, w = ours.native_size()
        request = replace(request, height=request.height or h, width=request.width or w)
        ours.request = request
    if config.diffusers and request.context_frames is not None:
        raise InputError("--context-frames has no counterpart in diffusers' TextToVideoSDPipeline, so the frames would "
                         "not compare; run the long request without --diffusers")
    ref = DiffusersRun(config.diffusers, request, config.device, config.precision) if config.diffusers else None
    pipelines = [p for p in (ours, ref) if p is not None]
    warm: dict[str, list[dict]] = {p.name: [] for p in pipelines}
    for i in range(config.warmup):
        for p in pipelines:
            log.info("warm-up %d/%d: %s", i + 1, config.warmup, p.name)
            warm[p.name].append(p.run()[0])
    records: dict[str, list[dict]] = {p.name: [] for p in pipelines}
    checks = []
    for i in range(config.runs):
        frames = {}
        for p in pipelines if i % 2 == 0 else pipelines[::-1]:
            log.info("run %d/%d: %s", i + 1, config.runs, p.name)
            record, frames[p.name] = p.run()
            records[p.name].append(record)
        if ref is not None:
            checks.append(compare_frames(frames[ours.name], frames[ref.name], config.tolerance, ours.latents,
                                         ref.latents))
    settings = {**config.to_json(), "backends": {p.name: p.backend for p in pipelines}, "memory": ours.memory.method}
    extra = {p.name: {"load_rss_mb": p.load_rss_mb, "warmup": warm[p.name]} for p in pipelines}
    data = result(machine(), settings, request.to_json(), records[ours.name], records.get("diffusers", []),
                  merge_parity(checks), extra)
    if config.precision == "fp16":
        data["fp16_vs_fp32"] = fp16_against_fp32(config, request, ours, frames[ours.name])
    return data


def fp16_against_fp32(config: BenchConfig, request: BenchRequest, ours: OursRun, frames16) -> dict:
    """Our fp16 frames and latents of the last run against one fp32 run of ours on the same backend (not timed)."""
    from t2vrt.bench.quality import quality

    log.info("fp16 against fp32: one fp32 run of t2vrt on %s", config.backend)
    ref = OursRun(config.engines, request, config.backend, "fp32", config.device, config.threads)
    latents16 = ours.latents
    _, frames32 = ref.run()
    q = quality(frames16, frames32, latents16, ref.latents)
    ref.pipe.close()
    return q
