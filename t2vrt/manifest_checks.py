"""What manifest.json must hold, and where its paths may point: inside the engine directory, nowhere else.

Checked once when a manifest is read, so every later ``root / entry["path"]`` is known to stay inside the
directory (no absolute path, no ``..``, no symlink leaving it). Each violation is one ManifestError line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from t2vrt.errors import ManifestError

REEXPORT = "re-export the model (`t2vrt export MODEL -o DIR --overwrite`)"


def _need(d, key: str, kind, where: str, manifest: Path):
    if not isinstance(d, dict) or key not in d or not isinstance(d[key],
                                                                 kind) or isinstance(d[key], bool) and kind is not bool:
        kinds = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ManifestError(f"{manifest}: {where}{key} is missing or a malformed field (expected a {kinds}); "
                            f"{REEXPORT}")
    return d[key]


def _file_record(rec, where: str, manifest: Path) -> None:
    _need(rec, "path", str, where, manifest)
    _need(rec, "sha256", str, where, manifest)
    _need(rec, "bytes", int, where, manifest)


def graph_records(entry: dict) -> list[tuple[str, str, dict]]:
    """(precision, label, file record) of every ONNX graph of a component entry: the portable ones under "onnx", the
    CPU-fused ones under "onnx_fused" (label "fp32 CPU-fused")."""
    return [(p, p, r) for p, r in entry["onnx"].items()] + [
        (p, f"{p} CPU-fused", r) for p, r in (entry.get("onnx_fused") or {}).items()]


def check_structure(d: dict, manifest: Path) -> None:
    """Every nested key the runtime reads, with its type; the top-level ones are Manifest.from_json's."""
    for key in ("model", "profile", "components", "tokenizer"):
        _need(d, key, dict, "", manifest)
    for name, entry in d["components"].items():
        io = _need(entry, "io", dict, f"components.{name}.", manifest)
        for side in ("inputs", "outputs"):
            for i, t in enumerate(_need(io, side, list, f"components.{name}.io.", manifest)):
                for k, kind in (("name", str), ("dtype", str), ("dims", list)):
                    _need(t, k, kind, f"components.{name}.io.{side}[{i}].", manifest)
        onnx = _need(entry, "onnx", dict, f"components.{name}.", manifest)
        if not onnx:
            raise ManifestError(f"{manifest}: components.{name}.onnx lists no graph; {REEXPORT}")
        fused = entry.get("onnx_fused", {})
        if not isinstance(fused, dict):
            raise ManifestError(f"{manifest}: components.{name}.onnx_fused is not a mapping; {REEXPORT}")
        for key, graphs in (("onnx", onnx), ("onnx_fused", fused)):
            for prec, rec in graphs.items():
                _file_record(rec, f"components.{name}.{key}.{prec}.", manifest)
                if "external_data" in rec:
                    _file_record(rec["external_data"], f"components.{name}.{key}.{prec}.external_data.", manifest)
    tok = d["tokenizer"]
    for k, kind in (("path", str), ("max_length", int), ("pad_id", int), ("pad_token", str)):
        _need(tok, k, kind, "tokenizer.", manifest)
    if not isinstance(d.get("scheduler_config", ""), str):
        raise ManifestError(f"{manifest}: scheduler_config is not a path; {REEXPORT}")
    for key, rec in (d.get("engines") or {}).items():
        _need(rec, "path", str, f"engines.{key}.", manifest)


def confined(root: str | Path, rel: str, what: str, under: str = "") -> Path:
    """``root / rel``, refused unless it stays inside ``root`` (inside ``root / under`` when given)."""
    root = Path(root)
    if not isinstance(rel, str) or not rel.strip():
        raise ManifestError(f"{root / 'manifest.json'}: the path of {what} is empty; {REEXPORT}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise ManifestError(f"{root / 'manifest.json'}: the path of {what} is absolute ({rel!r}); "
                            f"every path must lie inside the engine directory: {REEXPORT}")
    if ".." in pure.parts or ".." in PureWindowsPath(rel).parts:
        raise ManifestError(f"{root / 'manifest.json'}: the path of {what} ({rel!r}) climbs out with '..'; "
                            f"every path must lie inside the engine directory: {REEXPORT}")
    base = (root / under).resolve() if under else root.resolve()
    if under and pure.parts[: len(PurePosixPath(under).parts)] != PurePosixPath(under).parts:
        raise ManifestError(f"{root / 'manifest.json'}: the path of {what} ({rel!r}) is not under {under}/; {REEXPORT}")
    target = (root / rel).resolve()
    if target != base and base not in target.parents:
        raise ManifestError(f"{root / 'manifest.json'}: {rel!r} ({what}) is a symlink that leaves the engine directory "
                            f"(to {target}); every path must lie inside it: {REEXPORT}")
    return root / rel


def recorded_paths(d: dict) -> list[tuple[str, str, str]]:
    """(path, what it is, the folder it must lie under) for every path a checked manifest dict names."""
    out = [(d["tokenizer"]["path"], "the tokenizer", ""),
           (d.get("scheduler_config", "scheduler_config.json"), "the scheduler config", "")]
    for name, entry in d["components"].items():
        for _, label, rec in graph_records(entry):
            out.append((rec["path"], f"the {label} ONNX graph of {name}", ""))
            if "external_data" in rec:
                out.append((rec["external_data"]["path"], f"the {label} ONNX weights of {name}", ""))
    for key, rec in (d.get("engines") or {}).items():
        out.append((rec["path"], f"engine {key}", "engines"))
    return out


def check_paths(root: str | Path, d: dict) -> None:
    """Every recorded path stays inside ``root`` and, where it exists, is a regular file this process can read (a
    FIFO, socket or device is refused from its ``stat``, never opened: reading one would block or never end)."""
    for rel, what, under in recorded_paths(d):
        check_file(confined(root, rel, what, under), what)


def check_file(path: Path, what: str) -> None:
    """ManifestError if ``path`` exists but is not a readable regular file; a missing one is the caller's to report."""
    from t2vrt.jsonio import file_kind

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ManifestError(f"cannot read {path} ({what}): {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{path} ({what}) is a {file_kind(st.st_mode)}, not a regular file; {REEXPORT}")
    if not os.access(path, os.R_OK):
        raise ManifestError(f"cannot read {path} ({what}): permission denied; give this user read access "
                            f"(`chmod a+r {path}`)")
