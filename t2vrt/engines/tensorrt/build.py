"""`t2vrt build`: strongly typed TensorRT engines from an engine directory's ONNX graphs.

One optimization profile per size bucket (``--sizes``; by default the export profile's opt size and the model's
native size), frames and batch dynamic inside each; or, with ``--height``/``--width`` ranges, one profile over them.
Profiles derive from Profile.symbol_ranges and the ComponentSpec (the same shape function the export and the
runtime use). A plan is written atomically to ``engines/<component>/<key>.plan`` where the key hashes everything
that shapes it: the ONNX sha256, the resolved min/opt/max input shapes of every profile, precision, flavour and
version, GPU targets and optimization level. The same inputs again are a cache hit; a changed profile builds a new
plan and replaces the old one. The manifest records every profile of every engine (``profiles``).

With ``--plan-per-bucket``, or by itself when the builder cannot put the buckets in one engine (TensorRT-RTX's
Myelin failures; one WARNING line says so), each size bucket gets a plan of its own, recorded with its one profile
(``plan_per_bucket`` says why); the runtime opens the plan that holds each request (tensorrt/plans.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from t2vrt.components import PROFILE_FIELDS, TEXT_TO_VIDEO, Profile, Range, check_range_order
from t2vrt.engines.buckets import Size, bucket_profiles, check_sizes, default_sizes
from t2vrt.engines.tensorrt.builder import BuilderFailed, _build_plan, write_atomic
from t2vrt.engines.tensorrt.env import gpu_compute_capability, import_tensorrt
from t2vrt.errors import EngineError, InputError
from t2vrt.manifest import Manifest, engine_file, load_manifest, sha256_file, update_engines

log = logging.getLogger(__name__)
KEY_VERSION = 1  # bump when the build code changes what a plan holds


@dataclass(frozen=True)
class BuildOptions:
    """None takes the export profile's range. ``batch`` is the largest prompt batch (the UNet sees twice it)."""

    frames: Range | None = None
    height: Range | str | None = None  # a range ("export": the export profile's) builds one profile over it
    width: Range | str | None = None
    batch: int | None = None
    decode_chunk: Range | None = None  # VAE frames per call
    flavour: str = "auto"
    precision: str = "fp16"
    compute_capability: tuple[str, ...] = ("current",)  # e.g. ("sm89",); tensorrt-rtx may name several
    opt_level: int = 3
    components: tuple[str, ...] = TEXT_TO_VIDEO
    max_workspace_mb: int | None = None  # TensorRT's WORKSPACE pool limit; None: its default (the GPU's memory)
    sizes: tuple[Size, ...] | None = None  # size buckets; None: the defaults, unless height or width ranges are given
    plan_per_bucket: bool = False  # one plan per size bucket instead of one engine with a profile per bucket


def build_profile(manifest: Manifest, o: BuildOptions) -> Profile:
    """The export profile with the options' ranges; InputError for an unordered or misaligned range."""
    p = manifest.profile
    ranged = lambda r, export: export if r in (None, "export") else r  # noqa: E731
    p = replace(p, frames=o.frames or p.frames, height=ranged(o.height, p.height), width=ranged(o.width, p.width),
                batch=(1, 1, o.batch) if o.batch else p.batch, decode_chunk=o.decode_chunk or p.decode_chunk)
    multiple = manifest.model.size_multiple
    for name in ("batch", "frames", "height", "width", "decode_chunk"):
        r = check_range_order(name, getattr(p, name))
        if name in ("height", "width") and any(v % multiple for v in r):
            raise InputError(f"{name} range {':'.join(map(str, r))}: every value must be a multiple of {multiple}")
    return p


def _compute_targets(trt, flavour: str, requested: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve "current" to the visible GPU ("sm89"); tensorrt builds only for the GPU it runs on."""
    here = gpu_compute_capability()
    targets = tuple(here if t == "current" and here else t.lower().replace(".", "").replace("sm_", "sm")
                    for t in requested)
    targets = tuple(t if t.startswith(("sm", "current")) else f"sm{t}" for t in targets)
    if flavour == "tensorrt":
        if here is None:
            raise EngineError("tensorrt builds on the GPU it targets and none is visible here; use --flavour "
                              "tensorrt-rtx "
                              "with --compute-capability to build without a GPU")
        if set(targets) != {here}:
            raise EngineError(f"tensorrt builds only for this GPU ({here}); for {', '.join(targets)} use --flavour "
                              "tensorrt-rtx")
        return targets
    known = [n.lower() for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
    if "current" in targets and _torch_without_gpu():
        raise EngineError(f"no GPU is visible here for --compute-capability current; name the target GPUs, e.g. "
                          f"--compute-capability sm89 (one or more of {', '.join(known)})")
    bad = [t for t in targets if t not in known and t != "current"]
    if bad:
        raise EngineError(f"compute capability {', '.join(bad)} is not one {flavour} {trt.__version__} builds for; "
                          f"choose from {', '.join(known)}")
    return targets


def _torch_without_gpu() -> bool:
    """True when torch is installed and sees no GPU (without torch, TensorRT itself resolves "current")."""
    try:
        import torch
    except ImportError:
        return False
    return not torch.cuda.is_available()


def input_shapes(manifest: Manifest, component: str, profile: Profile) -> dict[str, list[list[int]]]:
    """min/opt/max shape of every input of ``component`` from the one shape function."""
    ranges = profile.symbol_ranges(component, manifest.model)
    spec = manifest.spec(component)
    at = [{s: r[i] for s, r in ranges.items()} for i in range(3)]
    return {t.name: [list(t.shape(sizes)) for sizes in at] for t in spec.inputs}


def engine_key(material: dict) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def _material(manifest: Manifest, component: str, o: BuildOptions, flavour: str, trt, targets, shapes) -> dict:
    onnx_rec = manifest.components[component]["onnx"].get(o.precision)
    if onnx_rec is None:
        raise EngineError(f"{component} has no {o.precision} ONNX graph; re-export with --precision {o.precision} "
                          f"or build with --precision {' or '.join(manifest.components[component]['onnx'])}")
    return {"key_version": KEY_VERSION, "component": component, "onnx_sha256": onnx_rec["sha256"],
            "external_sha256": onnx_rec.get("external_data", {}).get("sha256"), "shapes": shapes,
            "precision": o.precision, "flavour": flavour, "trt_version": trt.__version__,
            "compute_capability": list(targets), "opt_level": o.opt_level,
            **({"max_workspace_mb": o.max_workspace_mb} if o.max_workspace_mb else {}),  # unset: keys as before
            **({"user_allocation": True} if flavour == "tensorrt-rtx" else {})}  # REQUIRE_USER_ALLOCATION


def _retire(root: Path, manifest: Manifest, record: dict, keep: tuple[str, ...] = ()) -> None:
    """Drop older engines of the same component, precision, flavour and GPU targets (a changed profile replaces),
    all but ``record`` and the plans in ``keep`` (its sibling plans, one per size bucket, of the same build). Only
    engines the manifest records are deleted, and only under DIR/engines/."""
    same = ("component", "precision", "flavour", "compute_capability")
    kept = {record["path"], *keep}
    for key, old in list(manifest.engines.items()):
        if all(old.get(k) == record[k] for k in same) and old["path"] not in kept:
            engine_file(root, manifest, key).unlink(missing_ok=True)  # only under DIR/engines/
            del manifest.engines[key]
            log.info("replaced %s engine %s", record["component"], old["path"])


def _profile_record(manifest: Manifest, component: str, profile: Profile) -> dict:
    return {"profile": {f: list(getattr(profile, f)) for f in PROFILE_FIELDS[component]},
            "ranges": {s: list(r) for s, r in profile.symbol_ranges(component, manifest.model).items()}}


PER_BUCKET_TAGS = ("plan_per_bucket", "plan_set")  # a per-bucket plan's record: why it is one, and its build's key


def _plan_key(manifest: Manifest, component: str, o: BuildOptions, trt, flavour: str, targets,
              profiles: list[Profile]) -> tuple[dict, str, list[dict]]:
    every = [input_shapes(manifest, component, p) for p in profiles]
    material = _material(manifest, component, o, flavour, trt, targets, every[0] if len(every) == 1 else every)
    return material, engine_key(material), every


def build_plan(root: Path, manifest: Manifest, component: str, o: BuildOptions, trt, flavour: str, targets,
               profiles: list[Profile], per_bucket: str = "", tags: dict | None = None, label: str = "") -> dict:
    """Build (or find built) one plan with one optimization profile per entry of ``profiles`` and record it in the
    manifest with ``tags`` (not retired, not saved here). ``label``: what the builder's error calls it."""
    material, key, every = _plan_key(manifest, component, o, trt, flavour, targets, profiles)
    rel = Path("engines") / component / f"{key}.plan"
    if (root / rel).is_file() and key in manifest.engines:
        log.info("%s: engine %s is built for this profile (cache hit)", component, rel)
        record = manifest.engines[key]
        for t in PER_BUCKET_TAGS:
            record.pop(t, None)
        record.update(tags or {})  # the same plan, now standing alone or one of a per-bucket build
        return {"key": key, "path": str(rel), "cached": True, "seconds": 0.0, "messages": []}
    t0 = time.perf_counter()
    onnx_path = manifest.onnx_path(root, component, o.precision)
    plan, messages = _build_plan(trt, flavour, onnx_path, o, targets, every, root, label or component, per_bucket)
    write_atomic(root / rel, plan)
    seconds = round(time.perf_counter() - t0, 2)
    recorded = [_profile_record(manifest, component, p) for p in profiles]
    manifest.engines[key] = {**material, "path": str(rel), "bytes": (root / rel).stat().st_size,
                             "sha256": sha256_file(root / rel), "build_seconds": seconds, **recorded[0],
                             "profiles": recorded, **(tags or {})}  # top-level profile/ranges: the first
    log.info("%s: built %s with %d profile(s) in %.1f s (%.1f MB)", component, rel, len(profiles), seconds,
             manifest.engines[key]["bytes"] / 1e6)
    return {"key": key, "path": str(rel), "cached": False, "seconds": seconds, "messages": messages}


def _size(p: Profile) -> Size:
    return Size(p.width[0], p.height[0])


def build_per_bucket(root: Path, manifest: Manifest, component: str, o: BuildOptions, trt, flavour: str, targets,
                     profiles: list[Profile], why: str) -> dict:
    """One plan per size bucket, each recorded with one profile; ``why``: "requested" or "fallback: <error>".
    A bucket that fails raises, naming the bucket; the plans built before it stay recorded (a rerun reuses them)."""
    _, whole, _ = _plan_key(manifest, component, o, trt, flavour, targets, profiles)
    tags = {"plan_per_bucket": why, "plan_set": whole}
    plans = [{**build_plan(root, manifest, component, o, trt, flavour, targets, [p], tags=tags,
                           label=f"{component} for size bucket {_size(p)}"), "size": str(_size(p))} for p in profiles]
    return {"plans": plans, "cached": all(r["cached"] for r in plans), "seconds": sum(r["seconds"] for r in plans),
            "messages": [m for r in plans for m in r["messages"]], "plan_per_bucket": why}


def _fell_back(manifest: Manifest, component: str, whole: str) -> str:
    """Why an earlier build of exactly this engine fell back to one plan per bucket ("" if none did)."""
    return next((r["plan_per_bucket"] for r in manifest.engines.values() if r["component"] == component
                 and r.get("plan_set") == whole and str(r.get("plan_per_bucket", "")).startswith("fallback")), "")


def build_component(root: Path, manifest: Manifest, component: str, o: BuildOptions, trt, flavour: str,
                    targets, profiles: list[Profile], per_bucket: str = "") -> dict:
    """Build (or find built) one component's engine, one optimization profile per entry of ``profiles`` (one for
    a component that does not depend on the size), record it in the manifest (not saved here) and retire the
    engines it replaces. One plan per size bucket when asked (``o.plan_per_bucket``), when the builder cannot put
    the buckets in one engine (logged in one WARNING line), or when an earlier build of the same engine could not."""
    if not {"height", "width"} & set(PROFILE_FIELDS[component]):
        profiles = profiles[:1]
    args = (root, manifest, component, o, trt, flavour, targets, profiles)
    _, whole, _ = _plan_key(manifest, component, o, trt, flavour, targets, profiles)
    earlier = _fell_back(manifest, component, whole) if len(profiles) > 1 else ""
    if len(profiles) > 1 and (o.plan_per_bucket or earlier):
        if earlier:
            log.info("%s: one plan per size bucket, as the last build of these buckets (%s)", component, earlier)
        result = build_per_bucket(*args, "requested" if o.plan_per_bucket else earlier)
    else:
        try:
            result = build_plan(*args, per_bucket)
        except BuilderFailed as e:
            if len(profiles) < 2:
                raise
            log.info("%s: one engine with %d size buckets failed to build; building one plan per bucket", component,
                     len(profiles))
            result = build_per_bucket(*args, f"fallback: {e}")
            log.warning("%s: one engine with %d size buckets failed to build (%s); built one plan per size bucket "
                        "instead (as --plan-per-bucket does)", component, len(profiles), e)
    plans = result.get("plans", [result])
    _retire(root, manifest, manifest.engines[plans[0]["key"]], keep=tuple(r["path"] for r in plans))
    return result


def _check_options(options: BuildOptions) -> None:
    if options.precision not in ("fp16", "fp32"):
        raise InputError(f"precision {options.precision!r} is not one of fp16, fp32")
    if not 0 <= options.opt_level <= 5:
        raise InputError(f"optimization level {options.opt_level} is not in 0..5 (3 is TensorRT's default)")
    if options.max_workspace_mb is not None and options.max_workspace_mb < 1:
        raise InputError(f"--max-workspace {options.max_workspace_mb} MiB must be at least 1")
    if options.sizes and (options.height or options.width):
        raise InputError("give either --sizes (one profile per size) or --height/--width ranges (one profile), not "
                         "both")
    if options.plan_per_bucket and (options.height or options.width):
        raise InputError("--plan-per-bucket builds one plan per size bucket (--sizes); it does not apply to "
                         "--height/--width ranges (one profile): drop one of them")


def plan_profiles(root: Path, manifest: Manifest, o: BuildOptions) -> tuple[list[Profile], str]:
    """The optimization profiles to build, and the per-bucket build command to offer when a range profile fails."""
    profile = build_profile(manifest, o)
    defaults = default_sizes(manifest.model, manifest.profile)
    per_bucket = f"t2vrt build {root} --sizes {','.join(map(str, o.sizes or defaults))}"
    if o.height or o.width:
        return [profile], per_bucket
    sizes = o.sizes or defaults
    check_sizes(manifest.model, manifest.profile, sizes)
    log.info("size buckets (WIDTHxHEIGHT): %s", ", ".join(map(str, sizes)))
    return bucket_profiles(profile, sizes), ""


def build_engines(engine_dir: str | Path, options: BuildOptions = BuildOptions()) -> dict:
    """Build every requested component's engine; returns {component: {key, path, cached, seconds, messages}}, or
    for one plan per size bucket {component: {plans: [{key, path, size, ...}, ...], cached, seconds, messages,
    plan_per_bucket}}."""
    from t2vrt.locks import dir_lock_path, exclusive

    root = Path(engine_dir)
    load_manifest(root)  # an engine directory, before any lock is taken beside it
    mine = list(options.components)
    def others(holder: dict) -> bool:  # a build of other components: wait for it
        return holder.get("kind") == "build" and not set(holder.get("components", mine)) & set(mine)

    with exclusive(dir_lock_path(root), f"engine directory {root}", {"kind": "build", "components": mine}, wait=others):
        return _build_locked(root, options)  # a build of other components waits; of the same ones, refused


def _build_locked(root: Path, options: BuildOptions) -> dict:
    from tqdm.auto import tqdm

    manifest = load_manifest(root)  # read under the lock: what the build before us recorded
    _check_options(options)
    missing = [c for c in options.components if c not in manifest.components]
    if missing:
        raise EngineError(f"{root} has no ONNX graph for {missing}; it has {sorted(manifest.components)}")
    profiles, per_bucket = plan_profiles(root, manifest, options)
    trt, flavour = import_tensorrt(options.flavour)
    targets = _compute_targets(trt, flavour, options.compute_capability)
    results = {}
    for component in tqdm(options.components, desc=f"build ({flavour} {trt.__version__})", unit="engine"):
        results[component] = build_component(root, manifest, component, options, trt, flavour, targets, profiles,
                                             per_bucket)
        update_engines(root, manifest, component)  # after each engine: an interrupted build keeps what it finished
    return results
