"""One plan per size bucket without TensorRT: the build's records, what it retires, its fallback when the builder
fails on several profiles, the choice of plan per request, the runner that opens one plan at a time, and inspect.
The plan builder is a stand-in (real builds: test_tensorrt_buckets.py, slow)."""

import logging
import types

import pytest

from t2vrt.components import ModelDims, Profile, component_specs
from t2vrt.engines.buckets import Size, bucket_profiles, record_sizes
from t2vrt.engines.tensorrt import build as tb
from t2vrt.engines.tensorrt import builder
from t2vrt.engines.tensorrt import env as env
from t2vrt.engines.tensorrt import runner as tensorrt_runner
from t2vrt.engines.tensorrt.records import check_plans, find_engines
from t2vrt.errors import EngineError, InputError
from t2vrt.manifest import Manifest

RTX = types.SimpleNamespace(__version__="1.7.1.116")
DIMS = ModelDims(4, 32, 77, 8, 2, 32)
SIZES = (Size(256, 256), Size(576, 320))
PER_BUCKET = tb.BuildOptions(sizes=SIZES, plan_per_bucket=True, flavour="tensorrt-rtx", compute_capability=("sm89",))
MYELIN = "Error Code 1: Myelin (CHECK(!mvmf_cudnn.empty()) failed. empty runtime-fusion MVMF for '__myl_Fc')"


def _manifest():
    graphs = lambda n: {p: {"path": f"onnx/{n}/{p}.onnx", "sha256": f"{n}-{p}"} for p in ("fp16", "fp32")}  # noqa: E731
    comps = {n: {"io": s.to_json(), "onnx": graphs(n)} for n, s in component_specs(DIMS).items() if n != "vae_encoder"}
    return Manifest(model=DIMS, profile=Profile(), components=comps, tokenizer={}, vae_scaling_factor=0.18215)


@pytest.fixture
def builds(monkeypatch):
    """The plan builder replaced: it records how many profiles each call asked for, and fails when told to."""
    calls, fail = [], {"when": lambda n: False}

    def fake(trt, flavour, onnx_path, o, targets, shapes, root, component, per_bucket=""):
        calls.append(len(shapes))
        if fail["when"](len(shapes)):
            raise builder._build_failed(component, [("ERROR", MYELIN)], per_bucket)
        return b"plan %d" % len(calls), []

    monkeypatch.setattr(tb, "_build_plan", fake)
    return types.SimpleNamespace(calls=calls, fail=fail)


def _build(root, m, o=PER_BUCKET, component="unet"):
    profiles = bucket_profiles(tb.build_profile(m, o), o.sizes)
    return tb.build_component(root, m, component, o, RTX, "tensorrt-rtx", ("sm89",), profiles)


def _unet(m, precision="fp16"):
    return [r for r in m.engines.values() if r["component"] == "unet" and r["precision"] == precision]


def test_one_plan_per_bucket_keeps_its_siblings_and_retires_what_it_replaces(tmp_path, builds):
    m = _manifest()
    whole = _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False}))
    fp32 = _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "precision": "fp32"}))
    stray = tmp_path / "engines" / "unet" / "not-recorded.plan"
    stray.write_bytes(b"mine")
    assert builds.calls == [2, 1, 1]
    r = _build(tmp_path, m)
    assert [p["size"] for p in r["plans"]] == ["256x256", "576x320"] and not r["cached"]
    assert [record_sizes(x) for x in _unet(m)] == [[Size(256, 256)], [Size(576, 320)]]
    assert all(len(x["profiles"]) == 1 and x["plan_per_bucket"] == "requested" for x in _unet(m))
    assert all((tmp_path / p["path"]).is_file() for p in r["plans"])
    assert not (tmp_path / whole["path"]).exists()  # the multi-profile engine it replaces: retired
    assert len(_unet(m, "fp32")) == 2 and all((tmp_path / p["path"]).is_file() for p in fp32["plans"])
    assert stray.read_bytes() == b"mine"  # never recorded: never touched
    narrower = _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "sizes": SIZES[1:]}))
    assert narrower["cached"] and record_sizes(_unet(m)[0]) == [Size(576, 320)] and len(_unet(m)) == 1
    assert not (tmp_path / r["plans"][0]["path"]).exists()  # the bucket no longer asked for: retired
    assert builds.calls == [2, 1, 1, 1, 1]  # the 576x320 plan was a cache hit


def test_a_builder_failure_on_several_buckets_falls_back_in_one_warning(tmp_path, builds, caplog):
    m = _manifest()
    builds.fail["when"] = lambda n: n > 1
    o = tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False})
    with caplog.at_level(logging.INFO, logger="t2vrt.engines.tensorrt.build"):
        r = _build(tmp_path, m, o)
    warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert warnings == ["unet: one engine with 2 size buckets failed to build (TensorRT could not build unet: "
                        f"{MYELIN}); "
                        f"built one plan per size bucket instead (as --plan-per-bucket does)"]
    assert builds.calls == [2, 1, 1] and len(r["plans"]) == 2 and r["plan_per_bucket"].startswith("fallback: TensorRT")
    assert [x["plan_per_bucket"] for x in _unet(m)] == [r["plan_per_bucket"]] * 2
    again = _build(tmp_path, m, o)  # the same build again: per bucket at once, every plan a cache hit
    assert again["cached"] and builds.calls == [2, 1, 1]


def test_what_falls_back_and_what_stands(tmp_path, builds):
    m = _manifest()
    builds.fail["when"] = lambda n: True
    with pytest.raises(EngineError, match=r"^TensorRT could not build unet for size bucket 256x256: Error Code 1") as e:
        _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False}))
    assert "\n" not in str(e.value) and builds.calls == [2, 1]  # one bucket failing too: its error stands
    with pytest.raises(EngineError, match=r"^TensorRT could not build unet: Error Code 1"):
        _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False, "sizes": SIZES[:1]}))
    assert builds.calls == [2, 1, 1]  # one bucket: nothing narrower to fall back to
    m.components["unet"]["onnx"].pop("fp32")
    with pytest.raises(EngineError, match="unet has no fp32 ONNX graph"):  # not the builder's failure: no fallback
        _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False, "precision": "fp32"}))
    assert builds.calls == [2, 1, 1] and m.engines == {}
    with pytest.raises(InputError,
                       match=r"^--plan-per-bucket builds one plan per size bucket \(--sizes\); it does not"):
        tb._check_options(tb.BuildOptions(plan_per_bucket=True, height=(128, 256, 512)))


def test_text_encoder_stays_one_plan(tmp_path, builds):
    r = _build(tmp_path, _manifest(), component="text_encoder")
    assert "plans" not in r and builds.calls == [1]


def _runnable(monkeypatch):
    monkeypatch.setattr(env, "try_import", lambda name: RTX)
    monkeypatch.setattr(env, "gpu_compute_capability", lambda: "sm89")


def test_the_request_picks_the_plan_that_holds_it(tmp_path, builds, monkeypatch):
    m = _manifest()
    _build(tmp_path, m)
    _runnable(monkeypatch)
    records, why = find_engines(m.engines, "unet")
    assert why == "" and [record_sizes(r) for r in records] == [[Size(256, 256)], [Size(576, 320)]]
    plan, index = check_plans(records, {"batch": 1, "frames": 64, "height": 320, "width": 576})
    assert plan is records[1] and index == 0
    with pytest.raises(InputError) as e:  # the same line as one engine with both buckets gives
        check_plans(records, {"batch": 1, "frames": 16, "height": 512, "width": 512}, root="out/ms")
    assert str(e.value) == ("size 512x512 is in no size bucket of the unet engine (buckets: 256x256, 576x320); "
                            "add one with `t2vrt build out/ms --sizes 256x256,576x320,512x512`")
    with pytest.raises(InputError, match=r"^frames=80 is outside the unet engine's profile \[8, 64\]; rebuild with "
                                         r"`t2vrt build DIR --frames 8:16:80 --sizes 256x256,576x320`$"):
        check_plans(records, {"batch": 1, "frames": 80, "height": 320, "width": 576})


class FakeTrtRunner:
    """Stands in for TrtRunner: records which plan was opened and closed, and on which stream."""

    events: list = []

    def __init__(self, plan, spec, record, cuda_graphs=False, root="DIR", stream=None):
        self.plan, self.stream = str(plan), stream
        FakeTrtRunner.events.append(("open", self.plan))

    def infer(self, feed):
        return {"noise_pred": self.plan}

    def close(self):
        FakeTrtRunner.events.append(("close", self.plan))


def test_the_runner_opens_one_plan_at_a_time(tmp_path, builds, monkeypatch):
    np = pytest.importorskip("numpy")
    from t2vrt.engines import loader
    from t2vrt.engines.tensorrt.plans import PlanSetRunner

    m = _manifest()
    paths = [str(tmp_path / p["path"]) for p in _build(tmp_path, m)["plans"]]
    _runnable(monkeypatch)
    monkeypatch.setattr(tensorrt_runner, "torch_cuda", lambda: None)
    monkeypatch.setattr(tensorrt_runner, "TrtRunner", FakeTrtRunner)
    FakeTrtRunner.events = []
    stream = types.SimpleNamespace(device="cuda")  # the pipeline's: every plan runs on it
    runner = loader.open_runner(tmp_path, m, "unet", "tensorrt", stream=stream)
    assert isinstance(runner, PlanSetRunner) and FakeTrtRunner.events == []  # opened lazily
    feed = lambda h, w: {"sample": np.zeros((2, 4, 16, h, w), np.float32), "timestep": np.zeros(1, np.float32),  # noqa: E731
                         "encoder_hidden_states": np.zeros((2, 77, 32), np.float32)}
    assert runner.infer(feed(32, 32))["noise_pred"] == paths[0] and runner.active[1].stream is stream
    assert runner.infer(feed(32, 32))["noise_pred"] == paths[0]
    assert runner.infer(feed(40, 72))["noise_pred"] == paths[1]
    with pytest.raises(InputError, match=r"^size 512x512 is in no size bucket of the unet engine"):
        runner.infer(feed(64, 64))
    runner.close()
    assert FakeTrtRunner.events == [("open", paths[0]), ("close", paths[0]), ("open", paths[1]), ("close", paths[1])]
    with pytest.raises(EngineError, match=r"^unet: this runner was closed; open the component again$"):
        runner.infer(feed(32, 32))
    _build(tmp_path, m, component="text_encoder")
    assert isinstance(loader.open_runner(tmp_path, m, "text_encoder", "tensorrt"), FakeTrtRunner)  # one plan: as before


def test_inspect_shows_buckets_and_plans_per_bucket(tmp_path, builds):
    from t2vrt.cli.inspect import engine_line, engine_summary

    m = _manifest()
    _build(tmp_path, m, tb.BuildOptions(**{**PER_BUCKET.__dict__, "plan_per_bucket": False, "precision": "fp32"}))
    _build(tmp_path, m)
    lines = [engine_line(engine_summary(r)) for r in m.engines.values()]
    assert lines[0].startswith("  engine     unet fp32 tensorrt-rtx 1.7.1.116 sm89 0.0 MiB size buckets 256x256, "
                               "576x320; ")
    assert lines[0].endswith("; batch 1:1:2, frames 8:16:64")
    assert lines[2].endswith("size bucket 576x320 (one plan per bucket, as asked); batch 1:1:2, frames 8:16:64")


def test_build_cli_takes_plan_per_bucket_and_prints_a_line_per_plan(monkeypatch, capsys):
    import argparse

    from t2vrt.cli import build

    sub = argparse.ArgumentParser().add_subparsers()
    build.add_parser(sub)
    args = sub.choices["build"].parse_args(["d", "--sizes", "256x256,576x320", "--plan-per-bucket"])
    assert build.options_from(args).plan_per_bucket
    assert not build.options_from(sub.choices["build"].parse_args(["d"])).plan_per_bucket
    plan = lambda size, cached: {"path": f"engines/unet/{size}.plan", "size": size, "cached": cached, "seconds": 2.0}  # noqa: E731
    monkeypatch.setattr(tb, "build_engines", lambda d, o: {
        "text_encoder": {"path": "engines/text_encoder/k.plan", "cached": True, "seconds": 0.0},
        "unet": {"plans": [plan("256x256", True), plan("576x320", False)], "cached": False, "seconds": 2.0}})
    assert build.run(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "text_encoder   cached             engines/text_encoder/k.plan",
        "unet           cached             engines/unet/256x256.plan (size bucket 256x256)",
        "unet           built in 2.0 s     engines/unet/576x320.plan (size bucket 576x320)"]
