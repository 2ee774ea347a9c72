"""The engine records of a manifest: which one this machine can run, and the checks made before any TensorRT call
(the request inside the engine's profile; the engine built by this TensorRT for this GPU)."""

from __future__ import annotations

from typing import Mapping, Sequence

from t2vrt.components import build_command, check_range, widen
from t2vrt.engines.tensorrt import env as env
from t2vrt.errors import EngineError, InputError


def check_profile(record: Mapping, sizes: Mapping[str, int], root: str = "DIR") -> int:
    """The index of the engine's optimization profile that holds the request; InputError if none does.

    ``record`` is the manifest's engine record; ``sizes`` holds user sizes by Profile field name
    (``frames``, ``height``, ``width``, ``batch``, ``decode_chunk``); fields the engine does not depend on are
    ignored, so the pipeline can pass the same sizes to every component. A size in no bucket gets the buckets and
    the command that adds one; a frame count or batch outside a bucket's range, the command that widens it."""
    from t2vrt.engines.buckets import (
        Size,
        no_bucket_message,
        profile_size,
        record_profiles,
        record_sizes,
        select_profile,
    )

    profiles = [p["profile"] for p in record_profiles(record)]
    index = select_profile(profiles, sizes)
    if index is not None:
        return index
    buckets = record_sizes(record)
    if buckets and "height" in sizes and "width" in sizes:
        size = Size(sizes["width"], sizes["height"])
        if size not in buckets:
            raise InputError(no_bucket_message(record, size, root))
        profiles = [p for p in profiles if profile_size(p) == size]
    extra = f" --sizes {','.join(map(str, buckets))}" if buckets else ""
    for name, value in sizes.items():
        if name in profiles[0]:
            rng = tuple(profiles[0][name])
            command = build_command(root, **{name: widen(rng, value)}) + extra
            check_range(name, value, rng, f"the {record['component']} engine's profile", command)
    raise InputError(f"{dict(sizes)} is in no profile of the {record['component']} engine ({profiles}); "
                     f"rebuild with `{build_command(root)}` covering it")


def check_target(record: Mapping, trt, flavour: str, root: str = "DIR") -> None:
    """EngineError if the engine was built by another TensorRT or for another GPU than this one."""
    again = build_command(root)
    if record["flavour"] != flavour or record["trt_version"] != trt.__version__:
        raise EngineError(
            f"{record['path']} was built with {record['flavour']} {record['trt_version']}; this is {flavour} "
            f"{trt.__version__}: rebuild with `{again} --flavour {flavour}`"
        )
    here = env.gpu_compute_capability()
    targets = record["compute_capability"]
    if here is not None and "current" not in targets and here not in targets:
        raise EngineError(
            f"{record['path']} was built for {', '.join(targets)}; this GPU is {here}: "
            f"rebuild with `{again} --compute-capability {here}`"
        )


def check_plans(records: Sequence[Mapping], sizes: Mapping[str, int], root: str = "DIR") -> tuple[Mapping, int]:
    """The plan among one component's ``records`` (one engine, or one plan per size bucket) whose profile holds the
    request, and that profile's index in it; InputError as ``check_profile``'s, naming the buckets of every plan."""
    from t2vrt.engines.buckets import merged_record, plan_of

    plan, index = plan_of(records, check_profile(merged_record(records), sizes, root))
    return records[plan], index


def find_engine(engines: Mapping[str, Mapping], component: str, precision: str | None = None,
                root: str = "DIR") -> tuple[Mapping | None, str]:
    """The first engine record of ``component`` that this machine can run (fp16 first), or None and why not."""
    records = [r for r in engines.values() if r["component"] == component and precision in (None, r["precision"])]
    if not records:
        what = f"{precision} " if precision else ""
        return None, f"no {what}TensorRT engine for {component} is built; build one with `{build_command(root)}`"
    reasons = []
    for record in sorted(records, key=lambda r: r["precision"] != "fp16"):
        trt = env.try_import(env.MODULES[record["flavour"]])
        if trt is None:
            reasons.append(f"{record['path']} needs {env.MODULES[record['flavour']]}: pip install "
                           f"'t2vrt[{record['flavour']}]'")
            continue
        try:
            check_target(record, trt, record["flavour"], root)
        except EngineError as e:
            reasons.append(str(e))
            continue
        return record, ""
    return None, "; ".join(reasons)


def find_engines(engines: Mapping[str, Mapping], component: str, precision: str | None = None,
                 root: str = "DIR") -> tuple[list[Mapping], str]:
    """Every plan of the engine ``find_engine`` chooses: that record alone, or with its sibling plans when the build
    made one plan per size bucket (same precision, flavour, TensorRT version and GPU targets); [] and why if none."""
    record, why = find_engine(engines, component, precision, root)
    if record is None:
        return [], why
    same = ("precision", "flavour", "trt_version", "compute_capability")
    plans = [r for r in engines.values()
             if r["component"] == component and all(r.get(k) == record.get(k) for k in same)]
    return plans, ""
