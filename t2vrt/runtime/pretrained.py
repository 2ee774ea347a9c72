"""``Pipeline.from_pretrained(model, export=True)``, as optimum's: a diffusers folder or hub id is exported on first
use into a cache keyed by everything that changes the export, then loaded; later calls load the cached directory.

The cache is ``$T2VRT_CACHE``, else ``$XDG_CACHE_HOME/t2vrt``, else ``~/.cache/t2vrt``; one engine directory per
key, named ``<model>-<key>``. The key hashes the model's identity (its hub id and revision, or its folder's real
path, and the contents of its config files and the names and sizes of its weight files), the variant, the profile,
the precisions and the components.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from t2vrt.errors import ManifestError
from t2vrt.manifest import MANIFEST

log = logging.getLogger(__name__)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("T2VRT_CACHE"):
        return Path(os.environ["T2VRT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "t2vrt"


def model_fingerprint(root: Path) -> dict:
    """What identifies a model folder's contents without reading its weights: every config file's bytes and the
    name and size of every other file (a changed checkpoint changes its size, or its index's hash)."""
    h, files = hashlib.sha256(), []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = path.relative_to(root).as_posix()
        if path.suffix in (".json", ".txt"):
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
        else:
            files.append([rel, path.stat().st_size])
    h.update(json.dumps(files).encode())
    return {"contents": h.hexdigest()}


def cache_key(model: str, root: Path, options: Any) -> str:
    """The hash of everything an export's result depends on (see the module docstring)."""
    identity = {"hub_id": model, "revision": options.revision} if not Path(model).expanduser().exists() else {
        "folder": str(Path(model).expanduser().resolve())}
    profile = options.profile.to_json() if hasattr(options.profile, "to_json") else options.profile
    from t2vrt import __version__

    key = {"t2vrt": __version__, "model": identity, "fingerprint": model_fingerprint(root), "variant": options.variant,
           "profile": profile,
           "precisions": list(options.precisions), "components": list(options.components),
           "ff_chunks": options.ff_chunks,
           "split_geglu": getattr(options, "split_geglu", True), "ort_fusion": getattr(options, "ort_fusion", None)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]


def cache_path(model: str, options: Any, cache_dir: str | Path | None = None) -> Path:
    """Where the cache holds (or will hold) ``model`` exported with ``options``."""
    from t2vrt.export.hub import resolve

    root = resolve(model, options.revision, options.variant)  # the hub cache's snapshot, or the folder itself
    local = Path(model).expanduser().exists()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).expanduser().resolve().name if local else model.split("/")[-1])
    return cache_root(cache_dir) / f"{name}-{cache_key(model, root, options)}"


def cached_engine_dir(model: str, options: Any, cache_dir: str | Path | None = None, export: bool = True) -> Path:
    """The engine directory for ``model`` under ``options`` in the cache, exported there first if it is missing
    (with ``export=False``, a missing one is refused with the call that makes it)."""
    out = cache_path(model, options, cache_dir)
    if (out / MANIFEST).is_file():
        log.info("from_pretrained: %s is exported already: loading %s", model, out)
        return out
    if not export:
        raise ManifestError(f"{model!r} has not been exported with these options; pass export=True to "
                            f"Pipeline.from_pretrained, or run `t2vrt export {model} -o DIR` and Pipeline.load(DIR)")
    from t2vrt.export import export_model

    log.info("from_pretrained: exporting %s into the cache (%s); later calls load it", model, out)
    return export_model(model, out, options)


def explain_not_engine_dir(path: str | Path) -> None:
    """A diffusers folder or hub id given to Pipeline.load: say which call serves it (one line)."""
    p = Path(path).expanduser()
    if (p / MANIFEST).is_file():
        return
    if (p / "model_index.json").is_file():
        raise ManifestError(f"{str(path)!r} is a diffusers model folder, not a t2vrt engine directory: use "
                            f"Pipeline.from_pretrained({str(path)!r}, export=True), or `t2vrt export {path} -o DIR` "
                            "then Pipeline.load(DIR)")
    if not p.exists() and str(path).count("/") == 1 and not str(path).startswith((".", "/", "~")):
        raise ManifestError(f"{str(path)!r} does not exist here: for a hub id use "
                            f"Pipeline.from_pretrained({str(path)!r}, "
                            f"export=True); for an engine directory, create it with `t2vrt export MODEL -o {path}`")


def dtype_precision(torch_dtype: Any, precision: str | None) -> str | None:
    """The precision a diffusers ``torch_dtype`` asks for (``precision``, when given, wins): float16 -> fp16,
    bfloat16 -> bf16 (the openvino backend), float32 -> None (fp32)."""
    from t2vrt.errors import InputError

    if torch_dtype is None:
        return precision
    name = str(torch_dtype).removeprefix("torch.")
    if name not in ("float16", "bfloat16", "float32"):
        raise InputError(f"torch_dtype={torch_dtype}; choose torch.float16, torch.bfloat16 or torch.float32 "
                         "(or precision='fp16' / 'bf16')")
    return precision or {"float16": "fp16", "bfloat16": "bf16"}.get(name)


def export_options(components: tuple[str, ...], revision: str | None, variant: str | None, profile: Any,
                   precision: str | None, torch_dtype: Any, extra: dict) -> tuple[Any, str | None]:
    """ExportOptions for from_pretrained, and the precision to run: ``torch_dtype=torch.float16`` (a diffusers
    habit) or ``precision="fp16"`` export the fp16 graph beside the fp32 one and run it; ``torch.bfloat16`` (or
    ``precision="bf16"``) runs the fp32 graph in bf16 on the openvino backend."""
    from t2vrt.errors import InputError
    from t2vrt.export import ExportOptions

    precision = dtype_precision(torch_dtype, precision)
    precisions = ("fp32", "fp16") if precision == "fp16" else ("fp32",)
    # a diffusers habit: t2vrt reads safetensors first
    extra = {k: v for k, v in extra.items() if k != "use_safetensors"}
    unknown = set(extra) - {"validate", "validation", "ff_chunks", "opset", "ort_fusion"}
    if unknown:
        raise InputError(f"from_pretrained got unexpected arguments {sorted(unknown)}; export options are profile, "
                         "precision, revision, variant, validate, validation, ff_chunks, ort_fusion, opset")
    return ExportOptions(components=tuple(components), profile=profile, precisions=precisions, revision=revision,
                         variant=variant, **extra), precision
