"""The GPU run's first command (benchmarks/gpu/headline.py) end to end on the CPU with the tiny model, as the
README's check before any GPU time: every phase runs and writes its JSON, trtexec's output is parsed."""

from __future__ import annotations

import json
import stat

from benchmarks.gpu import headline
from benchmarks.gpu.common import choose_preset, trtexec_commands

TRTEXEC_OUTPUT = ("[I] GPU Compute Time: min = 1.5 ms, max = 2.5 ms, mean = 2.0 ms, median = 1.9 ms, "
                  "percentile(90%) = 2.1 ms, percentile(95%) = 2.2 ms")


def fake_trtexec(folder):
    """A stand-in for TensorRT 8.6's trtexec: prints its "GPU Compute Time" summary line (the format of trtexec's
    reportPerformance in samples/common/sampleReporting.cpp) and records its arguments."""
    path = folder / "trtexec"
    path.write_text(f"#!/bin/sh\necho \"$@\" >> {folder / 'calls.txt'}\necho '{TRTEXEC_OUTPUT}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_headline_command_runs_on_the_cpu(tiny_model, tiny_engines, tmp_path):
    out, trt = tmp_path / "out", fake_trtexec(tmp_path)
    rc = headline.main([str(out), "--device", "cpu", "--preset", "tiny", "--precision", "fp32", "--frames", "2",
                        "--size", "32", "--steps", "2", "--runs", "1", "--budget", "300", "--threads", "1",
                        "--work", str(tmp_path / "w"),
                        "--model", str(tiny_model), "--engines", str(tiny_engines), "--trtexec", str(trt)])
    res = json.loads((out / "headline.json").read_text())
    assert rc == 0 and res["errors"] == {} and set(res["phase_s"]) == {"model", "main", "trtexec"}
    main = res["main"]
    assert [s["name"] for s in main["sides"]] == ["t2vrt", "diffusers"] and main["parity"]["ok"]
    assert main["sides"][0]["quality"]["psnr_db"] > 50 and main["flops"]["unet_step_gflop"] > 0
    step = res["trtexec"]["frames_2"]
    assert step["rc"] == 0 and step["gpu_compute"]["median_ms"] == 1.9
    call = (tmp_path / "calls.txt").read_text()
    assert "--fp16" in call and "--minShapes=sample:2x4x2x4x4" in call and "--maxShapes=sample:2x4x2x4x4" in call
    assert "end to end (s)" in (out / "summary.md").read_text()


def test_preset_auto_takes_the_real_size_only_when_it_fits():
    class Args:
        preset, trtexec = "auto", "trtexec"

    assert choose_preset(Args, 3000)["preset"] == "modelscope-1.7b"
    small = choose_preset(Args, 300)
    assert small["preset"] == "small" and "300 s left" in small["why"]


def test_trtexec_range_times_each_frame_count(tmp_path):
    dims = {"c": 4, "lat": 32, "length": 77, "hidden": 1024}
    cmds = trtexec_commands("trtexec", tmp_path / "u.onnx", tmp_path / "u.plan", dims, (8, 16, 64), 2, (16, 64))
    assert len(cmds) == 2 and "--optShapes=sample:2x4x16x32x32,encoder_hidden_states:2x77x1024" in cmds[0]
    assert cmds[1][1] == f"--loadEngine={tmp_path / 'u.plan'}" and "--shapes=sample:2x4x64x32x32" in cmds[1][2]
