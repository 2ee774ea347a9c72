"""`t2vrt generate --context-frames` (issue 15): a video longer than the engine's frame range, and one-line refusals."""

from __future__ import annotations

import pytest

from t2vrt.cli import main

SMALL = ["--steps", "1", "--height", "32", "--width", "32"]


def test_generate_a_long_video_in_windows(tiny_engines, tmp_path, capsys):
    out = tmp_path / "long"
    assert main(["generate", str(tiny_engines), "a robot dancing", "--frames", "40", "--context-frames", "8",
                 "--context-stride", "4", "--free-noise", "-o", str(out), *SMALL]) == 0
    assert len(list(out.glob("*.png"))) == 40
    assert "40 frames" in capsys.readouterr().out


@pytest.mark.parametrize("extra,message", [
    (["--frames", "40"], "num_frames=40 is outside this engine directory's range [1, 16]; re-export with `t2vrt export "
                         "{model} -o {dir} --overwrite --frames 1:8:40`, or denoise it in overlapping windows with "
                         "context_frames=8, context_stride=2 (CLI: --context-frames 8 --context-stride 2)"),
    (["--frames", "40", "--context-frames", "20"],
     "context_frames=20 is outside this engine directory's range [1, 16]"),
    (["--frames", "40", "--context-frames", "8", "--context-stride", "9"], "context_stride=9 must be in [1, 8]"),
    (["--frames", "8", "--free-noise"], "need context_frames"),
])
def test_bad_long_requests_get_one_line(tiny_engines, tiny_model, tmp_path, capsys, extra, message):
    out = tmp_path / "never.mp4"
    assert main(["generate", str(tiny_engines), "x", "-o", str(out), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(dir=tiny_engines, model=tiny_model) in err and not out.exists()


def test_upscale_takes_the_window_options(tiny_v2v_engines, tmp_path, capsys):
    src = tmp_path / "src"
    assert main(["generate", str(tiny_v2v_engines), "a robot", "--frames", "20", "--context-frames", "8", "-o",
                 str(src), *SMALL]) == 0
    out = tmp_path / "up"
    assert main(["upscale", str(tiny_v2v_engines), str(src), "a robot", "--steps", "2", "--context-frames", "8",
                 "--context-stride", "4", "-o", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 20
    assert main(["upscale", str(tiny_v2v_engines), str(src), "a robot", "-o", str(tmp_path / "no")]) == 2
    assert "--context-frames" in capsys.readouterr().err
