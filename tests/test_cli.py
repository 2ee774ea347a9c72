import subprocess
import sys

from t2vrt.cli import main


def test_export_generate_inspect(tiny_model, tmp_path, capsys):
    out = tmp_path / "engines"
    assert main(["export", str(tiny_model), "-o", str(out), "--frames", "2:4:8", "--height", "32:32:64", "--width", "32:48:64"]) == 0
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validated fp32: worst relative L2" in text and "frames 2:4:8" in text
    video = tmp_path / "v.gif"
    assert main(["generate", str(out), "a robot dancing", "--frames", "3", "--height", "32", "--width", "64", "--steps", "2", "-o", str(video)]) == 0
    assert video.is_file()


def test_help_shows_defaults():
    res = subprocess.run([sys.executable, "-m", "t2vrt.cli", "generate", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--steps STEPS" in res.stdout and "(default: 50)" in res.stdout and "(default: None)" not in res.stdout


def test_build_exits_zero_on_success(monkeypatch, capsys):
    """`t2vrt build` returns its results to Python callers; the command itself must still exit 0."""
    import t2vrt.engines.tensorrt_build as tb

    monkeypatch.setattr(tb, "build_engines", lambda d, o: {"unet": {"cached": True, "seconds": 0.0, "path": "engines/unet/k.plan"}})
    assert main(["build", "DIR", "--components", "unet"]) == 0
    assert "unet" in capsys.readouterr().out
