"""TrtRunner's GPU logic on the CPU, against the TensorRT stand-ins of standins.py (behaviour as NvInferRuntime.h and
the Python bindings document it): the stream every call runs on, user-managed scratch memory, one context per
captured CUDA graph, the bounded graph cache, a failed context creation, close() and the dtype table."""

import logging
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from t2vrt.engines.tensorrt import runner as tensorrt_runner  # noqa: E402
from t2vrt.engines.tensorrt.graphs import MAX_GRAPHS  # noqa: E402
from t2vrt.errors import EngineError  # noqa: E402
from tests.engines.conftest import SPEC  # noqa: E402
from tests.engines.standins import TOY_RECORD, FakeEngine, RecordingStream, Strategy, fake_tensorrt  # noqa: E402


@pytest.fixture()
def make_runner(monkeypatch, tmp_path):
    """A TrtRunner over a FakeEngine, on a RecordingStream."""
    (tmp_path / "toy.plan").write_bytes(b"plan")

    def make(cuda_graphs=False, out_of_memory=False):
        stream = RecordingStream()
        engine = FakeEngine(stream, out_of_memory)
        monkeypatch.setattr(tensorrt_runner, "torch_cuda", lambda: torch)
        monkeypatch.setattr(tensorrt_runner, "import_tensorrt", lambda flavour: (fake_tensorrt(engine), "tensorrt"))
        monkeypatch.setattr(tensorrt_runner, "check_target", lambda *a: None)
        monkeypatch.setattr(tensorrt_runner, "make_logger", lambda trt: types.SimpleNamespace(messages=[]))
        runner = tensorrt_runner.TrtRunner(tmp_path / "toy.plan", SPEC, TOY_RECORD, cuda_graphs=cuda_graphs,
                                           stream=stream)
        return runner, engine, stream

    return make


def x_of(b, value=1.0):
    return torch.full((b, 3), value)


def test_every_call_runs_on_the_given_stream_without_host_syncs(make_runner):
    """Row 2: the enqueue and the profile switch go to the pipeline's stream, never the legacy default stream (0),
    and a call does not synchronize the host."""
    runner, engine, stream = make_runner()
    for b in (1, 5, 2):  # profile 0, a switch to 1, back to 0
        assert torch.equal(runner.infer({"x": x_of(b, float(b))})["y"], 2 * x_of(b, float(b)) + 1)
    assert engine.contexts[0].streams and set(engine.contexts[0].streams) == {stream.handle}
    assert stream.syncs == 0 and stream.entered >= 3  # each call (and scratch allocation) on the stream


def test_contexts_take_user_managed_memory_sized_for_the_profile(make_runner):
    """Row 6: the context is USER_MANAGED (no static reservation of the largest profile's scratch); its scratch
    buffer is sized for the selected profile and grows on the switch to a larger one."""
    runner, engine, _ = make_runner()
    (context,) = engine.contexts
    assert context.strategy == Strategy.USER_MANAGED and context.memory[1] == engine.memory[0]
    runner.infer({"x": x_of(4)})
    assert context.profile == 1 and context.memory[1] == engine.memory[1]


def test_out_of_memory_context_is_one_line(make_runner):
    """Row 6: create_execution_context's None (out of memory) is an EngineError at open, not a later 'closed'."""
    with pytest.raises(EngineError, match=r"^toy: TensorRT could not create an execution context \(no message\); "
                                          r"free GPU memory"):
        make_runner(out_of_memory=True)


def test_cuda_graphs_one_context_per_shape_across_profiles(make_runner):
    """Row 4: each captured shape has its own context, so replaying shape A after B was captured (same profile or
    after a profile switch) replays a graph whose context is as captured; the stand-in raises otherwise."""
    runner, engine, stream = make_runner(cuda_graphs=True)
    for b, v in ((1, 1.0), (2, 2.0), (5, 3.0), (1, 4.0), (5, 5.0), (2, 6.0)):
        assert torch.equal(runner.infer({"x": x_of(b, v)})["y"], 2 * x_of(b, v) + 1)
    assert len(engine.contexts) == 3 and [c.profile for c in engine.contexts] == [0, 0, 1]
    assert all(c.strategy == Strategy.USER_MANAGED for c in engine.contexts)
    shared = {c.memory for c in engine.contexts}  # one scratch buffer, sized for every profile
    assert len(shared) == 1 and shared.pop()[1] == engine.device_memory_size_v2
    assert stream.syncs == 0


def test_graph_outputs_are_clones(make_runner):
    runner, _, _ = make_runner(cuda_graphs=True)
    first = runner.infer({"x": x_of(1, 0.0)})["y"]
    runner.infer({"x": x_of(1, 1.0)})
    assert torch.equal(first, torch.ones(1, 3))


def test_graph_cache_is_bounded(make_runner, caplog):
    """Row 4: at most MAX_GRAPHS captured shapes (and contexts) kept; the least recently used goes first."""
    runner, engine, _ = make_runner(cuda_graphs=True)
    sizes = list(range(1, 9))[: MAX_GRAPHS + 2]
    for b in sizes:
        runner.infer({"x": x_of(b)})
    assert len(runner.graphs) == MAX_GRAPHS
    assert runner.infer({"x": x_of(sizes[-1], 7.0)})["y"][0, 0] == 15.0  # a kept one replays
    made = len(engine.contexts)
    runner.infer({"x": x_of(sizes[0])})  # dropped: captured again on a new context
    assert len(engine.contexts) == made + 1 and len(runner.graphs) == MAX_GRAPHS


def test_close_synchronizes_before_freeing(make_runner):
    """Row 9: close waits for the stream's queued work before dropping the context and scratch memory."""
    runner, _, stream = make_runner()
    order = []
    stream.synchronize = lambda: order.append(("sync", runner.scratch is not None))
    runner.infer({"x": x_of(1)})
    runner.close()
    assert order == [("sync", True)] and runner.scratch is None and runner.engine is None
    with pytest.raises(EngineError, match=r"^toy: this runner was closed; open the component again$"):
        runner.infer({"x": x_of(1)})


@pytest.mark.parametrize("name, dtype", [("BF16", torch.bfloat16), ("INT8", torch.int8), ("HALF", torch.float16)])
def test_dtype_table_has_bf16_int8(name, dtype):
    """Row 9: TensorRT's BF16 and INT8 tensors bind as torch dtypes (a KeyError on main)."""
    r = tensorrt_runner.TrtRunner.__new__(tensorrt_runner.TrtRunner)
    r.torch, r.spec = torch, SPEC
    assert r._torch_dtype(None, types.SimpleNamespace(name=name)) is dtype


def test_unbindable_dtype_is_one_line():
    r = tensorrt_runner.TrtRunner.__new__(tensorrt_runner.TrtRunner)
    r.torch, r.spec = torch, SPEC
    with pytest.raises(EngineError, match=r"^toy: the engine has a INT4 input or output, which t2vrt does not bind "):
        r._torch_dtype(None, types.SimpleNamespace(name="INT4"))


def test_logger_keeps_a_bounded_tail():
    """Row 2: the runner's TensorRT logger keeps the latest messages only (a service logs for days)."""
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed")
    from t2vrt.engines.tensorrt.env import KEEP_MESSAGES, make_logger

    logger = make_logger(trt)
    logging.getLogger("t2vrt.engines.tensorrt.env").setLevel(logging.CRITICAL)
    for i in range(KEEP_MESSAGES + 50):
        logger.log(trt.ILogger.Severity.WARNING, f"m{i}")
    assert len(logger.messages) == KEEP_MESSAGES and list(logger.messages)[-1] == ("WARNING", f"m{KEEP_MESSAGES + 49}")
    logging.getLogger("t2vrt.engines.tensorrt.env").setLevel(logging.NOTSET)


def test_numpy_feed_is_copied_once_at_the_edge(make_runner):
    runner, _, _ = make_runner()
    y = runner.infer({"x": np.full((2, 3), 2.0, np.float32)})["y"]
    assert isinstance(y, torch.Tensor) and torch.equal(y, torch.full((2, 3), 5.0))


def test_a_runner_used_outside_a_pipeline_orders_with_its_caller():
    """A runner on its own stream, called from code on torch's current stream: device-side waits both ways (the
    outputs are safe to read on the caller's stream), no host synchronization; inside a pipeline no wait at all."""
    import contextlib

    from t2vrt.engines.streams import CudaStream

    events = []

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_stream(self, other):
            events.append(f"{self.name} waits for {other.name}")

        def synchronize(self):
            events.append("host sync")

    caller = Stream("caller")
    current = [caller]

    @contextlib.contextmanager
    def on(stream):
        current.append(stream)
        yield
        current.pop()

    cuda = types.SimpleNamespace(Stream=lambda device: Stream("runner"), current_stream=lambda device: current[-1],
                                 stream=on)
    stream = CudaStream(types.SimpleNamespace(cuda=cuda, device=lambda d: d), "cuda")
    with stream.serving():
        events.append(f"runs on {current[-1].name}")
    assert events == ["runner waits for caller", "runs on runner", "caller waits for runner"]
    events.clear()
    with stream.active(), stream.serving():  # the pipeline made its stream current
        events.append(f"runs on {current[-1].name}")
    assert events == ["runs on runner"]
