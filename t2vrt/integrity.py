"""Are the engine directory's files the ones its manifest records? Checked at every load, cheaply.

A file is hashed (sha256) in full the first time its (size, mtime_ns, ctime_ns, inode) is seen; the result is
remembered in ``STAMP`` beside the manifest (written atomically), so the next load of an unchanged directory
only stats its files. Any change of those four numbers (an edit, a copy, ``touch``; ctime cannot be set back by
a user) triggers a full re-hash; a size unlike the manifest's is refused without hashing. ``t2vrt verify DIR``
hashes every file regardless of the stamp. A file changed in place with all four numbers kept (only by root,
e.g. a raw disk write) is found by ``verify`` alone.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from t2vrt.errors import ManifestError
from t2vrt.manifest import Manifest, add_command, load_manifest, sha256_file
from t2vrt.manifest_checks import REEXPORT, graph_records

log = logging.getLogger(__name__)
STAMP = ".t2vrt-verified.json"


def hashed_files(m: Manifest, components=None, precisions=None, engines: bool = True) -> list[tuple[str, dict, str]]:
    """(path, record with sha256/bytes, what to run to repair it) for the files the manifest hashes."""
    out, rebuild = [], "rebuild it (`t2vrt build DIR`)"
    for name, entry in m.components.items():
        if components is not None and name not in components:
            continue
        for prec, _, rec in graph_records(entry):
            if precisions is None or prec in precisions:
                out.append((rec["path"], rec, REEXPORT))
                if "external_data" in rec:
                    out.append((rec["external_data"]["path"], rec["external_data"], REEXPORT))
    for rec in m.engines.values() if engines else ():
        if "sha256" in rec and "bytes" in rec:
            out.append((rec["path"], rec, rebuild))
    return out


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_stamp(root: Path) -> dict:
    from t2vrt.jsonio import read_json

    try:
        d = read_json(root / STAMP)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or damaged: every file is hashed again


def _write_stamp(root: Path, stamp: dict) -> None:
    tmp = root / f".{STAMP}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        tmp.write_text(json.dumps(stamp, indent=1))
        os.replace(tmp, root / STAMP)
    except OSError as e:  # a read-only engine directory: correct, only slower (hashed at every load)
        tmp.unlink(missing_ok=True)
        log.debug("cannot remember verified files in %s (%s); they are hashed again at the next load", root / STAMP, e)


def file_problem(root: Path, rel: str, rec: dict, repair: str, stamp: dict, full: bool) -> str | None:
    """One line saying what is wrong with ``rel``, or None; updates ``stamp`` when it hashed the file."""
    path = root / rel
    try:
        st = path.stat()
    except OSError:
        return f"{path} is missing; {repair}"
    if st.st_size != rec["bytes"]:
        return f"{path} has {st.st_size} bytes, the manifest records {rec['bytes']} (truncated or changed); {repair}"
    key = _stat_key(st)
    if not full and stamp.get(rel) == key + [rec["sha256"]]:
        return None
    log.info("checking %s (%.1f MB) against its sha256", rel, st.st_size / 1e6)
    try:
        digest = sha256_file(path)
    except OSError as e:  # unreadable (mode 000): one line, never a traceback
        from t2vrt.jsonio import cannot_read

        return cannot_read(path, e)
    if digest != rec["sha256"]:
        stamp.pop(rel, None)
        return f"{path} does not match its sha256 in the manifest (corrupt or changed); {repair}"
    stamp[rel] = key + [rec["sha256"]]
    return None


def check_files(root: str | Path, files: list[tuple[str, dict, str]], full: bool = False) -> list[str]:
    """Problems (one line each) among ``files``; hashes only what the stamp does not vouch for (all when ``full``)."""
    root = Path(root)
    stamp = _read_stamp(root)
    before = dict(stamp)
    problems = [p for rel, rec, repair in files if (p := file_problem(root, rel, rec, repair, stamp, full))]
    if stamp != before:
        _write_stamp(root, stamp)
    return problems


def require_intact(root: str | Path, m: Manifest, components=None, precisions=None, engines: bool = True) -> None:
    """Raise the first problem as a ManifestError line, naming `t2vrt verify` for a full check."""
    problems = check_files(root, hashed_files(m, components, precisions, engines))
    if problems:
        more = ""
        if len(problems) > 1:
            more = f" (and {len(problems) - 1} more problem(s): `t2vrt verify {root}` lists them)"
        raise ManifestError(problems[0] + more)


def read_json_file(root: Path, rel: str, what: str) -> dict:
    """A JSON object from the engine directory, or one ManifestError line naming the file."""
    from t2vrt.jsonio import JSONError, read_json

    path = Path(root) / rel
    try:
        d = read_json(path)
    except FileNotFoundError:
        raise ManifestError(f"{what} {path} is missing; {REEXPORT}") from None
    except JSONError as e:
        if str(e).startswith("cannot read"):
            raise ManifestError(str(e)) from None
        raise ManifestError(f"{what} {e}; {REEXPORT}") from None
    if not isinstance(d, dict):
        raise ManifestError(f"{what} {path} is not a JSON object; {REEXPORT}")
    return d


def readable_problems(root: Path, m: Manifest) -> list[str]:
    """The tokenizer and the scheduler config load (they have no sha256 in the manifest: they are parsed instead)."""
    from t2vrt.runtime.tokenizer import ClipTokenizer

    problems = []
    for load in (lambda: ClipTokenizer(root, m.tokenizer),
                 lambda: read_json_file(root, m.scheduler_config, "scheduler config")):
        try:
            load()
        except ManifestError as e:
            problems.append(str(e))
    return problems


def verify(root: str | Path) -> tuple[list[str], int, int]:
    """Full check of an engine directory: manifest, paths, JSON files, every hashed file.
    Returns (problems, files hashed, bytes hashed); the stamp is refreshed for files that pass."""
    root = Path(root)
    try:
        m = load_manifest(root)
    except ManifestError as e:
        return [str(e)], 0, 0
    problems = readable_problems(root, m)
    files = hashed_files(m)
    problems += check_files(root, files, full=True)
    return problems, len(files), sum(rec["bytes"] for _, rec, _ in files)


def check_for_pipeline(root: Path, m: Manifest, backend, precision: str | None,
                       needed=("text_encoder", "unet")) -> None:
    """What a Pipeline checks at load: the components it needs are there, and the files it will run are intact
    (``backend``, an engines.backends.Backend, says which: ``intact_files``)."""
    missing = [c for c in needed if c not in m.components]
    if missing:
        raise ManifestError(f"engine directory {str(root)!r} has no {', '.join(missing)}, which generation needs; it "
                            f"has {sorted(m.components)}: add them with `{add_command(m, root, missing)}`")
    require_intact(root, m, **backend.intact_files(precision))
