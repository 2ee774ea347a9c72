"""ONNX Runtime with I/O binding, tested without a GPU: binding by address on torch CPU tensors through the CPU
provider, the backend order and its errors (CUDA graphs and the stream: test_ort_cuda_graphs.py)."""

import logging
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from t2vrt.engines import loader, onnxruntime_backend, onnxruntime_cuda  # noqa: E402
from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner, bind_and_run, ort_cuda_unusable  # noqa: E402
from t2vrt.engines.tensorrt.backend import TensorRT  # noqa: E402
from t2vrt.errors import EngineError  # noqa: E402
from tests.engines.conftest import SPEC  # noqa: E402
from tests.engines.standins import RecordingStream  # noqa: E402


def test_bound_outputs_are_written_in_place(toy):
    r = OrtBoundRunner(toy, SPEC, "cpu")
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    y = r.infer({"x": x})["y"]
    assert isinstance(y, torch.Tensor) and torch.equal(y, 2 * x + 1)
    # NumPy: copied at the edge
    assert torch.equal(r.infer({"x": np.ones((5, 3), np.float32)})["y"], torch.full((5, 3), 3.0))
    assert r.providers == ["CPUExecutionProvider"]
    r.close()
    with pytest.raises(EngineError, match="this runner was closed"):
        r.infer({"x": x})


def test_binding_names_device_type_and_pointer():
    calls = []
    binding = types.SimpleNamespace(bind_input=lambda *a: calls.append(("in",) + a),
                                    bind_output=lambda *a: calls.append(("out",) + a))
    session = types.SimpleNamespace(io_binding=lambda: binding, run_with_iobinding=lambda b, o: calls.append("run"))
    dev = types.SimpleNamespace(type="cuda", index=1)
    fake = lambda ptr: types.SimpleNamespace(device=dev, dtype=torch.float16, shape=(2, 4), data_ptr=lambda: ptr)  # noqa: E731
    b = bind_and_run(session, {"x": fake(100)}, {"y": fake(200)})
    assert calls == [("in", "x", "cuda", 1, np.dtype("float16"), [2, 4], 100),
                     ("out", "y", "cuda", 1, np.dtype("float16"), [2, 4], 200), "run"]
    bind_and_run(session, {}, {}, b)  # a kept binding (CUDA-graph replay) is run again, not bound again
    assert calls[-2:] == ["run", "run"] and len(calls) == 4


def test_a_session_without_its_cuda_provider_is_refused(toy):
    cpu_only = types.SimpleNamespace(get_providers=lambda: ["CPUExecutionProvider"])
    with pytest.raises(EngineError, match=r"^toy: ONNX Runtime did not start its CUDA provider \(providers in use: "
                                          r"\['CPUExecutionProvider'\]\); check the CUDA and cuDNN libraries, or pip"):
        OrtBoundRunner(toy, SPEC, "cuda", make_session=lambda graph: cpu_only, stream=RecordingStream())


def test_missing_onnxruntime_gpu_or_cuda_are_one_line(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime_cuda, "installed_distributions", lambda: ["onnxruntime"])
    assert ort_cuda_unusable().endswith("has no CUDAExecutionProvider (pip install 't2vrt[gpu]' (onnxruntime-gpu in "
                                        "place of onnxruntime; it must match your CUDA major version))")
    with pytest.raises(EngineError, match=r"^CUDAExecutionProvider was asked for but cannot run here: onnxruntime .* "
                                          r"or use providers=\['CPUExecutionProvider'\]$"):
        onnxruntime_backend.ort_device(["CUDAExecutionProvider"])
    assert onnxruntime_backend.ort_device(None) == "cpu"
    assert onnxruntime_backend.ort_device(["CPUExecutionProvider"]) == "cpu"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ort_cuda_unusable() == f"no CUDA GPU is visible to torch {torch.__version__}"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ort_cuda_unusable() == "" and onnxruntime_backend.ort_device(None) == "cuda"


@pytest.mark.parametrize("trt_ok, cuda_why, gpu, expected, level", [
    (True, "", True, "backend: tensorrt (engines built for this GPU)", "INFO"),
    (False, "", True, "backend: onnxruntime on CUDA (tensorrt not used: no engines; openvino not used: slower)",
     "INFO"),
    (False, "no GPU", False, "backend: onnxruntime on CPU; CUDA not used: no GPU (tensorrt not used: no engines; "
                             "openvino not used: slower)", "INFO"),
    (False, "no CUDA provider", True,  # a GPU whose CUDA provider cannot load: said at WARNING (stderr), not INFO
     "backend: onnxruntime on CPU; CUDA not used: no CUDA provider (tensorrt not used: no engines; "
     "openvino not used: slower)", "WARNING"),
])
def test_auto_order_says_which_and_why(monkeypatch, caplog, trt_ok, cuda_why, gpu, expected, level):
    from t2vrt.engines.openvino_backend import OpenVino
    from t2vrt.engines.tensorrt import env

    monkeypatch.setattr(TensorRT, "unusable", lambda self, m, o=None: "" if trt_ok else "no engines")
    monkeypatch.setattr(OpenVino, "unusable", lambda self, m, o=None: "slower")
    monkeypatch.setattr(onnxruntime_cuda, "ort_cuda_unusable", lambda: cuda_why)
    monkeypatch.setattr(env, "cuda_available", lambda: gpu)
    monkeypatch.setattr(loader, "_machine_has_gpu", lambda: True)
    with caplog.at_level(logging.INFO, logger="t2vrt.engines.loader"):
        backend = loader.resolve_backend("auto", None)
    assert backend == ("tensorrt" if trt_ok else "onnxruntime")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(level, expected)]


def test_on_a_machine_without_gpu_why_not_cuda_is_said_only_with_v(monkeypatch, caplog):
    """A CPU machine is told the backend; why not CUDA or TensorRT is debug (-v) there, not news on every run."""
    from t2vrt.engines.openvino_backend import OpenVino

    monkeypatch.setattr(TensorRT, "unusable", lambda self, m, o=None: "no engines")
    monkeypatch.setattr(OpenVino, "unusable", lambda self, m, o=None: "slower")
    monkeypatch.setattr(onnxruntime_cuda, "ort_cuda_unusable", lambda: "no GPU")
    monkeypatch.setattr(loader, "_machine_has_gpu", lambda: False)
    with caplog.at_level(logging.DEBUG, logger="t2vrt.engines.loader"):
        assert loader.resolve_backend("auto", None) == "onnxruntime"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "backend: onnxruntime on CPU"),
        (logging.DEBUG, "backend: onnxruntime on CPU; CUDA not used: no GPU (tensorrt not used: no engines; "
                        "openvino not used: slower)"),
    ]


def test_cuda_runner_takes_the_fp16_graph(tiny_engines, monkeypatch):
    """On CUDA the default precision is the fp16 graph where the export made one (fp32 on the CPU)."""
    from t2vrt.manifest import load_manifest

    opened = []
    monkeypatch.setattr(onnxruntime_backend, "ort_device", lambda providers: "cuda")
    monkeypatch.setattr(onnxruntime_cuda, "OrtBoundRunner",
                        lambda path, spec, device, cuda_graphs, stream: opened.append(path))
    m = load_manifest(tiny_engines)
    m.components["unet"]["onnx"].pop("fp16", None)
    loader.open_runner(tiny_engines, m, "unet", "onnxruntime")
    m.components["unet"]["onnx"]["fp16"] = {"path": "onnx/unet/model_fp16.onnx"}
    loader.open_runner(tiny_engines, m, "unet", "onnxruntime")
    assert opened == [tiny_engines / "onnx/unet/model.onnx", tiny_engines / "onnx/unet/model_fp16.onnx"]


def test_pipeline_on_bound_runners_keeps_torch_latents(tiny_engines, monkeypatch):
    """The whole pipeline through bound runners (torch tensors in and out, as on CUDA): the denoising loop runs on
    torch tensors and gives the frames of the NumPy path exactly."""
    import t2vrt.runtime.pipeline as pipeline

    ask = dict(num_frames=3, height=32, width=48, num_inference_steps=2, seed=3, progress=False)
    ref = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")("a cat", **ask)
    monkeypatch.setattr(pipeline, "open_runner", lambda root, m, name, *a, **k: OrtBoundRunner(
        m.cpu_onnx_path(root, name, "fp32"), m.spec(name), "cpu"))  # the graph the NumPy path ran
    out = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")("a cat", **ask)
    assert isinstance(out.latents, torch.Tensor)
    np.testing.assert_array_equal(np.asarray(out.frames), np.asarray(ref.frames))
