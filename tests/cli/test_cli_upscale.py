"""`t2vrt upscale` and `t2vrt generate --upscale-with`: outputs, the chain equal to its two steps, and errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from t2vrt.cli import main
from t2vrt.runtime.media.video import read_fps, read_video, write_video
from t2vrt.runtime.pipeline import Pipeline

FAST = ["--steps", "2", "--seed", "1"]


def waves(f=3, h=32, w=32):
    t, y, x, c = np.ogrid[:f, :h, :w, :3]
    return (127.5 + 60 * np.sin(0.1 * x + 0.15 * (c + 1) * y + 0.4 * t)).round().astype(np.uint8)


@pytest.fixture()
def no_backend(monkeypatch):
    monkeypatch.setattr(Pipeline, "runner", lambda self, name: pytest.fail(f"the {name} backend ran before the check"))


def test_upscale_resizes_and_keeps_fps(tiny_v2v_engines, tmp_path, capsys):
    write_video(waves(), tmp_path / "in.mp4", fps=12)
    out = tmp_path / "out.mp4"
    argv = ["upscale", str(tiny_v2v_engines), str(tmp_path / "in.mp4"), "a robot dancing", "-o", str(out),
            "--strength", "0.5", "--height", "48", "--width", "64", *FAST]
    assert main(argv) == 0
    assert read_video(out).shape == (3, 48, 64, 3) and read_fps(out) == 12
    assert "(3 frames, 64x48)" in capsys.readouterr().out


def test_chain_equals_generate_then_upscale(tiny_v2v_engines, tmp_path):
    """The chain hands the first stage's uint8 frames over in memory: the same as a lossless file between two
    commands, with the upscale stage's defaults (strength 0.6, guidance 15) equal to `upscale`'s."""
    d, prompt = str(tiny_v2v_engines), "fireworks in the sky"
    first = ["--frames", "3", "--height", "32", "--width", "32", *FAST]
    assert main(["generate", d, prompt, *first, "--upscale-with", d, "--upscale-height", "48", "--upscale-width", "64",
                 "--keep-intermediate", str(tmp_path / "mid"), "-o", str(tmp_path / "chained")]) == 0
    assert main(["upscale", d, str(tmp_path / "mid"), prompt, "--height", "48", "--width", "64", *FAST,
                 "-o", str(tmp_path / "two-step")]) == 0
    mid, chained = read_video(tmp_path / "mid"), read_video(tmp_path / "chained")
    assert mid.shape == (3, 32, 32, 3) and chained.shape == (3, 48, 64, 3)
    np.testing.assert_array_equal(chained, read_video(tmp_path / "two-step"))


def test_chain_writes_no_intermediate_unless_asked(tiny_v2v_engines, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = str(tiny_v2v_engines)
    assert main(["generate", d, "a cat", "--frames", "2", "--height", "32", "--width", "32", *FAST,
                 "--upscale-with", d, "-o", "final.gif"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.gif"]
    assert read_video(tmp_path / "final.gif").shape == (2, 32, 32, 3)  # upscale size defaults to the first stage's


def one_line_error(code, capsys, start):
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith(start), err
    return err


def test_upscale_errors(tiny_v2v_engines, tiny_engines_without_encoder, tmp_path, capsys, no_backend):
    d, out = str(tiny_v2v_engines), str(tmp_path / "out.mp4")
    code = main(["upscale", d, str(tmp_path / "missing.mp4"), "a cat", "-o", out])
    one_line_error(code, capsys, "error: input video '")
    write_video(waves(), tmp_path / "in.gif")
    code = main(["upscale", d, str(tmp_path / "in.gif"), "a cat", "-o", out, "--strength", "1.5"])
    one_line_error(code, capsys, "error: strength=1.5 is outside (0, 1]")
    code = main(["upscale", d, str(tmp_path / "in.gif"), "a cat", "-o", out, "--width", "40"])
    one_line_error(code, capsys, "error: width=40 is not a multiple of 16")
    code = main(["upscale", d, str(tmp_path / "in.gif"), "a cat", "-o", str(tmp_path / "out.avi")])
    one_line_error(code, capsys, "error: cannot write 'out.avi': supported outputs are")
    err = one_line_error(main(["upscale", str(tiny_engines_without_encoder), str(tmp_path / "in.gif"), "a cat", "-o",
                               out]), capsys, "error: ")
    assert err.endswith(f"-o {tiny_engines_without_encoder} --components vae_encoder --add`")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gif"]


@pytest.mark.parametrize(
    "extra,start",
    [
        (["--upscale-strength", "0"], "error: strength=0.0 is outside (0, 1]"),
        (["--upscale-width", "40"], "error: width=40 is not a multiple of 16"),
        (["--upscale-height", "256"], "error: height=256 is outside this engine directory's range [32, 128]"),
        (["--keep-intermediate", "mid.avi"], "error: cannot write 'mid.avi'"),
    ],
)
def test_chain_checks_the_second_stage_first(tiny_v2v_engines, tmp_path, capsys, no_backend, extra, start):
    d = str(tiny_v2v_engines)
    argv = ["generate", d, "a cat", "--frames", "2", "--height", "32", "--width", "32", "--upscale-with", d,
            "-o", str(tmp_path / "o.mp4"), *extra]
    one_line_error(main(argv), capsys, start)
    assert list(tmp_path.iterdir()) == []


def test_chain_checks_the_first_stage_first(tiny_v2v_engines, tiny_model, tmp_path, capsys, no_backend):
    """The model's native size (256 for the tiny model) is outside this profile: say so for the first stage."""
    d = str(tiny_v2v_engines)
    code = main(["generate", d, "a cat", "--frames", "2", "--upscale-with", d, "--upscale-height", "32", "-o",
                 str(tmp_path / "o.mp4")])
    err = one_line_error(code, capsys, "error: height=256 is outside this engine directory's range [32, 128]; "
                         f"re-export with `t2vrt export {tiny_model} -o ")
    assert err.endswith(f"{d} --overwrite --height 32:64:256`")


def test_chain_needs_a_vae_encoder_and_a_second_stage(tiny_engines_without_encoder, tmp_path, capsys, no_backend):
    d = str(tiny_engines_without_encoder)
    err = one_line_error(main(["generate", d, "a cat", "--upscale-with", d, "-o", str(tmp_path / "o.mp4")]), capsys,
                         "error: ")
    assert "has no vae_encoder" in err and err.endswith(f"-o {d} --components vae_encoder --add`")
    code = main(["generate", d, "a cat", "--keep-intermediate", str(tmp_path / "m.mp4"), "-o", str(tmp_path / "o.mp4")])
    one_line_error(code, capsys, "error: --keep-intermediate needs --upscale-with DIR")
    assert list(tmp_path.iterdir()) == []


def test_help_shows_upscale_options():
    res = subprocess.run([sys.executable, "-m", "t2vrt.cli", "upscale", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--strength STRENGTH" in res.stdout and "(default: 0.6)" in res.stdout
    assert "(default: None)" not in res.stdout
    res = subprocess.run([sys.executable, "-m", "t2vrt.cli", "generate", "--help"], capture_output=True, text=True)
    assert "--upscale-with DIR" in res.stdout and "--keep-intermediate PATH" in res.stdout
