"""export_model: a diffusers model folder -> a self-contained engine directory (ONNX + manifest)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from t2vrt.errors import ExportError
from t2vrt.manifest import MANIFEST, Manifest, save_manifest, sha256_file
from t2vrt.specs import ModelDims, Profile, component_specs

log = logging.getLogger(__name__)
DEFAULT_COMPONENTS = ("text_encoder", "unet", "vae_decoder")


@dataclass(frozen=True)
class ExportOptions:
    components: tuple[str, ...] = DEFAULT_COMPONENTS
    profile: Profile = field(default_factory=Profile)
    precisions: tuple[str, ...] = ("fp32",)
    validate: bool = True
    overwrite: bool = False
    opset: int = 17
    ff_chunks: int = 0  # UNet feed-forward pieces (0: whole); see graphs.ChunkedFeedForward


def trace_sizes(m: ModelDims) -> dict[str, int]:
    """Sizes the graphs are traced at: small, non-square, and unlike every validation size."""
    u = m.unet_downsample
    return {"b": 2, "f": 5, "h": 2 * u, "w": 3 * u, "n": 2}


def validation_sizes(m: ModelDims) -> list[dict[str, int]]:
    """Batch 1 and 2, two other frame counts, non-square latents of other sizes than the trace's."""
    u = m.unet_downsample
    return [{"b": 1, "f": 3, "h": 3 * u, "w": 2 * u, "n": 1}, {"b": 2, "f": 7, "h": 2 * u, "w": 4 * u, "n": 3}]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("t2vrt", "torch", "diffusers", "transformers", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _temp_dir(out: Path) -> Path:
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; pass --overwrite to replace it or choose another -o")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"{out} exists and is not an engine directory; refusing to replace it")


def export_model(model: str, out: str | Path, options: ExportOptions = ExportOptions()) -> Path:
    """Export, validate and write the engine directory atomically (a temporary directory renamed into place)."""
    from tqdm.auto import tqdm

    from t2vrt.export.graphs import module_for
    from t2vrt.export.load import load_model, save_tokenizer

    out = Path(out).resolve()
    _check_target(out, options.overwrite)
    unknown = set(options.components) - set(component_specs(ModelDims(4, 1, 1, 8, 1, 1)))
    if unknown:
        raise ExportError(f"unknown components {sorted(unknown)}; choose from text_encoder, unet, vae_decoder, vae_encoder")
    if options.ff_chunks < 0:
        raise ExportError(f"ff_chunks={options.ff_chunks} (--ff-chunking) must be >= 0; 0 or 1 keeps the feed-forward whole")
    loaded = load_model(model)
    m = loaded.dims
    specs = component_specs(m)
    tmp = _temp_dir(out)
    try:
        tokenizer = save_tokenizer(loaded.tokenizer, tmp / "tokenizer")
        (tmp / "scheduler_config.json").write_text(json.dumps(loaded.scheduler_config, indent=2))
        components, timings = {}, {}
        vocab = loaded.text_encoder.config.vocab_size
        for name in tqdm(options.components, desc="export", unit="component"):
            t0 = time.perf_counter()
            components[name] = _export_component(name, module_for(name, loaded), specs[name], m, tmp, options, vocab)
            timings[name] = round(time.perf_counter() - t0, 2)
            log.info("exported %s in %.1f s", name, timings[name])
        manifest = Manifest(
            model=m, profile=options.profile, components=components, tokenizer=tokenizer,
            source=str(model), versions=library_versions(),
            extra={"vae_scaling_factor": float(loaded.vae.config.scaling_factor), "export_seconds": timings},
        )
        save_manifest(tmp, manifest)  # written last: a directory without it never loads
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _export_component(name, module, spec, m, root: Path, options: ExportOptions, vocab: int) -> dict:
    from t2vrt.export.onnx import export_onnx
    from t2vrt.export.validate import validate

    from t2vrt.export.graphs import feed_forward_chunking

    rel = Path("onnx") / name / "model.onnx"
    with feed_forward_chunking(module, options.ff_chunks if name == "unet" else 0) as blocks:
        path = export_onnx(module, spec, trace_sizes(m), root / rel, options.opset, vocab=vocab)
    entry = {"io": spec.to_json(), "onnx": {"fp32": _file_record(root, rel)}, "validation": {}}
    if blocks:
        entry["ff_chunking"] = {"slices": options.ff_chunks, "blocks": blocks}
        log.info("%s: feed-forward of %d transformer blocks traced in %d slices", name, blocks, options.ff_chunks)
    if options.validate:
        entry["validation"]["fp32"] = validate(module, spec, path, validation_sizes(m), "fp32", vocab=vocab)
    if "fp16" in options.precisions:
        from t2vrt.export.fp16 import export_fp16  # issue 4: fp16 graph beside the fp32 one

        rel16 = Path("onnx") / name / "model_fp16.onnx"
        export_fp16(path, root / rel16, name)
        entry["onnx"]["fp16"] = _file_record(root, rel16)
        if options.validate:
            entry["validation"]["fp16"] = validate(module, spec, root / rel16, validation_sizes(m), "fp16", vocab=vocab)
    return entry


def _file_record(root: Path, rel: Path) -> dict:
    path = root / rel
    data = path.with_name(path.name + ".data")
    rec = {"path": str(rel), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if data.exists():
        rec["external_data"] = {"path": str(rel.with_name(data.name)), "sha256": sha256_file(data), "bytes": data.stat().st_size}
    return rec
