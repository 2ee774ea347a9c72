"""`t2vrt selftest`: every backend available here on the same seeded feeds, compared with ONNX Runtime CPU fp32.

The engine directory is used through a private hard-linked copy (workdir.py), so what the selftest builds never
lands in the user's directory; without one, the tiny preset is exported there first. Each available backend:
engines built where it needs them (TensorRT: both size buckets for this GPU; TensorRT-RTX without a GPU: the first
bucket built for sm89 and nothing run), every component compared (Polygraphy), one whole generation compared, a
UNet step timed, and on a GPU the size-bucket switch and the memory given back checked.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from t2vrt.selftest import checks
from t2vrt.selftest.feeds import frame_counts, sizes
from t2vrt.selftest.report import FAIL, NOT_RUN, PASS, BackendReport, Budget, Check
from t2vrt.selftest.targets import Target, check_only, detect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelftestOptions:
    budget_s: float = 600.0  # checks that would start after this many seconds are not run (listed; the run fails)
    only: tuple[str, ...] = ()  # target name prefixes to check (the reference is computed whatever they are)
    keep: bool = False  # keep the temporary engine directory (its path is in the JSON)


def guarded(budget: Budget, target: Target, name: str, fn: Callable[[], Check]) -> Check:
    """Run one check: "not run" once the budget is spent; an exception is the check's failure in one line."""
    if budget.spent():
        return Check(target.name, name, NOT_RUN, f"the time budget of {budget.seconds:g} s was spent: raise --budget-s")
    t0 = time.perf_counter()
    try:
        return fn()
    except Exception as e:  # a backend's own error: this check fails, the other checks and backends still run
        log.debug("selftest %s %s", target.name, name, exc_info=True)
        return Check(target.name, name, FAIL, checks.one_line(e), round(time.perf_counter() - t0, 2))


def build(ctx: checks.Context, target: Target, precision: str) -> Check:
    """TensorRT engines of every text-to-video component with one optimization profile per size bucket, for this
    GPU (or for sm89 in a build-only pass: the first bucket alone, since nothing runs there to switch profiles and a
    second bucket only doubles the compile); the plans' sizes and build seconds."""
    from t2vrt.engines.tensorrt.build import BuildOptions, build_engines

    buckets, counts = sizes(ctx.manifest), frame_counts(ctx.manifest)
    if target.mode == "build":
        buckets = buckets[:1]
    target_gpu = target.notes.get("compute_capability", "current")
    # the frame counts the checks run, not the export's whole range: a quarter less build time on the tiny UNet
    options = BuildOptions(flavour=target.flavour, precision=precision, compute_capability=(target_gpu,),
                           sizes=buckets, batch=1, frames=(min(counts), counts[0], max(counts)))
    t0 = time.perf_counter()
    results = build_engines(ctx.root, options)
    seconds = round(time.perf_counter() - t0, 2)
    engines = {name: {"plans": [{k: p.get(k) for k in ("path", "size", "cached", "seconds")}
                                for p in r.get("plans", [r])], "seconds": r["seconds"]} for name, r in results.items()}
    summary = (f"{len(engines)} engines for {target_gpu}, buckets {', '.join(map(str, buckets))}: "
               + ", ".join(f"{n} {e['seconds']:.1f} s" for n, e in engines.items()))
    return Check(target.name, f"build {precision}", PASS, summary, seconds,
                 {"precision": precision, "compute_capability": target_gpu, "sizes": [str(s) for s in buckets],
                  "flavour": target.flavour, "engines": engines})


def check_target(ctx: checks.Context, target: Target, budget: Budget) -> BackendReport:
    """Every check of one backend, in order; a failed build leaves nothing to run."""
    report = BackendReport(target.name, target.available, target.mode, target.reason, target.install,
                           target.precisions, target.notes)
    if not target.available:
        return report
    if not target.precisions:
        report.checks.append(Check(target.name, "precisions", FAIL, "no precision this backend runs was exported"))
        return report
    add = lambda name, fn: report.checks.append(guarded(budget, target, name, fn)) or report.checks[-1]  # noqa: E731
    if target.engines:
        found = {p: ctx.engines_here(p) if target.mode == "run" else "" for p in target.precisions}
        built = [Check(target.name, f"engines {p}", PASS, found[p]) if found[p] else
                 add(f"build {p}", lambda p=p: build(ctx, target, p)) for p in target.precisions]
        report.checks += [c for c in built if c.name.startswith("engines")]
        if target.mode == "build" or any(c.result != PASS for c in built):
            return report
    for p in target.precisions:
        add(f"components {p}", lambda p=p: checks.components(ctx, target, p))
    for p in target.precisions:
        add(f"generate {p}", lambda p=p: checks.generation(ctx, target, p))
    fast = target.precisions[0]
    add(f"unet step {fast}", lambda: checks.unet_step(ctx, target, fast, runs=10 if target.gpu else 3))
    if target.engines:
        add("profile switch", lambda: checks.profile_switch(ctx, target, fast))
    if target.gpu:
        add("low memory", lambda: checks.low_memory(ctx, target, fast))
    return report


def _versions() -> dict:
    import importlib.metadata as md
    import platform

    found = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("t2vrt", "onnxruntime", "onnxruntime-gpu", "polygraphy", "tensorrt", "tensorrt-rtx", "openvino",
                 "torch"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return found


def require_polygraphy() -> None:
    """One line naming the install command where Polygraphy (the comparator) is missing, before anything runs."""
    import importlib.util

    from t2vrt.errors import EngineError

    if importlib.util.find_spec("polygraphy") is None:
        raise EngineError("t2vrt selftest compares backends with Polygraphy, which is not installed: pip install "
                          "'polygraphy>=0.53' (it comes with t2vrt[tensorrt] and t2vrt[tensorrt-rtx])")


def require_reference(src: Path, manifest) -> None:
    """The reference is ONNX Runtime on the fp32 graphs: InputError naming the export command where one is missing."""
    from t2vrt.components import TEXT_TO_VIDEO
    from t2vrt.errors import InputError

    missing = [c for c in TEXT_TO_VIDEO if c not in manifest.components or "fp32" not in manifest.components[c]["onnx"]]
    if missing:
        raise InputError(f"{src} has no fp32 ONNX graph of {', '.join(missing)}; the selftest compares every backend "
                         f"with ONNX Runtime fp32: re-export with `t2vrt export MODEL -o {src} --precision fp32 fp16`")


def run_selftest(engine_dir: str | Path | None = None, options: SelftestOptions = SelftestOptions()):
    """(backend reports, the run's record for the JSON). ``engine_dir`` None: the tiny preset is exported first."""
    from t2vrt.manifest import load_manifest
    from t2vrt.selftest.workdir import export_tiny, private_copy, temp_parent

    require_polygraphy()
    check_only(options.only)
    src = Path(engine_dir) if engine_dir is not None else None
    if src is not None:  # a missing or unreadable directory, or no reference: one line before anything is copied
        require_reference(src, load_manifest(src))
    budget, parent = Budget(options.budget_s), temp_parent(src)
    try:
        root = private_copy(src, parent) if src is not None else export_tiny(parent)
        manifest = load_manifest(root)
        ctx = checks.Context.make(root, manifest)
        reports = [check_target(ctx, t, budget) for t in detect(manifest, options.only)]
    finally:
        if not options.keep:
            shutil.rmtree(parent, ignore_errors=True)
    record = {"dir": str(src) if src is not None else "tiny preset (exported for this run)",
              "work_dir": str(parent) if options.keep else None, "reference": checks.REFERENCE,
              "cases": [str(c) for c in ctx.cases], "budget_s": options.budget_s,
              "seconds": round(budget.elapsed, 2), "versions": _versions()}
    return reports, record
