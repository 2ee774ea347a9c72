"""backend="openvino" end to end on the tiny model, against the onnxruntime backend in fp32: text-to-video, a batch
of prompts, context windows, video-to-video, low-memory mode, `t2vrt generate` and `t2vrt batch`, the NaN guard,
and what ``auto`` picks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from t2vrt.engines import openvino as ovb
from t2vrt.errors import EngineError, NumericalError
from t2vrt.runtime.pipeline import Pipeline

pytestmark = pytest.mark.skipif(bool(ovb.openvino_missing()), reason=ovb.openvino_missing() or "openvino is installed")
needs_bf16 = pytest.mark.skipif(not ovb.cpu_bf16(), reason="this CPU has no AVX512_BF16 or AMX: bf16 is refused here")

CALL = {"num_frames": 3, "height": 32, "width": 48, "num_inference_steps": 3, "seed": 4, "progress": False}
FP32_TOL = 1e-4  # relative L2 of frames, OpenVINO fp32 against ONNX Runtime fp32
BF16_PSNR = 30.0  # dB of frames, OpenVINO bf16 against ONNX Runtime fp32 (measured on the tiny model: see below)


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """One compiled-model cache for this module, not the user's: a later test's pipeline imports what an earlier one
    compiled, as a user's second process does (test_openvino.py checks the cache itself, per test)."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("T2VRT_OPENVINO_CACHE", str(tmp_path_factory.mktemp("ov-cache")))
        yield


@pytest.fixture(scope="module")
def ort(tiny_v2v_engines):
    return Pipeline.load(tiny_v2v_engines, backend="onnxruntime")


@pytest.fixture(scope="module")
def ov32(tiny_v2v_engines):
    return Pipeline.load(tiny_v2v_engines, backend="openvino")


def rel_l2(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_text_to_video_fp32_matches_onnxruntime(ort, ov32):
    assert ov32.backend == "openvino" and ov32.precision is None
    prompts = ["a red cube", "a blue ball"]  # a batch of two, with guidance: UNet batch 4
    ref, out = ort(prompts, **CALL), ov32(prompts, **CALL)
    assert out.images.shape == ref.images.shape == (2, 3, 32, 48, 3)
    assert rel_l2(out.latents, ref.latents) < FP32_TOL and rel_l2(out.images, ref.images) < FP32_TOL
    assert ov32.runner("unet").compiles == 1
    ov32(prompts, **{**CALL, "seed": 5})  # the same shapes: nothing compiles again
    assert ov32.runner("unet").compiles == 1


def test_context_windows_fp32_match_onnxruntime(ort, ov32):
    kw = {**CALL, "num_frames": 7, "context_frames": 4, "context_stride": 2}
    ref, out = ort("a red cube", **kw), ov32("a red cube", **kw)
    assert rel_l2(out.images, ref.images) < FP32_TOL


@needs_bf16
def test_text_to_video_bf16_within_the_measured_tolerance(tiny_engines, ort):
    pipe = Pipeline.load(tiny_engines, backend="openvino", precision="bf16")
    ref, out = ort("a red cube", **CALL), pipe("a red cube", **CALL)
    assert np.isfinite(out.images).all()
    assert BF16_PSNR < psnr(out.images, ref.images) < 100  # bf16 really ran, and stayed close


def test_video_to_video_fp32_matches_onnxruntime(tiny_v2v_engines):
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    video = np.random.default_rng(0).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    kw = {"strength": 0.6, "num_inference_steps": 4, "seed": 2, "progress": False}
    ref = VideoToVideoPipeline.load(tiny_v2v_engines, backend="onnxruntime")("a cat", video, **kw)
    out = VideoToVideoPipeline.load(tiny_v2v_engines, backend="openvino", low_memory=True)("a cat", video, **kw)
    assert rel_l2(out.images, ref.images) < FP32_TOL


def test_low_memory_mode_closes_each_stage(tiny_engines):
    pipe = Pipeline.load(tiny_engines, backend="openvino", low_memory=True)
    pipe("a red cube", **CALL)
    assert not pipe._runners or all(r.compiled is not None for r in pipe._runners.values())
    opened = list(pipe._runners.values())
    pipe.release("vae_decoder")
    assert all(r.compiled is None for r in opened)


def test_generate_and_batch_commands(tiny_engines, tmp_path):
    from t2vrt.cli import main

    video = tmp_path / "a.mp4"
    assert main(["generate", str(tiny_engines), "a red cube", "--backend", "openvino", "--frames", "3", "--height",
                 "32", "--width", "48", "--steps", "2", "-o", str(video)]) == 0
    assert video.stat().st_size > 0
    prompts, out = tmp_path / "p.jsonl", tmp_path / "out"
    prompts.write_text(json.dumps({"prompt": "a cat", "num_frames": 2, "height": 32, "width": 32}) + "\n")
    assert main(["batch", str(tiny_engines), str(prompts), "-o", str(out), "--steps", "2",
                 "--backend", "openvino"]) == 0
    assert json.loads((out / "results.jsonl").read_text().splitlines()[0])["status"] == "ok"


def test_nan_guard_names_the_component_and_backend(tiny_engines, monkeypatch):
    pipe = Pipeline.load(tiny_engines, backend="openvino")
    unet = pipe.runner("unet")
    monkeypatch.setattr(unet, "infer", lambda feed: {"noise_pred": np.full(feed["sample"].shape, np.nan, np.float32)})
    with pytest.raises(NumericalError, match=r"unet output became NaN .*at step 1 of 3 \(fp32 on openvino\)"):
        pipe("a red cube", **CALL)


def test_providers_are_refused_in_one_line(tiny_engines):
    with pytest.raises(EngineError, match="providers=.* are ONNX Runtime execution providers"):
        Pipeline.load(tiny_engines, backend="openvino", providers=["CPUExecutionProvider"])


@needs_bf16
def test_auto_picks_openvino_for_bf16_and_says_why(tiny_engines, caplog):
    with caplog.at_level(logging.INFO, logger="t2vrt"):
        pipe = Pipeline.load(tiny_engines, precision="bf16")
    assert pipe.backend == "openvino"
    assert "backend: openvino on the CPU in bf16" in caplog.text


def test_auto_fp32_follows_the_measurement(tiny_engines, caplog):
    from t2vrt.engines import openvino_backend

    with caplog.at_level(logging.INFO, logger="t2vrt"):
        pipe = Pipeline.load(tiny_engines)
    expected = "openvino" if openvino_backend.FP32_MEASURED["openvino_faster"] else "onnxruntime"
    assert pipe.backend == expected and "backend: " + expected in caplog.text


def test_bf16_refused_in_one_line_without_bf16_instructions(tiny_engines, monkeypatch):
    monkeypatch.setattr(ovb, "cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(EngineError, match="bf16 needs a CPU with AVX512_BF16 or AMX"):
        Pipeline.load(tiny_engines, backend="openvino", precision="bf16")


@needs_bf16
def test_fp32_on_a_bf16_cpu_says_once_what_bf16_gives(tiny_engines, caplog, monkeypatch):
    from t2vrt.engines import openvino_backend

    monkeypatch.setattr(openvino_backend, "_told", False)
    with caplog.at_level(logging.INFO, logger="t2vrt"):
        Pipeline.load(tiny_engines)
        Pipeline.load(tiny_engines)
    assert caplog.text.count("--precision bf16 (torch_dtype=torch.bfloat16) ran the UNet step") == 1


@needs_bf16
def test_from_pretrained_with_torch_bfloat16_opts_in(tiny_engines):
    import torch

    pipe = Pipeline.from_pretrained(str(tiny_engines), torch_dtype=torch.bfloat16)
    assert (pipe.backend, pipe.precision) == ("openvino", "bf16")
    fp32 = Pipeline.from_pretrained(str(tiny_engines), torch_dtype=torch.float32)
    assert fp32.precision is None  # fp32, as in diffusers
