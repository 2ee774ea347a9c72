"""ONNX Runtime CUDA's graphs, stream and options, tested on the CPU: real CPU sessions behind a stand-in that
behaves as ONNX Runtime documents ``enable_cuda_graph`` and ``gpu_graph_id``.

- inference_session.cc: with ``enable_cuda_graph`` a session whose partitioning leaves nodes off the CUDA provider
  or inserts Memcpy nodes is refused at creation ("This session cannot use the graph capture feature as requested
  by the user as all compute graph nodes have not been partitioned to the CUDAExecutionProvider"); dynamic axes put
  the shape arithmetic on the CPU, so fixing every dimension (``add_free_dimension_override_by_name``) is what lets
  the graph be captured.
- onnxruntime_run_options_config_keys.h, ``gpu_graph_id``: one graph per id in one session; -1 runs without a graph;
  0 is reserved for ONNX Runtime itself. A captured graph replays the addresses it was captured with.
"""

import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from t2vrt.engines import onnxruntime_cuda  # noqa: E402
from t2vrt.engines.onnxruntime_cuda import MAX_GRAPHS, MAX_SHAPE_SESSIONS, OrtBoundRunner, cuda_options, free_dimensions  # noqa: E402
from tests.engines.conftest import SPEC  # noqa: E402
from tests.engines.standins import RecordingStream  # noqa: E402

REFUSAL = ("This session cannot use the graph capture feature as requested by the user as all compute graph nodes "
           "have not been partitioned to the CUDAExecutionProvider")


class GraphSession:
    """A real CPU session with ONNX Runtime's documented graph rules (module docstring) checked on every run."""

    def __init__(self, path, graph, dims):
        options = ort.SessionOptions()
        for name, n in (dims or {}).items():
            options.add_free_dimension_override_by_name(name, n)
        self.real = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.graph, self.dims, self.runs, self.captured = graph, dims, [], {}

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def io_binding(self):
        return self.real.io_binding()

    def run_with_iobinding(self, binding, options):
        assert options is not None and options.get_run_config_entry("disable_synchronize_execution_providers") == "1"
        graph_id = entry(options, "gpu_graph_id")
        graph_id = int(graph_id) if graph_id else (0 if self.graph else -1)
        assert graph_id != 0 or self.dims, "gpu_graph_id 0 is ONNX Runtime's own"
        if self.graph and graph_id != -1:
            addresses = tuple(v.data_ptr() for v in binding.get_outputs())
            assert self.captured.setdefault(graph_id, addresses) == addresses, "a graph replayed on new addresses"
        self.runs.append(graph_id)
        self.real.run_with_iobinding(binding)


def entry(options, key):
    try:
        return options.get_run_config_entry(key)
    except RuntimeError:  # "RunOptions does not have configuration with key"
        return ""


def factory(toy, refuse_dynamic):
    made = []

    def make(graph, dims=None):
        made.append((graph, dims))
        if graph and refuse_dynamic and not dims:
            raise RuntimeError(REFUSAL)
        return GraphSession(toy, graph, dims)

    return made, make


def graph_runner(toy, refuse_dynamic):
    made, make = factory(toy, refuse_dynamic)
    r = OrtBoundRunner(toy, SPEC, "cpu", make_session=make, stream=RecordingStream())
    r.cuda_graphs = True  # what a CUDA device turns on
    r.shape_sessions = False
    r.session = r._open()
    return r, made


def test_one_session_holds_a_graph_per_shape(toy):
    """Row 3c: one session (the weights once), a gpu_graph_id per shape from 1, -1 past MAX_GRAPHS."""
    r, made = graph_runner(toy, refuse_dynamic=False)
    sizes = list(range(1, MAX_GRAPHS + 2))
    for b in sizes + sizes[:2]:
        x = torch.full((b, 3), float(b))
        assert torch.equal(r.infer({"x": x})["y"], 2 * x + 1)
    assert made[1:] == [(True, None)]  # the constructor's eager session, then the one graph session
    assert r.session.runs == list(range(1, MAX_GRAPHS + 1)) + [-1, 1, 2]


def test_refused_capture_falls_back_to_fixed_shape_sessions(toy, caplog):
    """Row 3a: where ONNX Runtime refuses capture on the dynamic graph, each shape's session fixes the exported axes
    by name; past MAX_SHAPE_SESSIONS shapes run eagerly on the dynamic session."""
    r, made = graph_runner(toy, refuse_dynamic=True)
    assert r.shape_sessions and made[-2:] == [(True, None), (False, None)]
    for b in range(1, MAX_SHAPE_SESSIONS + 2):
        x = torch.full((b, 3), float(b))
        assert torch.equal(r.infer({"x": x})["y"], 2 * x + 1)
    assert [m for m in made[3:]] == [(True, {"b": b}) for b in range(1, MAX_SHAPE_SESSIONS + 1)]
    assert r.session.runs == [-1] and "cannot capture the dynamic-shape graph" in caplog.text


def test_fixed_dimensions_are_the_exported_axis_names(toy):
    """The names given to add_free_dimension_override_by_name are the ONNX graph's own dim_params, scaled axes too."""
    import onnx

    from t2vrt.components import ComponentSpec, TensorSpec

    spec = ComponentSpec("v", (TensorSpec("z", "float32", ("n", 4, ("h", 8))),),
                         (TensorSpec("o", "float32", ("n", 3)),))
    assert free_dimensions(spec, {"n": 2, "h": 5}) == {"n": 2, "8h": 40}
    dims = {d.dim_param for i in onnx.load(str(toy)).graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    assert dims == set(free_dimensions(SPEC, {"b": 1}))
    fixed = GraphSession(toy, True, {"b": 2}).real  # a real session with the override: b is 2, and only 2
    assert fixed.run(None, {"x": np.ones((2, 3), np.float32)})[0].shape == (2, 3)
    with pytest.raises(Exception, match="(?i)dimension|shape|invalid"):
        fixed.run(None, {"x": np.ones((3, 3), np.float32)})


def test_cuda_session_runs_on_the_pipeline_stream(toy, monkeypatch):
    """Rows 2 and 9: the CUDA provider gets the pipeline's stream as user_compute_stream, the arena grows by what is
    asked, and a call neither synchronizes the stream nor lets ONNX Runtime synchronize at the run's end."""
    seen = []
    fake = types.SimpleNamespace(get_providers=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", lambda path, sess_options, providers: seen.append(providers) or fake)
    stream = RecordingStream(handle=0xABC)
    OrtBoundRunner(toy, SPEC, "cuda", stream=stream)
    name, options = seen[0][0]
    assert name == "CUDAExecutionProvider" and options == cuda_options(0, False, 0xABC)
    assert options["user_compute_stream"] == str(0xABC) and options["has_user_compute_stream"] == "1"
    assert options["arena_extend_strategy"] == "kSameAsRequested" and stream.syncs == 0


def test_a_call_does_not_synchronize_the_host(toy):
    """Row 9: no stream.synchronize per call (ONNX Runtime computes on the stream the inputs were queued on)."""
    made, make = factory(toy, refuse_dynamic=False)
    stream = RecordingStream()
    r = OrtBoundRunner(toy, SPEC, "cpu", make_session=make, stream=stream)
    for b in (1, 2, 3):
        r.infer({"x": torch.ones(b, 3)})
    assert stream.syncs == 0 and stream.entered == 3
    r.close()
    assert stream.syncs == 1  # close waits for the queued work before freeing


def test_unusable_cuda_provider_names_shadowing(monkeypatch):
    """Row 7: with both distributions installed and no CUDA provider, the reason says which shadows which, and the
    fix."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime_cuda, "installed_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    assert onnxruntime_cuda.ort_cuda_unusable() == (
        "onnxruntime (CPU) and onnxruntime-gpu are both installed; they share the onnxruntime module and the CPU "
        "package shadows onnxruntime-gpu's CUDAExecutionProvider: pip uninstall -y onnxruntime onnxruntime-gpu && "
        "pip install 't2vrt[gpu]'")
