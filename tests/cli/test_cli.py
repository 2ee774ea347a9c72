import subprocess
import sys

import pytest

from t2vrt.cli import main
from t2vrt.runtime.media.video import read_video


@pytest.mark.slow  # its own export through the CLI
def test_export_generate_inspect(tiny_model, tiny_export, tmp_path, capsys):
    out = tmp_path / "engines"
    assert main(["export", str(tiny_model), "-o", str(out), "--frames", "2:4:8", "--height", "32:32:64", "--width",
                 "32:48:64", "--no-ort-fusion"]) == 0  # the fused graph: the session export's, inspected below
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validated fp32: worst relative L2" in text and "frames 2:4:8" in text
    assert "CPU-fused" not in text and not (out / "onnx" / "unet" / "model_ort_cpu.onnx").exists()
    assert main(["inspect", str(tiny_export)]) == 0
    text = capsys.readouterr().out
    assert "validated fp32 CPU-fused: worst relative L2" in text and "ONNX Runtime CPU only, fused " in text
    video = tmp_path / "v.gif"
    assert main(["generate", str(out), "a robot dancing", "--frames", "3", "--height", "32", "--width", "64", "--steps",
                 "2", "-o", str(video)]) == 0
    assert read_video(video).shape == (3, 32, 64, 3)  # the frames asked for, at the size asked for


def test_export_command_records_its_options(tiny_model, tmp_path, capsys):
    """The export command's ranges and components reach the manifest (one small component: seconds, not slow)."""
    from t2vrt.manifest import load_manifest

    out = tmp_path / "engines"
    argv = ["export", str(tiny_model), "-o", str(out), "--components", "text_encoder", "--frames", "2:4:8"]
    assert main(argv + ["--height", "32:32:64", "--width", "32:48:64", "--batch", "3"]) == 0
    m = load_manifest(out)
    assert set(m.components) == {"text_encoder"} and m.profile.batch == (1, 1, 3)
    assert (m.profile.frames, m.profile.height, m.profile.width) == ((2, 4, 8), (32, 32, 64), (32, 48, 64))
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validated fp32: worst relative L2" in text and "frames 2:4:8" in text


def test_help_shows_defaults():
    res = subprocess.run([sys.executable, "-m", "t2vrt.cli", "generate", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--steps STEPS" in res.stdout and "(default: 50)" in res.stdout and "(default: None)" not in res.stdout


def test_build_exits_zero_on_success(monkeypatch, capsys):
    """`t2vrt build` returns its results to Python callers; the command itself must still exit 0."""
    import t2vrt.engines.tensorrt.build as tb

    monkeypatch.setattr(tb, "build_engines", lambda d,
                        o: {"unet": {"cached": True, "seconds": 0.0, "path": "engines/unet/k.plan"}})
    assert main(["build", "DIR", "--components", "unet"]) == 0
    assert "unet" in capsys.readouterr().out
