"""A benchmark session: load every pipeline once, warm up, then alternate measured runs round by round.

The pipelines ("sides") are ours on one or more (backend, precision) pairs and diffusers' TextToVideoSDPipeline in
one or more ``torch_dtype``s, so one run compares, say, t2vrt on OpenVINO bf16 with diffusers in bfloat16 and both
with diffusers in float32, on the same load of the machine. Quality is measured against diffusers float32 where it
runs (else against the first diffusers side); the pass/fail frame check applies where like meets like (fp32 against
float32).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from t2vrt.bench.machine import machine
from t2vrt.bench.report import FRAME_TOL, compare_frames, merge_parity, ratios, result, summarize
from t2vrt.bench.runs import BenchRequest, DiffusersRun, OursRun
from t2vrt.errors import InputError
from t2vrt.runtime.checks import check_positive

log = logging.getLogger(__name__)
TORCH_DTYPES = ("float32", "bfloat16", "float16")
# our precision -> the diffusers torch_dtype that does the same arithmetic (the default diffusers side)
LIKE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


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
    ours: tuple[tuple[str, str], ...] = ()  # (backend, precision) of each of our sides; empty: (backend, precision)
    torch_dtypes: tuple[str, ...] = ()  # diffusers' sides; empty: the one like our first side's precision
    efficiency: bool = True  # the UNet step's GFLOP/s against the matrix-product peak (needs the diffusers folder)
    fp16_check: bool = True  # with one side of ours in fp16: one more (untimed) run of ours in fp32 to compare with

    def to_json(self) -> dict:
        return asdict(self)

    def our_sides(self) -> tuple[tuple[str, str], ...]:
        return self.ours or ((self.backend, self.precision),)

    def diffusers_sides(self) -> tuple[str, ...]:
        if not self.diffusers:
            return ()
        return self.torch_dtypes or (LIKE[self.our_sides()[0][1]],)


def run_bench(config: BenchConfig, request: BenchRequest = BenchRequest()) -> dict:
    """Warm-up, then ``config.runs`` measured runs of each pipeline, alternated (forward, then backward) so drift in
    the machine's load falls on all; the frames of every round are compared so a speed-up never comes from doing
    different work."""
    check_positive("runs", config.runs)
    check_positive("warmup", config.warmup, allow_zero=True)
    for dtype in config.diffusers_sides():
        if dtype not in TORCH_DTYPES:
            raise InputError(f"unknown torch_dtype {dtype!r}; choose from {', '.join(TORCH_DTYPES)}")
    if not config.threads:
        return _run(config, request)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, request)
    finally:
        torch.set_num_threads(before)


def load_sides(config: BenchConfig, request: BenchRequest) -> tuple[list, BenchRequest]:
    """Every pipeline of the run, ours first; the request with the model's native size filled in."""
    ours, names = [], []
    for backend, precision in config.our_sides():
        ours.append(OursRun(config.engines, request, backend, precision, config.device, config.threads))
        ours[-1].name = unique(side_name("t2vrt", backend, precision, len(config.our_sides())), names)
    if request.height is None or request.width is None:
        h, w = ours[0].native_size()
        request = replace(request, height=request.height or h, width=request.width or w)
        for o in ours:
            o.request = request
    if config.diffusers and request.context_frames is not None:
        raise InputError("--context-frames has no counterpart in diffusers' TextToVideoSDPipeline, so the frames would "
                         "not compare; run the long request without --diffusers")
    refs = []
    for dtype in config.diffusers_sides():
        refs.append(DiffusersRun(config.diffusers, request, config.device, dtype))
        refs[-1].name = unique(side_name("diffusers", "", dtype, len(config.diffusers_sides())), names)
    return ours + refs, request


def side_name(kind: str, backend: str, precision: str, count: int) -> str:
    """"t2vrt" and "diffusers" when each runs once (the names earlier results use), else with what differs."""
    if count == 1:
        return kind
    return " ".join(x for x in (kind, backend, precision) if x)


def unique(name: str, taken: list[str]) -> str:
    """``name``, or ``name (2)``... when a side of that name runs already (the same pipeline twice: its noise)."""
    n, out = 1, name
    while out in taken:
        n += 1
        out = f"{name} ({n})"
    taken.append(out)
    return out


def _run(config: BenchConfig, request: BenchRequest) -> dict:
    sides, request = load_sides(config, request)
    data, rounds = measure(config, request, sides)
    if config.efficiency and config.diffusers and request.context_frames is None:
        from t2vrt.bench.flops import add_efficiency

        add_efficiency(data, config, request, sides)
    ours = sides[0]
    if config.fp16_check and len(config.our_sides()) == 1 and ours.precision == "fp16":
        data["fp16_vs_fp32"] = fp16_against_fp32(config, request, ours, rounds[-1][ours.name][0])
    return data


def measure(config: BenchConfig, request: BenchRequest, sides: list) -> tuple[dict, list]:
    """Warm-ups, then the measured rounds over loaded ``sides`` (ours first); the result and each round's frames."""
    warm: dict[str, list[dict]] = {p.name: [] for p in sides}
    for i in range(config.warmup):
        for p in sides:
            log.info("warm-up %d/%d: %s", i + 1, config.warmup, p.name)
            warm[p.name].append(p.run()[0])
    records: dict[str, list[dict]] = {p.name: [] for p in sides}
    rounds = []
    for i in range(config.runs):
        frames = {}
        for p in sides if i % 2 == 0 else sides[::-1]:
            log.info("run %d/%d: %s", i + 1, config.runs, p.name)
            record, frames[p.name] = p.run()
            records[p.name].append(record)
        rounds.append({p.name: (frames[p.name], p.latents) for p in sides})
    return assemble(config, request, sides, records, warm, rounds), rounds


def reference(sides: list) -> object | None:
    """The side every quality number is measured against: diffusers float32, else the first diffusers side."""
    refs = [p for p in sides if isinstance(p, DiffusersRun)]
    return next((p for p in refs if p.precision == "float32"), refs[0] if refs else None)


def like_for_like(p, ref) -> bool:
    """Whether the frames of ``p`` must match the reference's within the tolerance (same arithmetic), or are only
    measured (bf16 or fp16 against float32 differ by design)."""
    return LIKE.get(p.precision, p.precision) == ref.precision


def assemble(config: BenchConfig, request: BenchRequest, sides: list, records: dict, warm: dict, rounds: list) -> dict:
    ref = reference(sides)
    refs = [p for p in sides if isinstance(p, DiffusersRun)]
    entries = []
    for p in sides:
        entry = {"name": p.name, "kind": "diffusers" if p in refs else "t2vrt", "backend": p.backend,
                 "precision": p.precision, "load_rss_mb": p.load_rss_mb, "warmup": warm[p.name],
                 "ratios": {r.name: ratios(records[p.name], records[r.name]) for r in refs if r is not p}}
        if ref is not None and p is not ref:
            checks = [compare_frames(rd[p.name][0], rd[ref.name][0], config.tolerance, rd[p.name][1], rd[ref.name][1])
                      for rd in rounds]
            entry["against"] = ref.name
            entry["quality"] = merge_parity(checks)
            entry["like_for_like"] = like_for_like(p, ref)
        entries.append(entry)
    ours = sides[0]
    likes = [e["quality"] for e in entries if e["kind"] == "t2vrt" and e.get("like_for_like")]
    worst = max(likes, key=lambda q: q.get("max_abs", float("inf"))) if likes else None
    parity = {**worst, "ok": all(q["ok"] for q in likes)} if likes else None
    first_ref = next((r for r in refs if like_for_like(ours, r)), ref)  # "diffusers" of the earlier keys: like ours
    settings = {**config.to_json(), "backends": {p.name: p.backend for p in sides}, "memory": ours.memory.method,
                "reference": ref.name if ref else None}
    extra = {p.name: {"load_rss_mb": p.load_rss_mb, "warmup": warm[p.name]} for p in sides}
    data = result(machine(), settings, request.to_json(), records[ours.name],
                  records[first_ref.name] if first_ref else [], parity or {},
                  {"t2vrt": extra[ours.name], "diffusers": extra[first_ref.name] if first_ref else {}})
    for entry in entries:
        entry["runs"], entry["summary"] = records[entry["name"]], summarize(records[entry["name"]])
    data["sides"] = entries
    return data


def fp16_against_fp32(config: BenchConfig, request: BenchRequest, ours: OursRun, frames16) -> dict:
    """Our fp16 frames and latents of the last run against one fp32 run of ours on the same backend (not timed)."""
    from t2vrt.bench.quality import quality

    log.info("fp16 against fp32: one fp32 run of t2vrt on %s", ours.requested_backend)
    ref = OursRun(config.engines, request, ours.requested_backend, "fp32", config.device, config.threads)
    latents16 = ours.latents
    _, frames32 = ref.run()
    q = quality(frames16, frames32, latents16, ref.latents)
    ref.close()
    return q


__all__ = ["BenchConfig", "LIKE", "TORCH_DTYPES", "merge_parity", "run_bench"]
