"""add_components: export more components into an existing engine directory, leaving the others as they are.

`t2vrt export MODEL -o DIR --components vae_encoder --add` makes a text-to-video directory serve video-to-video
(`t2vrt upscale`) without exporting the text encoder, UNet and VAE decoder again. The model must be the one the
directory's manifest records (its source, shapes and VAE scale), the new components are exported at the
directory's own profile and precisions, and nothing in the directory is replaced: each component is written
beside it (``.DIR.partial-PID``), renamed into ``DIR/onnx/NAME``, and the manifest is rewritten atomically last,
so an interrupted --add leaves the directory loading as it did before.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from t2vrt.components import component_specs
from t2vrt.errors import ExportError
from t2vrt.manifest import MANIFEST, Manifest, load_manifest, save_manifest

log = logging.getLogger(__name__)


def same_model(model: str, manifest: Manifest) -> bool:
    """``model`` names the source the manifest records: the same string, or the same existing folder."""
    if model == manifest.source:
        return True
    a, b = Path(model).expanduser(), Path(manifest.source).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def check_add(model: str, out: Path, names: tuple[str, ...]) -> Manifest:
    """Everything --add refuses, before any weight is read: the directory's manifest, the model it records, the
    components it already has, and a leftover component folder the manifest does not list."""
    if not (out / MANIFEST).is_file():
        raise ExportError(f"--add adds to an existing engine directory; {out} is none: export it with "
                          f"`t2vrt export {model} -o {out} --components {' '.join(names)}` (and any others it needs)")
    manifest = load_manifest(out)
    if not same_model(model, manifest):
        raise ExportError(f"{out} was exported from {manifest.source!r}, not {model!r}; --add takes the same model "
                          f"(`t2vrt export {manifest.source} -o {out} --components {' '.join(names)} --add`)")
    present = [n for n in names if n in manifest.components]
    if present:
        raise ExportError(f"{out} already has {', '.join(present)}; --add exports only components it lacks (it has "
                          f"{', '.join(sorted(manifest.components))}); --overwrite re-exports the whole directory")
    leftover = [n for n in names if (out / "onnx" / n).exists()]
    if leftover:
        raise ExportError(f"{out / 'onnx' / leftover[0]} exists but the manifest does not list it (an --add that did "
                          "not finish?); remove that folder and run --add again")
    return manifest


def directory_precisions(manifest: Manifest) -> tuple[str, ...]:
    """The precisions every component of the directory has (fp32 first): what an added component gets."""
    sets = [set(entry["onnx"]) for entry in manifest.components.values()]
    common = set.intersection(*sets) if sets else {"fp32"}
    return tuple(p for p in ("fp32", "fp16") if p in common)


def add_components(model: str, out: str | Path, options) -> Path:
    """Export ``options.components`` of ``model`` into the existing engine directory ``out`` (see module doc)."""
    from t2vrt.export.exporter import _check_options
    from t2vrt.locks import dir_lock_path, exclusive

    out = Path(out).resolve()
    _check_options(options)
    check_add(model, out, tuple(options.components))  # before the lock: a missing directory has none to take
    with exclusive(dir_lock_path(out), f"engine directory {out}", {"kind": "export --add"}):  # as export and build
        return _add_locked(model, out, options)


def _add_locked(model: str, out: Path, options) -> Path:
    """add_components' work, with the directory's writer lock held (checked again under it)."""
    from t2vrt.export.exporter import _export_component, estimate_bytes
    from t2vrt.export.load import load_model
    from t2vrt.export.workdir import check_space, disk_errors, temp_dir

    manifest = check_add(model, out, tuple(options.components))
    options = replace(options, precisions=directory_precisions(manifest), profile=manifest.profile)
    loaded = load_model(model, revision=options.revision, variant=options.variant or manifest.extra.get("variant"))
    if loaded.dims != manifest.model or loaded.vae_scaling_factor != manifest.vae_scaling_factor:
        raise ExportError(f"{model!r} no longer has the shapes {out} was exported with ({manifest.model} and VAE "
                          f"scale {manifest.vae_scaling_factor}); re-export the whole directory with --overwrite")
    needed = estimate_bytes(loaded, options)
    tmp = temp_dir(out)
    try:
        check_space(out.parent, needed, f"the export of {', '.join(options.components)}")
        specs, timings = component_specs(loaded.dims), dict(manifest.extra.get("export_seconds", {}))
        with disk_errors(tmp, needed) as writing:
            for name in options.components:
                t0 = time.perf_counter()
                manifest.components[name] = _export_component(name, loaded, specs[name], tmp, options, writing)
                timings[name] = round(time.perf_counter() - t0, 2)
            manifest.extra["export_seconds"] = timings
            _move_in(tmp, out, options.components, manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("added %s to %s", ", ".join(options.components), out)
    return out


def _move_in(tmp: Path, out: Path, names, manifest: Manifest) -> None:
    """Rename each new component folder into ``out/onnx`` and save the manifest (atomic, last); on a failure the
    folders this call moved in are removed again, so the directory is as it was."""
    (out / "onnx").mkdir(exist_ok=True)
    moved = []
    try:
        for name in names:
            os.replace(tmp / "onnx" / name, out / "onnx" / name)
            moved.append(out / "onnx" / name)
        save_manifest(out, manifest)
    except BaseException:
        for folder in moved:
            shutil.rmtree(folder, ignore_errors=True)
        raise
