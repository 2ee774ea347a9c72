"""Large-model faults on the tiny model: a killed export, a full disk, stale partial directories."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2vrt import ManifestError, Pipeline
from t2vrt.errors import ExportError
from t2vrt.export import ExportOptions, export_model, exporter
from t2vrt.manifest import load_manifest
from tests.fs_fixtures import small_fs  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
KILL_SCRIPT = "from t2vrt.export import export_model; export_model({model!r}, {out!r})"


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the export ended (rc={proc.returncode}) before it could be killed midway")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"no midway point within {timeout} s")
        time.sleep(0.01)


@pytest.mark.slow  # an export in a subprocess, killed midway
def test_sigkill_midway_leaves_nothing_that_loads(tiny_model, tmp_path):
    out = tmp_path / "engines"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(model=str(tiny_model), out=str(out))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Midway: the first component's graph is written, the others are not.
    _wait_for(lambda: any((p / "onnx" / "text_encoder" / "model.onnx").exists() for p in _partials(out)), 180, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    [partial] = _partials(out)
    assert partial.name == f".engines.partial-{proc.pid}"
    with pytest.raises(ManifestError,
                       match=r"is the working directory of an export that did not finish \(process \d+\)"):
        Pipeline.load(partial)
    with pytest.raises(ManifestError, match="does not exist"):
        Pipeline.load(out)

    export_model(str(tiny_model), out, ExportOptions(components=("text_encoder",), validate=False))
    assert _partials(out) == []  # the dead process's directory is gone
    assert set(load_manifest(out).components) == {"text_encoder"}


def test_partial_dir_with_a_manifest_is_refused(tiny_engines, tmp_path):
    """Killed between writing the manifest and the rename: complete-looking, still not an engine directory."""
    partial = tmp_path / ".engines.partial-12345"
    shutil.copytree(tiny_engines, partial)
    with pytest.raises(ManifestError, match="did not finish"):
        load_manifest(partial)


def test_only_dead_exports_are_cleaned(tiny_model, tmp_path):
    out = tmp_path / "engines"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = tmp_path / f".engines.partial-{int(done.stdout)}"
    alive = tmp_path / ".engines.partial-1"  # pid 1 is always running
    other = tmp_path / ".other.partial-999999"  # another output's: not ours to touch
    for d in (dead, alive, other):
        (d / "onnx").mkdir(parents=True)
    export_model(str(tiny_model), out, ExportOptions(components=("text_encoder",), validate=False))
    assert not dead.exists() and alive.exists() and other.exists()


# -- a full disk: a tmpfs of our own, a few MB -----------------------------------------------------------------

def _export_bytes(engines: Path) -> int:
    """What a default export (fp32; text encoder, UNet, VAE decoder) of the same model writes: the session export
    less its fp16 graphs and its VAE encoder."""
    files = [p for p in engines.rglob("*") if p.is_file() and "vae_encoder" not in p.parts and "_fp16" not in p.name]
    return sum(p.stat().st_size for p in files)


@pytest.mark.slow  # a whole export into a full tmpfs
def test_disk_full_midway(tiny_model, tiny_engines, small_fs, monkeypatch):
    """The disk fills during the export (the up-front check passed, then something else took the space)."""
    total = _export_bytes(tiny_engines)
    fs = small_fs(max(64, total // 2 // 1024))  # room for the tokenizer and some of the graphs, not all
    monkeypatch.setattr(exporter, "check_space", lambda *a: None)
    with pytest.raises(ExportError,
                       match=r"^no space left on device while writing onnx/\w+/model\.onnx(\.data)?; [\d.]+ MB needed, "
                       r"[\d.]+ MB free$"):
        export_model(str(tiny_model), fs / "engines", ExportOptions(validate=False, ort_fusion=False))
    assert list(fs.iterdir()) == []  # the partial output is gone


def test_not_enough_space_up_front(tiny_model, small_fs, monkeypatch):
    fs = small_fs(256)

    def no_export(*a, **k):
        raise AssertionError("a component was exported before the space check")

    monkeypatch.setattr(exporter, "_export_all", no_export)
    with pytest.raises(ExportError,
                       match=r"not enough space on .* for the export of text_encoder, unet, vae_decoder: [\d.]+ MB "
                       r"needed, [\d.]+ MB free"):
        export_model(str(tiny_model), fs / "engines", ExportOptions(ort_fusion=False))
    assert list(fs.iterdir()) == []


def test_overwrite_leaves_no_hidden_directories(tiny_model, tmp_path):
    out = tmp_path / "engines"
    export_model(str(tiny_model), out, ExportOptions(components=("text_encoder",), validate=False))
    export_model(str(tiny_model), out, ExportOptions(components=("vae_decoder",), validate=False, overwrite=True))
    assert set(load_manifest(out).components) == {"vae_decoder"}
    assert [p.name for p in tmp_path.iterdir()] == ["engines"]
