"""The CLI side: each case one line on stderr and exit 2, checked before any model runs, nothing lost."""

from __future__ import annotations

import json
import shutil

import pytest

import t2vrt
from t2vrt.cli import main
from t2vrt.integrity import STAMP


@pytest.fixture()
def no_load(monkeypatch):
    """Fail the test if a pipeline is loaded: the check must come first."""
    from t2vrt.runtime import video2video

    monkeypatch.setattr(t2vrt.Pipeline, "load", classmethod(lambda *a, **k: pytest.fail("a pipeline was loaded")))
    monkeypatch.setattr(video2video.VideoToVideoPipeline, "load", classmethod(lambda *a, **k: pytest.fail("loaded")))


def one_line_error(capsys, argv, match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and match in err, err


def test_generate_never_replaces_a_directory(tiny_engines, tmp_path, capsys, no_load):
    before = sorted(p.name for p in tiny_engines.iterdir())
    for target in (str(tiny_engines), str(tiny_engines / "onnx" / ".."), str(tmp_path)):
        one_line_error(capsys, ["generate", str(tiny_engines), "a", "-o", target], "it is never replaced")
    assert sorted(p.name for p in tiny_engines.iterdir()) == before


@pytest.mark.parametrize("extra, match", [
    (["-o", "x.avi"], "supported outputs are .mp4, .gif"),
    (["--fps", "nan"], "fps=nan must be a finite number > 0"),
    (["--fps", "0"], "fps=0.0 must be a finite number > 0"),
])
def test_generate_output_checked_before_loading(tiny_engines, tmp_path, capsys, no_load, extra, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, ["generate", str(tiny_engines), "a", *extra], match)


def test_existing_file_without_suffix(tiny_engines, tmp_path, capsys, no_load):
    (tmp_path / "frames").write_text("keep")
    one_line_error(capsys, ["generate", str(tiny_engines), "a", "-o", str(tmp_path / "frames")], "is an existing file")
    assert (tmp_path / "frames").read_text() == "keep"


@pytest.mark.parametrize("extra, match", [
    (["--guidance", "nan"], "guidance_scale=nan must be a finite number"),
    (["--eta", "5"], "eta=5 must be in [0, 1]"),
    (["--height", "0"], "height=0 must be >= 1"),
    (["--seed", str(2**64)], "seed=18446744073709551616 must be in"),
])
def test_generate_numbers(tiny_engines, tmp_path, capsys, extra, match):
    one_line_error(capsys, ["generate", str(tiny_engines), "a", "-o", str(tmp_path / "v.mp4"), "--steps", "2", *extra],
                   match)
    assert not (tmp_path / "v.mp4").exists()


def test_upscale_and_chain_outputs(tiny_engines, tmp_path, capsys, no_load):
    one_line_error(capsys, ["upscale", str(tiny_engines), "in.mp4", "a", "-o", str(tmp_path)], "it is never replaced")
    same = str(tmp_path / "v.mp4")
    one_line_error(capsys, ["generate", str(tiny_engines), "a", "-o", same, "--upscale-with", str(tiny_engines),
                            "--keep-intermediate", same], "--keep-intermediate and -o are both")
    one_line_error(capsys, ["generate", str(tiny_engines), "a", "-o", same, "--upscale-with", str(tiny_engines),
                            "--upscale-guidance", "inf"], "must be a finite number")


def test_bench_json_checked_first(tiny_engines, tmp_path, capsys, monkeypatch):
    from t2vrt.bench import session

    monkeypatch.setattr(session, "run_bench", lambda *a: pytest.fail("the benchmark ran"))
    one_line_error(capsys, ["bench", str(tiny_engines), "--json", str(tmp_path)], "supported outputs are .json")
    one_line_error(capsys, ["bench", str(tiny_engines), "--json", str(tmp_path / "x" / ".." / "r.txt")],
                   "supported outputs are .json")


def test_verify_and_inspect(tiny_engines, tmp_path, capsys):
    copy = tmp_path / "engines"
    shutil.copytree(tiny_engines, copy, ignore=shutil.ignore_patterns(STAMP))
    assert main(["verify", str(copy)]) == 0
    assert "match the manifest" in capsys.readouterr().out
    graph = copy / "onnx" / "text_encoder" / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[-100] ^= 0xFF
    graph.write_bytes(bytes(data))
    one_line_error(capsys, ["verify", str(copy)], "model.onnx does not match its sha256")
    assert main(["inspect", str(copy)]) == 2
    assert "\n  problem    " in capsys.readouterr().out
    assert main(["inspect", str(copy), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 1 and "model.onnx does not match its sha256" in problems[0]


def test_export_refusals_on_the_cli(tiny_model, tmp_path, capsys):
    one_line_error(capsys, ["export", str(tiny_model), "-o", str(tmp_path / "e"), "--batch", "0"],
                   "must be MIN:OPT:MAX")
    one_line_error(capsys, ["export", str(tiny_model), "-o", str(tmp_path / "e"), "--ff-chunking", "100000"],
                   "--ff-chunking")
    assert not (tmp_path / "e").exists()
