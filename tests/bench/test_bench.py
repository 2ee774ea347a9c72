"""`t2vrt bench` on the tiny model: the JSON's structure, and a frame check that fails when the work differs."""

from __future__ import annotations

import json

import numpy as np
import psutil
import pytest

from t2vrt.bench.report import compare_frames
from t2vrt.cli import main

ARGS = ["--runs", "2", "--warmup", "1", "--frames", "3", "--height", "48", "--width", "64", "--steps", "3",
        "--threads", "1"]
STAGES = ("total_s", "text_encoder_s", "unet_per_step_s", "glue_per_step_s", "vae_per_frame_s", "outside_engines_pct",
          "peak_rss_mb")


def check_run(r: dict, steps: int, frames: int) -> None:
    """One run's numbers add up: every stage was timed, the stages fit in the total, the per-step and per-frame
    figures divide what was measured, and the memory figures are in MB of this process."""
    engines = r["text_encoder_s"] + r["unet_s"] + r["vae_decode_s"]
    assert r["unet_calls"] == steps and min(r["text_encoder_s"], r["unet_s"], r["vae_decode_s"]) > 0
    assert r["total_s"] >= engines and r["outside_engines_s"] == pytest.approx(r["total_s"] - engines)
    assert r["outside_engines_pct"] == pytest.approx(100 * r["outside_engines_s"] / r["total_s"])
    assert r["unet_per_step_s"] * steps == pytest.approx(r["unet_s"])
    assert r["vae_per_frame_s"] * frames == pytest.approx(r["vae_decode_s"])
    assert 0 <= r["glue_per_step_s"] * steps < r["total_s"] - r["unet_s"]
    ram_mb = psutil.virtual_memory().total / 2**20
    assert 50 < r["rss_before_mb"] < ram_mb and 50 < r["peak_rss_mb"] < ram_mb  # MB, not bytes or GB


def test_bench_against_diffusers(tiny_engines, tiny_model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_engines), "--diffusers", str(tiny_model), "--json", str(out), *ARGS]) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "t2vrt-bench/1"
    assert data["request"]["num_frames"] == 3 and data["request"]["height"] == 48
    for side in ("ours", "diffusers"):
        runs = data[side]["runs"]
        assert len(runs) == 2 and len(data[side]["warmup"]) == 1
        for r in runs:
            check_run(r, steps=3, frames=3)
        for key in STAGES:
            s, values = data[side]["summary"][key], [r[key] for r in runs]
            assert (s["min"], s["max"]) == (min(values), max(values))
            assert s["median"] == pytest.approx(float(np.median(values)))
        # what loading added stays inside the peak
        assert data[side]["load_rss_mb"] < max(r["peak_rss_mb"] for r in runs)
    assert len(data["speedup"]["total_s"]["pairs"]) == 2
    assert data["parity"]["ok"] and data["parity"]["pairs"] == 2 and data["parity"]["max_abs"] < 1 / 255
    p = data["parity"]
    assert p["psnr_db"] > 50 and p["ssim"] > 0.999 and p["latent_rel_l2"] < 1e-3
    assert (p["nan_frames"], p["black_frames"], p["reference_nan_frames"]) == (0, 0, 0)
    m = data["machine"]
    assert m["cores_logical"] >= 1 and "onnxruntime" in m["versions"] and "diffusers" in m["versions"]
    assert "CPUExecutionProvider" in data["config"]["backends"]["t2vrt"]
    assert data["config"]["backends"]["t2vrt"].endswith(", UNet graph model_ort_cpu.onnx")  # the session export's
    text = capsys.readouterr().out
    assert "| UNet per step (s) |" in text and "frames: same within" in text and "quality (worst pair): PSNR " in text


def test_bench_catches_different_work(tiny_engines, tmp_path, capsys):
    """A diffusers folder with other weights than the engines' does other work: the frame check must say so."""
    from t2vrt.export.random_model import build_model

    other = build_model(tmp_path / "other", "tiny", seed=1)
    out = tmp_path / "bench.json"
    args = ["--diffusers", str(other), "--json", str(out), *ARGS[:2], "--warmup", "0", *ARGS[6:]]
    assert main(["bench", str(tiny_engines), *args]) == 2
    parity = json.loads(out.read_text())["parity"]
    assert not parity["ok"] and parity["max_abs"] > 10 / 255
    captured = capsys.readouterr()
    assert "DIFFERENT" in captured.out and captured.err.strip().endswith(
        "error: the two pipelines produced different frames, so their times do not compare the same work")


def test_bench_ours_alone(tiny_engines, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_engines), "--json", str(out), "--runs", "1", "--warmup", "0", "--frames", "2",
                 "--steps", "2", "--height", "32", "--width", "32"]) == 0
    data = json.loads(out.read_text())
    assert data["diffusers"] is None and data["parity"] is None and len(data["ours"]["runs"]) == 1
    assert data["speedup"] is None
    check_run(data["ours"]["runs"][0], steps=2, frames=2)


def test_compare_frames():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.1, 0.9, (1, 2, 8, 8, 3))
    assert compare_frames(ref + 0.5 / 255, ref)["ok"]
    assert not compare_frames(ref + 2 / 255, ref)["ok"]
    assert not compare_frames(ref[:, :1], ref)["ok"]
    assert compare_frames(np.ones_like(ref), np.ones_like(ref))["saturated_fraction"] == pytest.approx(1.0)


def test_fp16_against_fp32_compares_a_second_run_of_ours(tiny_engines):
    """The fp16-vs-fp32 numbers: our fp16 run's frames and latents against a second run of ours in fp32. Equal
    frames would mean the fp16 side was not what was measured; the bounds are the fp16 pipeline test's
    (tests/runtime/test_fp16_pipeline.py: latents within 7e-3 relative L2, frames within 1e-2)."""
    from t2vrt.bench.runs import BenchRequest, OursRun
    from t2vrt.bench.session import BenchConfig, fp16_against_fp32

    request = BenchRequest(num_frames=2, height=32, width=32, num_inference_steps=2)
    ours = OursRun(tiny_engines, request, precision="fp16")
    _, frames = ours.run()
    q = fp16_against_fp32(BenchConfig(engines=str(tiny_engines)), request, ours, frames)
    assert 1e-4 < q["latent_rel_l2"] < 7e-3
    assert 40 < q["psnr_db"] < float("inf") and 0.99 < q["ssim"] <= 1.0
