"""TrtRunner's CUDA glue on a GPU, with a stand-in engine (y = 2x + 1 written by a CuPy kernel at the bound
addresses on the stream TensorRT would be given): binding, output sizing, streams, CUDA graph capture and
replay per input shape, and the profile check before any engine call. Real TensorRT is not exercised here."""

import types

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
cupy = pytest.importorskip("cupy")

from t2vrt.components import ComponentSpec, TensorSpec  # noqa: E402
from t2vrt.engines.tensorrt import runner as tensorrt_runner  # noqa: E402
from t2vrt.errors import InputError  # noqa: E402

SPEC = ComponentSpec("toy", (TensorSpec("x", "float32", ("b", 3)),), (TensorSpec("y", "float32", ("b", 3)),))
RECORD = {"component": "toy", "flavour": "tensorrt-rtx", "shapes": {"x": [[1, 3], [2, 3], [8, 3]]},
          "ranges": {"b": [1, 2, 8]}, "profile": {"batch": [1, 1, 8]}}
AFFINE = cupy.ElementwiseKernel("float32 x", "float32 y", "y = 2 * x + 1", "affine")


class Context:
    def __init__(self):
        self.shapes, self.addresses, self.calls = {}, {}, []

    def set_input_shape(self, name, shape):
        self.calls.append("set_input_shape")
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["x"]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        n = 4 * self.shapes["x"][0] * 3
        view = lambda name: cupy.ndarray(self.shapes["x"], cupy.float32, cupy.cuda.MemoryPointer(  # noqa: E731
            cupy.cuda.UnownedMemory(self.addresses[name], n, None), 0))
        with cupy.cuda.ExternalStream(stream):
            AFFINE(view("x"), view("y"))
        return True


class Engine:
    num_io_tensors = 2

    def get_tensor_name(self, i):
        return ("x", "y")[i]

    def get_tensor_dtype(self, name):
        return "FLOAT"

    def create_execution_context(self):
        return Context()


FAKE_TRT = types.SimpleNamespace(
    __version__="0", Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda plan: Engine()),
    DataType=types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF", INT64="INT64", INT32="INT32", BOOL="BOOL"))


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setattr(tensorrt_runner, "import_tensorrt", lambda flavour: (FAKE_TRT, flavour))
    monkeypatch.setattr(tensorrt_runner, "check_target", lambda *a, **k: None)
    monkeypatch.setattr(tensorrt_runner, "make_logger", lambda trt: types.SimpleNamespace(messages=[]))
    (tmp_path / "toy.plan").write_bytes(b"plan")
    return lambda graphs: tensorrt_runner.TrtRunner(tmp_path / "toy.plan", SPEC, RECORD, cuda_graphs=graphs)


@pytest.mark.parametrize("graphs", [False, True])
def test_outputs_sized_from_context_and_computed_on_stream(runner, graphs):
    r = runner(graphs)
    for b in (2, 5, 2):
        x = torch.randn(b, 3, device="cuda")
        y = r.infer({"x": x})["y"]
        torch.testing.assert_close(y, 2 * x + 1)
    x = torch.randn(3, 3).numpy()  # numpy in: moved to the GPU at the edge
    torch.testing.assert_close(r.infer({"x": x})["y"].cpu(), 2 * torch.from_numpy(x) + 1)
    assert len(r.graphs) == (3 if graphs else 0)  # one CUDA graph per input shape


def test_shape_outside_profile_fails_before_any_engine_call(runner):
    r = runner(False)
    with pytest.raises(InputError, match=r"toy: b=9 \(batch\) is outside this engine's range \[1, 8\]"):
        r.infer({"x": torch.zeros(9, 3, device="cuda")})
    assert r.context.calls == []


def test_close_gives_the_memory_back(runner):
    """What low-memory mode relies on: after close, torch holds none of the runner's blocks (graphs, outputs)."""
    from t2vrt.errors import EngineError

    r = runner(True)
    y = r.infer({"x": torch.randn(8, 3, device="cuda")})["y"]  # a graph, its static input and output buffers
    del y
    assert torch.cuda.memory_reserved() > 0
    r.close()
    assert torch.cuda.memory_allocated() == 0 and torch.cuda.memory_reserved() == 0
    with pytest.raises(EngineError, match="toy: this runner was closed"):
        r.infer({"x": torch.zeros(2, 3, device="cuda")})
