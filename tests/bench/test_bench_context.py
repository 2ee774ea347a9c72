"""`t2vrt bench` on a long request in context windows (issue 15): UNet calls per the formula, and the seam metric."""

from __future__ import annotations

import json

from t2vrt.cli import main
from t2vrt.runtime.context import unet_calls_per_evaluation

LONG = ["--runs", "1", "--warmup", "0", "--frames", "40", "--steps", "1", "--height", "32", "--width", "32",
        "--context-frames", "8", "--context-stride", "4"]


def test_bench_reports_seams_for_a_long_request(tiny_engines, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_engines), "--json", str(out), *LONG]) == 0
    run = json.loads(out.read_text())["ours"]["runs"][0]
    assert run["unet_calls"] == unet_calls_per_evaluation(40, 8, 4) == 9
    seams = run["seams"]
    assert seams["boundary_pairs"] + seams["inside_pairs"] == 39 and seams["boundary"] > 0 and seams["inside"] > 0
    assert "seams: mean |frame t+1 - frame t|" in capsys.readouterr().out


def test_bench_refuses_windows_against_diffusers(tiny_engines, tiny_model, capsys):
    assert main(["bench", str(tiny_engines), "--diffusers", str(tiny_model), *LONG]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--context-frames has no counterpart in diffusers" in err
