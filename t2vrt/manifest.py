"""The engine directory's manifest.json: what was exported, how, and what it may be asked.

The runtime reads only the engine directory; this file is its table of contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from t2vrt.components import ComponentSpec, ModelDims, Profile, Range, build_command, check_range, range_flags, widen
from t2vrt.errors import ManifestError
from t2vrt.manifest_checks import check_paths, check_structure, confined, graph_records  # noqa: F401 (re-exported)

FORMAT = "t2vrt-engine-dir"
VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_MARK = "partial"  # an export writes into ".NAME.partial-PID" and renames it to NAME when done
_PARTIAL = re.compile(rf"^\..+\.{PARTIAL_MARK}-(\d+)$")


@dataclass
class Manifest:
    """In-memory form of manifest.json. ``components`` maps a name to its entry:
    ``{"io": ComponentSpec json, "onnx": {precision: {"path", "sha256", "bytes"}}, "validation": {...}}``;
    ``engines`` maps an engine key to its record (filled by ``t2vrt build``). ``vae_scaling_factor`` is the VAE
    config's latent scale (0.18215 for ModelScope); on disk it is kept in "extra", where version 1 has it."""

    model: ModelDims
    profile: Profile
    components: dict[str, dict]
    tokenizer: dict
    vae_scaling_factor: float
    scheduler_config: str = "scheduler_config.json"
    source: str = ""
    versions: dict = field(default_factory=dict)
    engines: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def spec(self, name: str) -> ComponentSpec:
        if name not in self.components:
            raise ManifestError(f"component {name!r} is not in this engine directory; it has {sorted(self.components)}")
        return ComponentSpec.from_json(name, self.components[name]["io"])

    def onnx_path(self, root: Path, name: str, precision: str) -> Path:
        entry = self.components[name]["onnx"]
        if precision not in entry:
            raise ManifestError(
                f"component {name!r} has no {precision} ONNX graph; it has {sorted(entry)} (re-export with --precision "
                f"{precision})"
            )
        return confined(root, entry[precision]["path"], f"the {precision} ONNX graph of {name}")

    def cpu_onnx_path(self, root: Path, name: str, precision: str) -> Path:
        """The graph ONNX Runtime runs on the CPU: the attention-fused one where the export wrote it
        (``onnx_fused``, t2vrt.export.ort_fusion), else the portable one."""
        fused = self.components[name].get("onnx_fused", {}).get(precision)
        if fused is None:
            return self.onnx_path(root, name, precision)
        return confined(root, fused["path"], f"the CPU-fused {precision} ONNX graph of {name}")


    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "source": self.source,
            "model": self.model.to_json(),
            "profile": self.profile.to_json(),
            "tokenizer": self.tokenizer,
            "scheduler_config": self.scheduler_config,
            "components": self.components,
            "engines": self.engines,
            "versions": self.versions,
            "extra": {"vae_scaling_factor": self.vae_scaling_factor, **self.extra},
        }

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        try:
            extra = dict(d.get("extra", {}))
            return cls(
                model=ModelDims(**d["model"]),
                profile=Profile.from_json(d["profile"]),
                components=d["components"],
                tokenizer=d["tokenizer"],
                vae_scaling_factor=float(extra.pop("vae_scaling_factor")),
                scheduler_config=d.get("scheduler_config", "scheduler_config.json"),
                source=d.get("source", ""),
                versions=d.get("versions", {}),
                engines=d.get("engines", {}),
                extra=extra,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"manifest.json is missing or has a malformed field ({e}); re-export the "
                                "model") from None


def load_manifest(root: str | Path) -> Manifest:
    """Read and check DIR/manifest.json; every failure is a one-line ManifestError."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"engine directory {str(root)!r} does not exist; create one with `t2vrt export MODEL -o "
                            f"{root}`")
    partial = _PARTIAL.match(root.resolve().name)
    if partial:
        raise ManifestError(
            f"{str(root)!r} is the working directory of an export that did not finish (process {partial.group(1)}); "
            "re-run `t2vrt export`, which removes it"
        )
    path = root / MANIFEST
    d = read_manifest_json(root)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ManifestError(f"{path} is not a t2vrt manifest (format "
                            f"{d.get('format') if isinstance(d, dict) else None!r})")
    if d.get("version") != VERSION:
        raise ManifestError(
            f"{path} has manifest version {d.get('version')!r}; this t2vrt reads version {VERSION}: re-export with "
            "this version"
        )
    check_structure(d, path)
    check_paths(root, d)
    return Manifest.from_json(d)


def model_argument(source: str) -> str:
    """MODEL in the commands our errors suggest: the model an engine directory's manifest records (shell-quoted),
    or "MODEL" where it recorded none or the folder it names is gone (a random-weight export's temporary one)."""
    import shlex

    if not source or (Path(source).is_absolute() and not Path(source).exists()):
        return "MODEL"
    return shlex.quote(source)


def recorded_model(root: str | Path) -> str:
    """``model_argument`` of the manifest in ``root`` without checking it ("MODEL" where it cannot be read)."""
    from t2vrt.jsonio import read_json

    try:
        d = read_json(Path(root) / MANIFEST)  # capped, regular files only: a hint must not hang on a FIFO
    except (OSError, ValueError):
        return "MODEL"
    return model_argument(d.get("source", "")) if isinstance(d, dict) and isinstance(d.get("source"), str) else "MODEL"


def add_command(manifest: Manifest, root: str | Path, names) -> str:
    """The command that adds the components ``names`` to the engine directory ``root`` (t2vrt.export.add)."""
    import shlex

    return (f"t2vrt export {model_argument(manifest.source)} -o {shlex.quote(str(root))} "
            f"--components {' '.join(names)} --add")


def read_manifest_json(root: Path) -> object:
    """DIR/manifest.json through the capped reader (a regular file, size and depth capped); one ManifestError line."""
    from t2vrt.jsonio import JSONError, read_json

    path = Path(root) / MANIFEST
    try:
        return read_json(path)
    except FileNotFoundError:
        raise ManifestError(f"{str(root)!r} has no {MANIFEST}: it is not a t2vrt engine directory (or its export "
                            "did not finish)") from None
    except JSONError as e:
        if str(e).startswith("cannot read"):
            raise ManifestError(str(e)) from None
        raise ManifestError(f"{path} is corrupt ({e}); re-export the model") from None


def engine_file(root: Path, manifest: Manifest, key: str) -> Path:
    """The plan file of engine ``key``: only ever a path under DIR/engines/ that the manifest records."""
    return confined(root, manifest.engines[key]["path"], f"engine {key}", under="engines")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_manifest(root: Path, manifest: Manifest) -> None:
    write_json_atomic(Path(root) / MANIFEST, manifest.to_json())


def update_engines(root: Path, manifest: Manifest, component: str) -> None:
    """Record ``manifest``'s engines of ``component`` by read-modify-write: the manifest on disk is read again and
    only that component's engine records are replaced, so a build of other components that wrote meanwhile keeps
    its records (the caller holds the directory's lock: t2vrt.locks). ``manifest`` is updated to the result."""
    current = load_manifest(root)
    current.engines = {k: r for k, r in current.engines.items() if r.get("component") != component}
    current.engines.update({k: r for k, r in manifest.engines.items() if r.get("component") == component})
    save_manifest(root, current)
    manifest.engines = dict(current.engines)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def export_command(root: str = "DIR", **ranges: Range) -> str:
    """The re-export command, naming the model the manifest in ``root`` records (MODEL where there is none)."""
    args = range_flags(**ranges)
    return f"t2vrt export {recorded_model(root)} -o {root} --overwrite" + (f" {args}" if args else "")


def check_field(field: str, value: int, rng: Range, where: str, fix: str = "export", root: str = "DIR",
                name: str | None = None) -> None:
    """check_range for a Profile field, naming the export (``fix="export"``) or build command that widens it."""
    command = (build_command if fix == "build" else export_command)(root, **{field: widen(rng, value)})
    check_range(name or field, value, rng, where, command)
