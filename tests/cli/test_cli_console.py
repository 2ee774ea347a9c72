"""The CLI for people and programs: -v/-q on every command, help on every option, logs through the bars,
inspect in plain words (and --json), --json results, checks before any model runs, --providers and --threads."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from t2vrt.cli import build_parser, main


def subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help_and_verbosity_goes_anywhere(tiny_engines):
    parser = build_parser()
    missing = [f"{name} {a.dest}" for name, p in subparsers(parser).items() for a in p._actions if not a.help]
    assert missing == []
    d = str(tiny_engines)
    assert parser.parse_args(["inspect", d, "-v"]).verbosity == 1
    assert parser.parse_args(["-q", "inspect", d]).verbosity == -1
    assert parser.parse_args(["inspect", d]).verbosity == 0


def test_inspect_for_people_and_programs(tiny_engines, capsys):
    assert main(["inspect", str(tiny_engines)]) == 0
    out = capsys.readouterr().out
    assert "native     256x256 (width x height), 16 frames" in out and "scheduler  DDIMScheduler" in out
    assert ("profile    batch 1:1:2, frames 1:8:16, height 32:64:128, width 32:64:128, decode_chunk 1:4:8 "
            "(MIN:OPT:MAX)") in out
    assert "integrity  no problems found" in out
    assert "ModelDims(" not in out and "{" not in out and max(map(len, out.splitlines())) < 160
    assert main(["inspect", str(tiny_engines), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["native_size"] == [256, 256] and s["profile"]["frames"] == [1, 8, 16] and s["clip_skip"] is True
    assert s["files"]["unet fp32"]["bytes"] > 0 and s["manifest"]["format"] == "t2vrt-engine-dir"
    assert s["problems"] == []


def test_generate_checks_the_output_first_and_reports_json(tiny_engines, tmp_path, capsys, monkeypatch):
    import t2vrt

    real = t2vrt.Pipeline.load
    monkeypatch.setattr(t2vrt.Pipeline, "load", lambda *a, **k: pytest.fail("a model loaded before the check"))
    assert main(["generate", str(tiny_engines), "a cat", "-o", str(tmp_path / "v.avi")]) == 2
    assert "cannot write 'v.avi'" in capsys.readouterr().err
    monkeypatch.setattr(t2vrt.Pipeline, "load", real)
    argv = ["generate", str(tiny_engines), "a cat", "--frames", "2", "--height", "32", "--width", "32", "--steps", "1",
            "--threads", "1", "--providers", "CPUExecutionProvider", "-o", str(tmp_path / "v.gif"), "--json", "-q"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["frames"] == 2 and record["width"] == 32 and (tmp_path / "v.gif").is_file()
    assert captured.err == ""  # -q: no INFO lines, no bars


def test_threads_and_providers_refused_in_one_line(tiny_engines, tmp_path, capsys):
    base = ["generate", str(tiny_engines), "a cat", "--frames", "2", "--height", "32", "--width", "32", "--steps", "1",
            "-o", str(tmp_path / "v.gif")]
    assert main(base + ["--threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --threads 0 must be at least 1 (omit it for ONNX Runtime's choice)"
    assert main(base + ["--providers", "NoSuchExecutionProvider", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NoSuchExecutionProvider" in err[0] and "available providers are" in err[0]


def test_log_lines_go_through_tqdm(monkeypatch):
    from tqdm.auto import tqdm

    from t2vrt.cli.console import console

    written = []
    monkeypatch.setattr(tqdm, "write", staticmethod(lambda s, file=None, **k: written.append(s)))
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a plain `t2vrt` process (pytest has its own)
    with console(0):
        logging.getLogger("t2vrt.test").info("hello from a stage")
    assert written == ["INFO t2vrt.test: hello from a stage"]


def test_keep_model_refusals_before_anything_is_built(tiny_engines, tmp_path, capsys):
    assert main(["export", "tiny", "--keep-model", str(tmp_path / "m"), "-o", str(tmp_path / "e")]) == 2
    assert "--keep-model keeps the folder --random-weights builds" in capsys.readouterr().err
    assert main(["export", "tiny", "--random-weights", "--keep-model", str(tmp_path), "-o", str(tmp_path / "e")]) == 2
    assert "exists; give a new folder (nothing is replaced)" in capsys.readouterr().err
    assert main(["export", "tiny", "--random-weights", "--keep-model", str(tmp_path / "m"), "-o",
                 str(tiny_engines)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and not (tmp_path / "m").exists()


@pytest.mark.slow
def test_keep_model_keeps_a_diffusers_folder(tmp_path):
    assert main(["export", "tiny", "--random-weights", "--keep-model", str(tmp_path / "m"), "-o", str(tmp_path / "e"),
                 "--frames", "1:4:8", "--height", "32:32:64", "--width", "32:32:64", "--no-validate",
                 "--no-ort-fusion", "--components", "text_encoder"]) == 0  # the model is whole; one graph is enough
    assert (tmp_path / "m" / "model_index.json").is_file() and (tmp_path / "m" / "unet").is_dir()
    assert (tmp_path / "e" / "manifest.json").is_file()


def test_chained_generate_reports_json(tiny_v2v_engines, tmp_path, capsys):
    d = str(tiny_v2v_engines)
    argv = ["generate", d, "a cat", "--frames", "2", "--height", "32", "--width", "32", "--steps", "2",
            "--upscale-with", d,
            "--upscale-height", "48", "--upscale-width", "32", "-o", str(tmp_path / "v.gif"), "--json", "-q"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["height"], record["width"], record["from_height"], record["from_width"]) == (48, 32, 32, 32)
