"""The engine directory is a closed world, and its files are the ones the manifest records."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from t2vrt import ManifestError, Pipeline, integrity
from t2vrt.integrity import STAMP, verify
from t2vrt.manifest import Manifest, load_manifest


@pytest.fixture
def engines(tiny_engines, tmp_path) -> Path:
    """A private copy (real bytes, no hardlinks) of the tiny engine directory, to damage."""
    out = tmp_path / "engines"
    shutil.copytree(tiny_engines, out, ignore=shutil.ignore_patterns(STAMP))
    return out


def edit_manifest(root: Path, change) -> None:
    d = json.loads((root / "manifest.json").read_text())
    change(d)
    (root / "manifest.json").write_text(json.dumps(d))


def unet_weights(root: Path) -> Path:
    """The largest file of the UNet's fp32 graph: where its weights are."""
    return max((root / "onnx" / "unet").iterdir(), key=lambda p: p.stat().st_size)


def test_flipped_bytes_are_found_before_generation(engines):
    path = unet_weights(engines)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError,
                       match=rf"{path.name} does not match its sha256 in the manifest .*; re-export the model"):
        Pipeline.load(engines)
    problems, _, _ = verify(engines)
    assert len(problems) == 1 and path.name in problems[0]


def test_truncated_graph(engines):
    path = unet_weights(engines)
    size = path.stat().st_size
    os.truncate(path, size // 3)
    with pytest.raises(ManifestError,
                       match=rf"{path.name} has {size // 3} bytes, the manifest records {size} \(truncated"):
        Pipeline.load(engines)


def test_stamp_spares_the_hash_until_a_file_changes(engines, monkeypatch):
    Pipeline.load(engines)
    assert (engines / STAMP).is_file()
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    Pipeline.load(engines)
    assert hashed == []  # an unchanged directory only stats its files
    path = unet_weights(engines)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    Pipeline.load(engines)
    assert hashed == [path.name]
    (engines / STAMP).write_text("{not json")  # a damaged stamp: everything hashed again, then remembered
    hashed.clear()
    Pipeline.load(engines)
    assert len(hashed) >= 3 and json.loads((engines / STAMP).read_text())


def test_bad_tokenizer_and_scheduler_json(engines):
    (engines / "scheduler_config.json").write_text("{oops")
    with pytest.raises(ManifestError, match=r"scheduler config .*scheduler_config\.json is not valid JSON .*re-export"):
        Pipeline.load(engines)
    (engines / "scheduler_config.json").write_text("{}")
    (engines / "tokenizer" / "tokenizer.json").write_text('{"model": 3}')
    with pytest.raises(ManifestError, match=r"tokenizer .*tokenizer\.json cannot be read .*re-export"):
        Pipeline.load(engines)
    assert len(verify(engines)[0]) == 1


@pytest.mark.parametrize("change, message", [
    (lambda d: d["components"]["unet"]["onnx"]["fp32"].pop("sha256"),
     r"components\.unet\.onnx\.fp32\.sha256 is missing"),
    (lambda d: d["components"]["unet"].pop("io"), r"components\.unet\.io is missing"),
    (lambda d: d["tokenizer"].pop("pad_id"), r"tokenizer\.pad_id is missing"),
    (lambda d: d["components"]["unet"]["io"]["inputs"][0].pop("dims"),
     r"components\.unet\.io\.inputs\[0\]\.dims is missing"),
])
def test_missing_nested_keys(engines, change, message):
    edit_manifest(engines, change)
    with pytest.raises(ManifestError, match=message + ".*re-export"):
        load_manifest(engines)


def _set_unet_path(value):
    return lambda d: d["components"]["unet"]["onnx"]["fp32"].__setitem__("path", value)


@pytest.mark.parametrize("change, message", [
    (_set_unet_path("/etc/hostname"), "is absolute"),
    (_set_unet_path("onnx/../../x/model.onnx"), "climbs out with '..'"),
    (lambda d: d["tokenizer"].__setitem__("path", "../tokenizer.json"), "climbs out"),
    (lambda d: d.__setitem__("scheduler_config", "/tmp/s.json"), "is absolute"),
    (lambda d: d["engines"].__setitem__("k", {"path": "../../x"}), "climbs out"),
    (lambda d: d["engines"].__setitem__("k", {"path": "onnx/unet/model.onnx"}), "is not under engines/"),
])
def test_paths_stay_inside(engines, change, message):
    edit_manifest(engines, change)
    with pytest.raises(ManifestError, match=message):
        load_manifest(engines)


def test_symlink_leaving_the_directory(engines, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (engines / "scheduler_config.json").unlink()
    (engines / "scheduler_config.json").symlink_to(outside)
    with pytest.raises(ManifestError, match="is a symlink that leaves the engine directory"):
        load_manifest(engines)


def test_build_deletes_only_recorded_files_under_engines(engines, tmp_path):
    from t2vrt.engines.tensorrt.build import _retire

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    m = load_manifest(engines)
    old = {"component": "unet", "precision": "fp16", "flavour": "tensorrt", "compute_capability": "9.0"}
    m2 = Manifest(**{**m.__dict__, "engines": {"old": {**old, "path": "../victim.txt"}}})
    with pytest.raises(ManifestError, match="climbs out"):
        _retire(engines, m2, {**old, "path": "engines/unet/new.plan"})
    assert victim.read_text() == "keep"
    plan = engines / "engines" / "unet" / "old.plan"
    plan.parent.mkdir(parents=True)
    plan.write_bytes(b"x")
    m3 = Manifest(**{**m.__dict__, "engines": {"old": {**old, "path": "engines/unet/old.plan"}}})
    _retire(engines, m3, {**old, "path": "engines/unet/new.plan"})
    assert not plan.exists() and m3.engines == {}


def test_verify_finds_what_the_stamp_cannot(engines):
    """A change that keeps size, mtime, ctime and inode (simulated by re-stamping) passes a load; verify re-hashes."""
    Pipeline.load(engines)
    path = unet_weights(engines)
    rel = str(path.relative_to(engines))
    with open(path, "r+b") as f:  # same size, in place
        f.seek(path.stat().st_size // 2)
        f.write(b"\x7f" * 8)
    stamp = json.loads((engines / STAMP).read_text())
    st = path.stat()
    stamp[rel] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, stamp[rel][-1]]
    (engines / STAMP).write_text(json.dumps(stamp))
    Pipeline.load(engines)  # the documented limit of the stamp
    problems, files, size = verify(engines)
    assert len(problems) == 1 and "does not match its sha256" in problems[0] and files >= 3 and size > 0
    with pytest.raises(ManifestError, match="does not match its sha256"):
        Pipeline.load(engines)  # verify dropped the false stamp
