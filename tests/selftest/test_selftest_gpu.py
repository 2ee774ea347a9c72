"""`t2vrt selftest` on a CUDA GPU with the session's tiny export: ONNX Runtime CUDA and TensorRT (or TensorRT-RTX)
against ONNX Runtime CPU fp32, a UNet step with and without CUDA graphs, the switch between the two size buckets
and the device memory after close(). Written for the GPU session; on a CPU runner every test skips."""

import json

import pytest

from t2vrt.engines.tensorrt.env import cuda_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU (torch sees none)")]


@pytest.fixture(scope="module")
def record(tiny_export, tmp_path_factory):
    from t2vrt.cli import main

    out = tmp_path_factory.mktemp("selftest-gpu") / "selftest.json"
    code = main(["selftest", str(tiny_export), "--json", str(out)])
    return code, json.loads(out.read_text())


def _backend(record, prefix):
    return next((b for b in record["backends"] if b["name"].startswith(prefix)), None)


def test_every_gpu_backend_passes(record):
    code, r = record
    failed = [(b["name"], c["name"], c["summary"]) for b in r["backends"] for c in b["checks"] if c["result"] != "pass"
              and c["result"] != "skip"]
    assert code == 0 and r["passed"] is True, failed


def test_onnxruntime_cuda_times_graphs_and_gives_memory_back(record):
    cuda = _backend(record[1], "onnxruntime-cuda")
    if not cuda["available"]:
        pytest.skip(f"needs a CUDA GPU with onnxruntime-gpu: {cuda['reason']}")
    checks = {c["name"]: c for c in cuda["checks"]}
    step = checks["unet step fp16"]["details"]
    assert step["plain"]["median_ms"] > 0 and step["cuda_graphs"]["median_ms"] > 0 and step["graph_speedup"] > 0
    assert checks["low memory"]["result"] == "pass"
    assert checks["components fp16"]["details"]["results"]["unet"]


def test_tensorrt_builds_both_buckets_switches_and_gives_memory_back(record):
    trt = _backend(record[1], "tensorrt")
    if not trt["available"]:
        pytest.skip(f"needs a CUDA GPU with TensorRT: {trt['reason']}")
    assert trt["mode"] == "run"
    checks = {c["name"]: c for c in trt["checks"]}
    assert checks["build fp16"]["details"]["sizes"] == ["64x64", "32x32"]
    assert checks["profile switch"]["result"] == "pass"
    assert checks["low memory"]["result"] == "pass"
    assert "cuda_graphs" in checks["unet step fp16"]["details"]
