"""ONNX Runtime with I/O binding, tested without a GPU: binding by address on torch CPU tensors through the CPU
provider, the per-shape CUDA-graph sessions (with CPU sessions standing in), the backend order and its errors."""

import logging
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from t2vrt.components import ComponentSpec, TensorSpec  # noqa: E402
from t2vrt.engines import loader, onnxruntime_backend, onnxruntime_cuda  # noqa: E402
from t2vrt.engines.onnxruntime_cuda import MAX_GRAPHS, OrtBoundRunner, bind_and_run, ort_cuda_unusable  # noqa: E402
from t2vrt.engines.tensorrt.backend import TensorRT  # noqa: E402
from t2vrt.errors import EngineError  # noqa: E402

SPEC = ComponentSpec("toy", (TensorSpec("x", "float32", ("b", 3)),), (TensorSpec("y", "float32", ("b", 3)),))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """y = 2x + 1 over a dynamic batch."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])
    two, one = (helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("two", 2.0), ("one", 1.0)))
    nodes = [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])]
    graph = helper.make_graph(nodes, "toy", [x], [y], initializer=[two, one])
    path = tmp_path_factory.mktemp("toy") / "toy.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


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
    session = types.SimpleNamespace(io_binding=lambda: binding, run_with_iobinding=lambda b: calls.append("run"))
    dev = types.SimpleNamespace(type="cuda", index=1)
    fake = lambda ptr: types.SimpleNamespace(device=dev, dtype=torch.float16, shape=(2, 4), data_ptr=lambda: ptr)  # noqa: E731
    b = bind_and_run(session, {"x": fake(100)}, {"y": fake(200)})
    assert calls == [("in", "x", "cuda", 1, np.dtype("float16"), [2, 4], 100),
                     ("out", "y", "cuda", 1, np.dtype("float16"), [2, 4], 200), "run"]
    bind_and_run(session, {}, {}, b)  # a kept binding (CUDA-graph replay) is run again, not bound again
    assert calls[-2:] == ["run", "run"] and len(calls) == 4


def test_one_graph_session_per_shape_then_eager(toy, caplog):
    made = []

    def make(graph):
        made.append(graph)
        return ort.InferenceSession(str(toy), providers=["CPUExecutionProvider"])

    r = OrtBoundRunner(toy, SPEC, "cpu", make_session=make)
    r.cuda_graphs = True  # what a CUDA device turns on; CPU sessions stand in for the graph sessions here
    for b in (1, 2, 1, 2):
        x = torch.full((b, 3), float(b))
        assert torch.equal(r.infer({"x": x})["y"], 2 * x + 1)
    assert made == [False, True, True] and len(r.graphs) == MAX_GRAPHS
    first = r.infer({"x": torch.zeros(1, 3)})["y"]
    r.infer({"x": torch.ones(1, 3)})
    assert torch.equal(first, torch.ones(1, 3))  # outputs are clones: the next replay does not overwrite them
    with caplog.at_level(logging.INFO, logger="t2vrt.engines.onnxruntime_cuda"):
        assert torch.equal(r.infer({"x": torch.zeros(3, 3)})["y"], torch.ones(3, 3))
    assert made == [False, True, True] and "runs without one" in caplog.text


def test_a_session_without_its_cuda_provider_is_refused(toy):
    cpu_only = types.SimpleNamespace(get_providers=lambda: ["CPUExecutionProvider"])
    with pytest.raises(EngineError, match=r"^toy: ONNX Runtime did not start its CUDA provider \(providers in use: "
                                          r"\['CPUExecutionProvider'\]\); check the CUDA and cuDNN libraries, or pip"):
        OrtBoundRunner(toy, SPEC, "cuda", make_session=lambda graph: cpu_only)


def test_missing_onnxruntime_gpu_or_cuda_are_one_line(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_cuda_unusable().endswith("has no CUDAExecutionProvider (pip install onnxruntime-gpu (in place of "
                                        "onnxruntime; it must match your CUDA major version))")
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


@pytest.mark.parametrize("trt_ok, cuda_why, expected", [
    (True, "", "backend: tensorrt (engines built for this GPU)"),
    (False, "", "backend: onnxruntime on CUDA (tensorrt not used: no engines; openvino not used: slower)"),
    (False, "no GPU", "backend: onnxruntime on CPU; CUDA not used: no GPU (tensorrt not used: no engines; "
                      "openvino not used: slower)"),
])
def test_auto_order_says_which_and_why(monkeypatch, caplog, trt_ok, cuda_why, expected):
    from t2vrt.engines.openvino_backend import OpenVino

    monkeypatch.setattr(TensorRT, "unusable", lambda self, m, o=None: "" if trt_ok else "no engines")
    monkeypatch.setattr(OpenVino, "unusable", lambda self, m, o=None: "slower")
    monkeypatch.setattr(onnxruntime_cuda, "ort_cuda_unusable", lambda: cuda_why)
    monkeypatch.setattr(loader, "_machine_has_gpu", lambda: True)
    with caplog.at_level(logging.INFO, logger="t2vrt.engines.loader"):
        backend = loader.resolve_backend("auto", None)
    assert backend == ("tensorrt" if trt_ok else "onnxruntime")
    assert [r.getMessage() for r in caplog.records] == [expected]


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
    monkeypatch.setattr(onnxruntime_cuda, "OrtBoundRunner", lambda path, spec, device, cuda_graphs: opened.append(path))
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
