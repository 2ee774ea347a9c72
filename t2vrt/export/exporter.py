"""export_model: a diffusers model folder -> a self-contained engine directory (ONNX + manifest)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from t2vrt.components import COMPONENTS, TEXT_TO_VIDEO, ModelDims, Profile, component_specs
from t2vrt.errors import ExportError
from t2vrt.export import ort_fusion, refusals
from t2vrt.export.defaults import native_profile
from t2vrt.export.workdir import NotPlaced, Writing, check_space, disk_errors, identity, place, temp_dir
from t2vrt.host import library_versions, peak_rss_bytes, release_memory
from t2vrt.locks import dir_lock_path, exclusive
from t2vrt.manifest import MANIFEST, Manifest, save_manifest, sha256_file

log = logging.getLogger(__name__)
VALIDATION_SHAPES = ("auto", "standard", "small")
SMALL_VALIDATION_PARAMS = 250_000_000  # "auto" validates components over this many parameters at the small shapes


@dataclass(frozen=True)
class ExportOptions:
    components: tuple[str, ...] = TEXT_TO_VIDEO
    # A Profile is used as given; None, or a dict of some Profile fields, gets the rest from the model's native
    # size and frame count (t2vrt.export.defaults.native_profile)
    profile: Profile | dict | None = None
    precisions: tuple[str, ...] = ("fp32",)
    validate: bool = True
    validation: str = "auto"  # validation shapes: "standard", "small" (a CPU minute for the real UNet), or "auto"
    overwrite: bool = False
    opset: int = 17
    ff_chunks: int = 0  # UNet feed-forward pieces (0: whole); see modules.ChunkedFeedForward
    split_geglu: bool = True  # GEGLU's projection as two products, no Slices; see modules.SplitGEGLU
    ort_fusion: bool | None = None  # a CPU graph with ONNX Runtime's attention fusion; None: where weights are inline
    allow_pickle: bool = False  # load .bin (pickle) checkpoints; safetensors are the default and the safe choice
    revision: str | None = None  # of a hub id: a branch, tag or commit
    variant: str | None = None  # "fp16": read *.fp16.safetensors (as diffusers' variant="fp16")


def trace_sizes(m: ModelDims) -> dict[str, int]:
    """Sizes the graphs are traced at: small, non-square, and unlike every validation size."""
    u = m.unet_downsample
    return {"b": 2, "f": 5, "h": 2 * u, "w": 3 * u, "n": 2}


def validation_sizes(m: ModelDims, small: bool = False) -> list[dict[str, int]]:
    """Batch 1 and 2, two other frame counts, non-square latents of other sizes than the trace's.

    ``small``: the same rule at the least work (the real UNet's 1,152 + 7,168 latent positions become 256 + 768).
    """
    u = m.unet_downsample
    if small:
        return [{"b": 1, "f": 2, "h": u, "w": 2 * u, "n": 1}, {"b": 2, "f": 3, "h": 2 * u, "w": u, "n": 3}]
    return [{"b": 1, "f": 3, "h": 3 * u, "w": 2 * u, "n": 1}, {"b": 2, "f": 7, "h": 2 * u, "w": 4 * u, "n": 3}]


def validation_shape_set(options: ExportOptions, num_params: int) -> str:
    """"small" or "standard" for a component of ``num_params`` parameters."""
    if options.validation != "auto":
        return options.validation
    return "small" if num_params > SMALL_VALIDATION_PARAMS else "standard"


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it or choose another -o")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"{out} exists and is not an engine directory; refusing to replace it")


def _check_options(options: ExportOptions) -> None:
    unknown = set(options.components) - set(COMPONENTS)
    if unknown:
        raise ExportError(f"unknown components {sorted(unknown)}; choose from {', '.join(COMPONENTS)}")
    if options.validation not in VALIDATION_SHAPES:
        raise ExportError(f"validation={options.validation!r}; choose one of {', '.join(VALIDATION_SHAPES)}")


def estimate_bytes(loaded, options: ExportOptions) -> int:
    """Disk an export will take: each component's weights in fp32 (+ fp16), from the checkpoint headers, plus
    twice the tokenizer's files (tokenizer.json holds vocabulary and merges again) and 1 MB of graph structure."""
    from t2vrt.export.modules import SOURCES
    from t2vrt.export.weights import checkpoint_files, stored_numel

    per_weight = 4 + (2 if "fp16" in options.precisions else 0)
    total = 2 * sum(f.stat().st_size for f in (loaded.root / "tokenizer").iterdir() if f.is_file()) + (1 << 20)
    for name in options.components:
        folder = loaded.root / SOURCES[name]
        stem = "model" if SOURCES[name] == "text_encoder" else "diffusion_pytorch_model"
        numel = stored_numel(folder, stem, loaded.variant)
        if numel is None:  # .bin or unknown layout: its size, as if fp32
            numel = sum(f.stat().st_size for f in checkpoint_files(folder, stem, loaded.variant) or []) // 4
        total += numel * per_weight
    return total


def export_model(model: str, out: str | Path, options: ExportOptions = ExportOptions()) -> Path:
    """Export, validate and write the engine directory atomically (a temporary directory renamed into place).

    Components are exported one at a time, each loaded, traced, freed, then checked in ONNX Runtime, so peak
    memory is that of the largest component, not of the whole model.
    """
    out = Path(out).resolve()
    _check_options(options)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the folder {out.parent} for -o: {e.strerror or e}; "
                          "choose another -o") from None
    with exclusive(dir_lock_path(out), f"engine directory {out}", {"kind": "export"}):  # a second writer: refused
        expected = identity(out)  # what --overwrite may replace at the end: this directory, unchanged
        _check_target(out, options.overwrite)
        return _export_into(model, out, options, expected)


def _export_into(model: str, out: Path, options: ExportOptions, expected: tuple | None) -> Path:
    from t2vrt.export.load import load_model

    refusals.check_ff_chunks(options.ff_chunks)  # its type and sign, before any file is read
    loaded = load_model(model, revision=options.revision, variant=options.variant)
    profile = native_profile(loaded.dims, options.profile)
    refusals.check_profile(profile, loaded.dims)
    refusals.check_ff_chunks(options.ff_chunks, profile, loaded.dims)
    refusals.check_pickle(loaded.root, options.allow_pickle)
    needed = estimate_bytes(loaded, options)
    tmp = temp_dir(out)
    try:
        check_space(out.parent, needed, f"the export of {', '.join(options.components)}")
        with disk_errors(tmp, needed) as writing:
            tokenizer, components, timings = _export_all(loaded, tmp, options, writing)
            manifest = Manifest(
                model=loaded.dims, profile=profile, components=components, tokenizer=tokenizer,
                vae_scaling_factor=loaded.vae_scaling_factor, source=str(model), versions=library_versions(),
                extra={"export_seconds": timings, **({"revision": options.revision} if options.revision else {}),
                       **({"variant": loaded.variant} if loaded.variant else {})},
            )
            writing.what = MANIFEST
            save_manifest(tmp, manifest)  # written last: a directory without it never loads
        place(tmp, out, expected)  # never over a directory this export did not check at its start
    except NotPlaced:
        raise  # the finished export stays at its partial path, as the message says
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _export_all(loaded, tmp: Path, options: ExportOptions, writing: Writing) -> tuple[dict, dict, dict]:
    """Tokenizer, scheduler config and each component into ``tmp``; returns their manifest entries and seconds."""
    from tqdm.auto import tqdm

    from t2vrt.export.load import save_tokenizer

    writing.what = "tokenizer"
    tokenizer = save_tokenizer(loaded.tokenizer, tmp / "tokenizer")
    (tmp / "scheduler_config.json").write_text(json.dumps(loaded.scheduler_config, indent=2))
    specs, components, timings = component_specs(loaded.dims), {}, {}
    for name in tqdm(options.components, desc="export", unit="component"):
        t0 = time.perf_counter()
        components[name] = _export_component(name, loaded, specs[name], tmp, options, writing)
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("exported %s in %.1f s (peak RSS so far %.2f GB)", name, timings[name], peak_rss_bytes() / 2**30)
    return tokenizer, components, timings


def _export_component(name, loaded, spec, root: Path, options: ExportOptions, writing: Writing) -> dict:
    """Load one component, keep its PyTorch outputs at the validation shapes, trace it, free it, then compare."""
    from t2vrt.export.modules import feed_forward_chunking, geglu_split, module_for
    from t2vrt.export.onnx import export_onnx
    from t2vrt.export.validate import compare, reference_outputs

    m, vocab = loaded.dims, loaded.vocab_size
    rel = Path("onnx") / name / "model.onnx"
    module = module_for(name, loaded)
    shape_set = validation_shape_set(options, sum(p.numel() for p in module.parameters()))
    refs = reference_outputs(module, spec, validation_sizes(m, shape_set == "small"), vocab) if options.validate else []
    writing.what = str(rel)
    with feed_forward_chunking(module, options.ff_chunks if name == "unet" else 0) as blocks, \
            geglu_split(module, options.split_geglu) as split:
        path = export_onnx(module, spec, trace_sizes(m), root / rel, options.opset, vocab=vocab)
    del module
    release_memory()  # the torch weights go before ONNX Runtime loads the graph's
    entry = {"io": spec.to_json(), "onnx": {"fp32": _file_record(root, rel)}, "validation": {}}
    if blocks:
        entry["ff_chunking"] = {"slices": options.ff_chunks, "blocks": blocks}
        log.info("%s: feed-forward of %d transformer blocks traced in %d slices", name, blocks, options.ff_chunks)
    if split:
        entry["geglu_split"] = split
    if options.validate:
        entry["validation"]["fp32"] = {**compare(spec, path, refs, "fp32"), "shape_set": shape_set}
    if ort_fusion.wanted(name, options.ort_fusion, "external_data" in entry["onnx"]["fp32"]):
        writing.what = str(rel.with_name("model_ort_cpu.onnx"))
        fused = ort_fusion.fused_entry(name, spec, root, rel, refs, _file_record)
        if fused:
            entry["onnx_fused"] = {"fp32": fused}
    if "fp16" in options.precisions:
        from t2vrt.export.fp16 import export_fp16  # the fp16 graph beside the fp32 one

        rel16 = Path("onnx") / name / "model_fp16.onnx"
        writing.what = str(rel16)
        export_fp16(path, root / rel16, name)
        entry["onnx"]["fp16"] = _file_record(root, rel16)
        if options.validate:
            entry["validation"]["fp16"] = {**compare(spec, root / rel16, refs, "fp16"), "shape_set": shape_set}
    return entry


def _file_record(root: Path, rel: Path) -> dict:
    path = root / rel
    data = path.with_name(path.name + ".data")
    rec = {"path": str(rel), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if data.exists():
        rec["external_data"] = {"path": str(rel.with_name(data.name)), "sha256": sha256_file(data),
                                "bytes": data.stat().st_size}
    return rec
