"""`t2vrt batch` never forgets: records keyed by the request; outputs stay inside -o; bad lines are one record each."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from t2vrt.cli import main
from t2vrt.serve.batch import load_results, plan
from t2vrt.serve.request import VideoRequest

SMALL = {"num_frames": 2, "height": 32, "width": 32}


def _records(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]


def _summary(capsys) -> dict:
    cap = capsys.readouterr()
    return json.loads(cap.out.strip().splitlines()[-1])["counts"] | {"_err": cap.err}


def test_two_prompt_files_then_other_flags_lose_no_record(tiny_engines, tmp_path, capsys):
    out, a, b = tmp_path / "out", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"prompt": "a red cube", **SMALL}) + "\n" + json.dumps({"prompt": "a cat", **SMALL}) + "\n")
    b.write_text(json.dumps({"prompt": "a blue ball", **SMALL}) + "\n")
    run = lambda p, *flags: main(["batch", str(tiny_engines), str(p), "-o", str(out), "--json", *flags])  # noqa: E731
    assert run(a, "--steps", "1") == 0 and _summary(capsys)["ok"] == 2
    assert run(b, "--steps", "1") == 0 and _summary(capsys)["ok"] == 1
    first = _records(out)
    assert sorted((Path(r["prompts"]).name, r["line"], r["status"]) for r in first) == [
        ("a.jsonl", 1, "ok"), ("a.jsonl", 2, "ok"), ("b.jsonl", 1, "ok")]

    assert run(a, "--steps", "1") == 0 and _summary(capsys) == {"skipped": 2, "_err": ""}  # rerun: nothing to do
    assert run(a, "--steps", "2") == 1  # other flags: the videos there are another request's
    s = _summary(capsys)
    assert s["exists"] == 2 and "invalid" not in s and "already exists (made by line 1 of" in s["_err"]
    assert _records(out) == first  # every record kept, none rewritten

    videos = {r["output"]: (out / r["output"]).stat().st_mtime_ns for r in first}
    assert run(a, "--steps", "2", "--overwrite") == 0 and _summary(capsys)["ok"] == 2
    after = {(Path(r["prompts"]).name, r["line"]): r for r in _records(out)}
    assert len(after) == 3 and after[("b.jsonl", 1)] == next(r for r in first if r["prompts"].endswith("b.jsonl"))
    a1 = after[("a.jsonl", 1)]
    assert a1["status"] == "ok" and (out / a1["output"]).stat().st_mtime_ns != videos[a1["output"]]


def test_a_symlink_leading_out_of_the_folder_is_refused(tiny_engines, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "linkdir").symlink_to(outside, target_is_directory=True)
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "x", **SMALL, "output": "linkdir/v.mp4"}) + "\n")
    (item,) = plan(tiny_engines, p, out)
    assert "leads outside the output folder through a symlink" in item.error
    assert main(["batch", str(tiny_engines), str(p), "-o", str(out), "--steps", "1"]) == 1
    assert list(outside.iterdir()) == []


def test_bad_lines_are_one_record_each_and_the_rest_render(tiny_engines, tmp_path, capsys):
    p, out = tmp_path / "p.jsonl", tmp_path / "out"
    good = json.dumps({"prompt": "a cat", **SMALL}).encode()
    deep = b'{"prompt": "x", "seed": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    p.write_bytes(b"\n".join([b'{"prompt": "caf\xff"}', deep, good, b'{"prompt": "a\\ud800cat"}']) + b"\n")
    assert main(["batch", str(tiny_engines), str(p), "-o", str(out), "--steps", "1", "--json"]) == 1
    s = _summary(capsys)
    assert s["ok"] == 1 and s["invalid"] == 3
    assert f"{p}:1: line 1 is not UTF-8 (byte 0xff at column 16)" in s["_err"]
    assert f"{p}:2: the line is too deeply nested" in s["_err"]
    assert f"{p}:4: prompt: a lone surrogate U+D800 at character 2" in s["_err"]
    assert "Traceback" not in s["_err"]


def test_defaults_are_generates(tiny_engines, tmp_path, caplog):
    """steps 50; the native size (256 for the tiny model) is outside this directory's range [32, 128]: the
    profile's opt size, and a line says so."""
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "a cat"}) + "\n")
    with caplog.at_level(logging.WARNING):
        (item,) = plan(tiny_engines, p, tmp_path / "out")
    assert item.request.num_inference_steps == 50 == VideoRequest().num_inference_steps
    assert (item.request.height, item.request.width) == (64, 64)
    assert "native size 256x256 is outside this engine directory's range" in caplog.text
    assert "opt size 64x64" in caplog.text


def test_leftovers_of_dead_writers_are_removed_by_the_next_run(tiny_engines, tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout
    stale = [out / f".v.partial-{int(dead)}-1.mp4", out / "sub" / f".w.partial-{int(dead)}-2.gif",
             out / f".results.jsonl.partial-{int(dead)}"]
    live = out / f".x.partial-{os.getpid()}-3.mp4"
    for f in [*stale, live]:
        f.write_bytes(b"half")
    (out / f".frames.partial-{int(dead)}-4").mkdir()
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "a cat", **SMALL}) + "\n")
    assert main(["batch", str(tiny_engines), str(p), "-o", str(out), "--steps", "1"]) == 0
    assert not any(f.exists() for f in stale) and not (out / f".frames.partial-{int(dead)}-4").exists()
    assert live.exists()  # this process is alive: not a leftover


def test_records_of_an_older_version_are_kept(tiny_engines, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps({"line": 1, "status": "ok", "output": "old.mp4"}) + "\n")
    assert load_results(out) == {"line:1": {"line": 1, "status": "ok", "output": "old.mp4", "key": "line:1"}}
