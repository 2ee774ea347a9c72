"""Two writers at once: exports, builds and batches hold a lock on their target (real processes, real flock)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from t2vrt.cli import main
from t2vrt.errors import BusyError, ExportError
from t2vrt.export import ExportOptions, export_model, exporter
from t2vrt.locks import FOLDER_LOCK, dir_lock_path, exclusive
from t2vrt.manifest import load_manifest
from tests.reliability.procs import hold, t2vrt

TEXT_ONLY = ExportOptions(components=("text_encoder",), validate=False)


def test_export_is_refused_at_once_while_another_writer_holds_the_target(tiny_model, tmp_path):
    out = tmp_path / "engines"
    holder = hold(dir_lock_path(out), {"kind": "export"})
    try:
        t0 = time.perf_counter()
        with pytest.raises(BusyError, match=rf"engine directory .*engines is being written by process {holder.pid} \("):
            export_model(str(tiny_model), out, TEXT_ONLY)
        assert time.perf_counter() - t0 < 5 and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    export_model(str(tiny_model), out, TEXT_ONLY)  # kill -9 released the lock: the OS did it
    assert set(load_manifest(out).components) == {"text_encoder"}


def _user_creates(target: Path, real):
    """The export's component step, with a user creating ``target`` (with a file) while it runs."""

    def export_all(loaded, tmp, options, writing):
        target.mkdir(exist_ok=True)
        (target / "notes.txt").write_text("mine")
        return real(loaded, tmp, options, writing)

    return export_all


def test_a_directory_created_during_the_export_is_never_replaced(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "engines"
    monkeypatch.setattr(exporter, "_export_all", _user_creates(out, exporter._export_all))
    with pytest.raises(ExportError, match=r"was created by someone else during the export, so it is left untouched; "
                                          r"the finished export is left at .*\.engines\.partial-\d+"):
        export_model(str(tiny_model), out, TEXT_ONLY)
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    [partial] = tmp_path.glob(".engines.partial-*")
    assert (partial / "manifest.json").is_file()  # complete, where the message says
    monkeypatch.undo()
    export_model(str(tiny_model), tmp_path / "other", TEXT_ONLY)  # a later export beside it keeps it
    export_model(str(tiny_model), tmp_path / "engines2", TEXT_ONLY)
    assert partial.is_dir()


def test_overwrite_replaces_only_the_directory_it_checked(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "engines"
    export_model(str(tiny_model), out, TEXT_ONLY)
    real = exporter._export_all

    def swap(loaded, tmp, options, writing):  # a user swaps in another directory meanwhile
        os.rename(out, tmp_path / "old")
        shutil.copytree(tmp_path / "old", out)
        (out / "notes.txt").write_text("mine")
        return real(loaded, tmp, options, writing)

    monkeypatch.setattr(exporter, "_export_all", swap)
    with pytest.raises(ExportError, match=r"changed during the export \(not the directory --overwrite was given\)"):
        export_model(str(tiny_model), out, ExportOptions(components=("text_encoder",), validate=False, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine"
    assert len(list(tmp_path.glob(".engines.partial-*"))) == 1


def test_overwrite_with_the_directory_unchanged_replaces_it(tiny_model, tmp_path):
    out = tmp_path / "engines"
    export_model(str(tiny_model), out, TEXT_ONLY)
    export_model(str(tiny_model), out, ExportOptions(components=("text_encoder",), validate=False, overwrite=True,
                                                     precisions=("fp32", "fp16")))
    assert "fp16" in load_manifest(out).components["text_encoder"]["onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["engines"]


def test_a_replaced_directory_whose_export_died_is_moved_back(tiny_model, tmp_path):
    out = tmp_path / "engines"
    export_model(str(tiny_model), out, TEXT_ONLY)
    dead = _dead_pid()
    os.rename(out, tmp_path / f".engines.replaced-{dead}")  # killed between moving it aside and placing the new one
    export_model(str(tiny_model), tmp_path / "engines-b", TEXT_ONLY)  # another export there: not this target
    from t2vrt.export.workdir import clean_stale

    clean_stale(out)
    assert set(load_manifest(out).components) == {"text_encoder"}


def _dead_pid() -> int:
    p = multiprocessing.get_context("spawn").Process(target=int)
    p.start()
    p.join()
    return p.pid


# -- build: the same components refused, other components wait; the manifest is read-modify-write ------------------

def test_build_of_the_same_component_is_refused_at_once(engine_copy, capsys):
    holder = hold(dir_lock_path(engine_copy), {"kind": "build", "components": ["text_encoder"]})
    try:
        assert main(["build", str(engine_copy), "--components", "text_encoder"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"is being written by process {holder.pid} (" in err
    finally:
        holder.kill()
        holder.wait()


def test_build_of_other_components_waits(engine_copy, monkeypatch, caplog):
    from t2vrt.engines.tensorrt import build

    holder = hold(dir_lock_path(engine_copy), {"kind": "build", "components": ["unet"]}, seconds=2)
    monkeypatch.setattr(build, "_build_locked", lambda root, options: {"ran_at": time.perf_counter()})
    t0 = time.perf_counter()
    result = build.build_engines(engine_copy, build.BuildOptions(components=("text_encoder",)))
    holder.wait()
    assert result["ran_at"] - t0 > 0.5  # it waited for the holder to finish
    assert f"waiting for process {holder.pid}" in caplog.text


def _record_engine(root: str, component: str, go) -> None:
    """One build's manifest write, in its own process, under the directory's lock as build_engines takes it."""
    from t2vrt.manifest import load_manifest, update_engines

    manifest = load_manifest(root)  # read before the other process wrote: the lost-update setting
    go.wait()
    manifest.engines[f"{component}-key"] = {"component": component, "path": f"engines/{component}/k.plan"}
    with exclusive(dir_lock_path(root), "engine directory", {"kind": "build", "components": [component]},
                   wait=lambda h: True):
        update_engines(Path(root), manifest, component)


def test_two_builds_of_different_components_both_end_recorded(engine_copy):
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_record_engine, args=(str(engine_copy), c, go)) for c in ("text_encoder", "unet")]
    for p in procs:
        p.start()
    time.sleep(0.5)
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    engines = json.loads((engine_copy / "manifest.json").read_text())["engines"]
    assert sorted(r["component"] for r in engines.values()) == ["text_encoder", "unet"]


@pytest.mark.slow  # two real TensorRT-RTX builds at once
def test_two_real_builds_of_different_components(engine_copy):
    pytest.importorskip("tensorrt_rtx")
    common = ["--flavour", "tensorrt-rtx", "--compute-capability", "sm89", "--frames", "1:2:4"]
    import subprocess
    import sys

    from tests.reliability.procs import ENV

    procs = [subprocess.Popen([sys.executable, "-m", "t2vrt", "build", str(engine_copy), "--components", c, *common],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in ("text_encoder", "vae_decoder")]
    for p in procs:
        assert p.wait(600) == 0, p.stderr.read()[-2000:]
    engines = load_manifest(engine_copy).engines
    assert sorted(r["component"] for r in engines.values()) == ["text_encoder", "vae_decoder"]


# -- batch: one writer per output folder -------------------------------------------------------------------------

def test_second_batch_into_one_folder_is_refused_and_kill_releases(tiny_engines, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "a cat", "num_frames": 2, "height": 32, "width": 32}) + "\n")
    holder = hold(out / FOLDER_LOCK, {"kind": "batch"})
    try:
        assert main(["batch", str(tiny_engines), str(prompts), "-o", str(out), "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"output folder {out} is being written by process {holder.pid}" in err
        assert not (out / "results.jsonl").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert main(["batch", str(tiny_engines), str(prompts), "-o", str(out), "--steps", "1"]) == 0
    assert not (out / FOLDER_LOCK).exists()


def test_cli_export_refusal_is_one_line(tiny_model, tmp_path):
    out = tmp_path / "engines"
    holder = hold(dir_lock_path(out), {"kind": "export"})
    try:
        r = t2vrt("export", str(tiny_model), "-o", str(out), "--components", "text_encoder")
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
        assert f"is being written by process {holder.pid}" in r.stderr
    finally:
        holder.kill()
        holder.wait()
