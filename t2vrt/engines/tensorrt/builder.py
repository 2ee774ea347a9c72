"""One TensorRT builder call: parse the ONNX graph into a strongly typed network, configure its optimization
profiles, GPU targets and timing cache, build the serialized plan; a failure in one line that names the
`polygraphy convert` command reproducing it, then what to run instead. build.py decides what to build; ``o``
below is its BuildOptions."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from t2vrt.engines.tensorrt.env import gpu_name, make_logger
from t2vrt.errors import EngineError

log = logging.getLogger(__name__)
BUILD_MESSAGES = 5000  # TensorRT log lines a build keeps for its result


def _network(trt, builder, logger, onnx_path: Path):
    """Parse the graph into a strongly typed network; the parser is returned too: it owns the weights."""
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TensorRT-RTX networks are always so
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineError(f"{onnx_path}: the ONNX parser reported {len(errors)} error(s), the first: {errors[:1]}")
    return network, parser


def _config(trt, builder, o, flavour: str, targets, shapes: dict | list[dict], timing_cache: Path):
    """``shapes``: one {input: [min, opt, max]} per optimization profile (a lone dict: one profile)."""
    config = builder.create_builder_config()
    config.builder_optimization_level = o.opt_level
    if o.max_workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, o.max_workspace_mb << 20)
    for one in [shapes] if isinstance(shapes, dict) else shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in one.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    if flavour == "tensorrt-rtx":  # no timing cache: TensorRT-RTX tunes kernels on the GPU at load time
        config.num_compute_capabilities = len(targets)
        for i, t in enumerate(targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, t.upper()), i)
        # the runner's CUDA graphs capture these engines: REQUIRE_USER_ALLOCATION is what makes a TensorRT-RTX
        # engine capturable (no allocation at enqueue; the flag's own documentation in tensorrt_rtx)
        if hasattr(trt.BuilderFlag, "REQUIRE_USER_ALLOCATION"):
            config.set_flag(trt.BuilderFlag.REQUIRE_USER_ALLOCATION)
    else:
        attach_timing_cache(config, timing_cache)
    return config


def attach_timing_cache(config, path: Path) -> None:
    """The timing cache file at ``path`` on ``config``; a file TensorRT refuses (made on another GPU or version:
    ``set_timing_cache`` returns False) is set aside for a new, empty cache, logged in one WARNING line."""
    data = path.read_bytes() if path.is_file() else b""
    if config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False):
        return
    if data:
        log.warning("timing cache %s does not match this GPU or TensorRT; building with a new one", path.name)
        if config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
            return
    raise EngineError(f"TensorRT refused a timing cache (file {path}); delete the file and build again")


def save_timing_cache(config, path: Path) -> None:
    """Write the builder's timing cache; ``get_timing_cache`` returns None when no cache is set, which is logged."""
    cache = config.get_timing_cache()
    if cache is None:
        log.warning("TensorRT kept no timing cache for this build; %s is not updated", path.name)
        return
    write_atomic(path, cache.serialize())


def write_atomic(path: Path, data) -> None:
    """Write bytes (or a buffer such as TensorRT's IHostMemory) to a temporary file and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(data))
    os.replace(tmp, path)


class BuilderFailed(EngineError):
    """TensorRT's builder returned no plan (its last error in the message); a narrower profile may avoid it.
    ``hint``: the message's closing advice (what to run instead), kept last when a reproduction is added."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message + hint)
        self.head, self.hint = message, hint


def _build_failed(component: str, messages, per_bucket: str = "") -> BuilderFailed:
    """The builder's last error in one line; ``per_bucket``: the command that builds per size bucket, offered when
    Myelin (TensorRT's code generator) failed on a profile with a height/width range."""
    errors = [m for s, m in messages if s in ("ERROR", "INTERNAL_ERROR")]
    hint = ""
    if any("cuda" in m.lower() and ("driver" in m.lower() or "device" in m.lower()) for m in errors):
        hint = "; no usable GPU here: build with --flavour tensorrt-rtx --compute-capability sm89 (or your GPU's)"
    elif any("Myelin" in m for m in errors) and per_bucket:
        # fp16 graphs with frames and size both dynamic: "empty runtime-fusion MVMF" on a tiny UNet, bad_alloc on
        # the real one (benchmarks/RESULTS.md); fixed sizes build
        hint = ("; Myelin fails this way when frames and height/width are both dynamic: build per size bucket with "
                f"`{per_bucket}`")
    # a garbage-size request, not RAM (benchmarks/RESULTS.md)
    elif any("Myelin" in m and "bad_alloc" in m for m in errors):
        hint = ("; TensorRT-RTX's code generator fails this way on the real-size UNet when frames and height/width are "
                "both dynamic: fix one of them, e.g. --height 512:512:512 --width 512:512:512 or --frames 16:16:16")
    return BuilderFailed(f"TensorRT could not build {component}: {errors[-1] if errors else 'no error message'}", hint)


def _build_plan(trt, flavour: str, onnx_path: Path, o, targets, shapes, root: Path, component: str,
                per_bucket: str = ""):
    """``_build_serialized``, whose failure's one line names a `polygraphy convert` command that reproduces it
    outside t2vrt (the same ONNX file, profiles and flags: tensorrt/repro.py), before any advice on what to run."""
    try:
        return _build_serialized(trt, flavour, onnx_path, o, targets, shapes, root, component, per_bucket)
    except EngineError as e:
        from t2vrt.engines.tensorrt.repro import convert_command

        typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        again = convert_command(onnx_path, shapes, flavour, targets, o.opt_level, typed, o.max_workspace_mb,
                                out=f"{component.split()[0]}.plan")
        if isinstance(e, BuilderFailed):  # the fix stays the line's last words
            raise BuilderFailed(f"{e.head}; reproduce with `{again}`", e.hint) from None
        raise type(e)(f"{e}; reproduce with `{again}`") from None


def _build_serialized(trt, flavour: str, onnx_path: Path, o, targets, shapes, root: Path,
                      component: str, per_bucket: str = ""):
    """Build one serialized plan; returns it and the logger's messages."""
    logger = make_logger(trt, keep=BUILD_MESSAGES)
    builder = trt.Builder(logger)
    network, parser = _network(trt, builder, logger, onnx_path)
    cache_path = timing_cache_path(root, flavour, trt.__version__, targets)
    config = _config(trt, builder, o, flavour, targets, shapes, cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise _build_failed(component, logger.messages, per_bucket)
    if flavour == "tensorrt":
        save_timing_cache(config, cache_path)
    del parser
    return plan, list(logger.messages)


def timing_cache_path(root: Path, flavour: str, version: str, targets) -> Path:
    """One timing cache per GPU model (its name: an H100 and an H200 are both sm90 but time kernels apart),
    TensorRT flavour and version."""
    device = gpu_name() or "-".join(targets)
    slug = "".join(c if c.isalnum() else "-" for c in device).strip("-").lower()
    return root / "engines" / f"timing_cache-{flavour}-{version}-{'-'.join(targets)}-{slug}.bin"
