"""`t2vrt batch` from the command line: bad lines on stderr, exit status, results.jsonl, rerun skips."""

import json

from t2vrt.cli import main


def test_batch_command(tiny_engines, tmp_path, capsys):
    prompts, out = tmp_path / "p.jsonl", tmp_path / "out"
    small = {"num_frames": 2, "height": 32, "width": 32}
    prompts.write_text("\n".join(json.dumps(r) for r in [{"prompt": "a cat", **small},
                                                         {"prompt": "x", **small, "width": 31}]) + "\n")
    assert main(["batch", str(tiny_engines), str(prompts), "-o", str(out), "--steps", "2", "--seed", "5",
                 "--json"]) == 1
    cap = capsys.readouterr()
    assert "p.jsonl:2: width=31 is not a multiple of" in cap.err
    assert json.loads(cap.out.strip().splitlines()[-1])["counts"] == {"ok": 1, "invalid": 1}
    records = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in records] == [(1, "ok"), (2, "invalid")] and records[0]["seed"] == 5
    prompts.write_text(json.dumps({"prompt": "a cat", **small}) + "\n")
    assert main(["batch", str(tiny_engines), str(prompts), "-o", str(out), "--steps", "2", "--seed", "5"]) == 0
    assert "1 skipped" in capsys.readouterr().out
    records = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in records] == [(1, "ok"), (2, "invalid")]  # the rewritten file: kept
