"""What the TensorRT runner and backend choice do on a machine without a GPU: clear one-line errors."""

import logging
import types

import pytest

from t2vrt.components import ModelDims, Profile, component_specs
from t2vrt.engines import loader
from t2vrt.engines.tensorrt import env as env
from t2vrt.engines.tensorrt.env import import_tensorrt
from t2vrt.engines.tensorrt.records import check_target, find_engine
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

RTX = types.SimpleNamespace(__version__="1.7.1.116")


def _record(component="unet", **kw):
    return {"component": component, "path": f"engines/{component}/k.plan", "precision": "fp16",
            "flavour": "tensorrt-rtx",
            "trt_version": RTX.__version__, "compute_capability": ["sm89"], "profile": {"frames": [1, 16, 64]}, **kw}


def _manifest(engines):
    m = ModelDims(4, 32, 77, 8, 2, 32)
    comps = {n: {"io": s.to_json(), "onnx": {}} for n, s in component_specs(m).items() if n != "vae_encoder"}
    return Manifest(model=m, profile=Profile(), components=comps, tokenizer={}, vae_scaling_factor=0.18215,
                    engines=engines)


def test_runner_imports_and_needs_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    from t2vrt.engines.tensorrt.runner import TrtRunner

    with pytest.raises(EngineError, match=r"needs a CUDA GPU and torch .* sees none; use backend='onnxruntime'$"):
        TrtRunner("missing.plan", component_specs(ModelDims(4, 32, 77, 8, 2, 32))["unet"], _record())


def test_missing_tensorrt_names_the_extra(monkeypatch):
    monkeypatch.setattr(env, "try_import", lambda name: None)
    with pytest.raises(EngineError, match=r"^tensorrt is not installed; pip install 't2vrt\[tensorrt\]'$"):
        import_tensorrt("tensorrt")
    with pytest.raises(EngineError, match=r"pip install 't2vrt\[tensorrt-rtx\]' .* or 't2vrt\[tensorrt\]'"):
        import_tensorrt("auto")


def test_engine_from_another_version_or_gpu_is_named(monkeypatch):
    with pytest.raises(EngineError, match=r"built with tensorrt-rtx 1.6.0; this is tensorrt-rtx 1.7.1.116: "
                                          r"rebuild with `t2vrt build DIR --flavour tensorrt-rtx`"):
        check_target(_record(trt_version="1.6.0"), RTX, "tensorrt-rtx")
    monkeypatch.setattr(env, "gpu_compute_capability", lambda: "sm86")
    with pytest.raises(EngineError, match=r"built for sm89; this GPU is sm86: rebuild with "
                                          r"`t2vrt build out/ms --compute-capability sm86`"):
        check_target(_record(), RTX, "tensorrt-rtx", root="out/ms")


def test_find_engine_says_why_none_runs(monkeypatch):
    monkeypatch.setattr(env, "try_import", lambda name: RTX)
    record, why = find_engine({"a": _record(trt_version="0.9")}, "unet")
    assert record is None and "rebuild with `t2vrt build DIR --flavour tensorrt-rtx`" in why
    record, why = find_engine({"a": _record()}, "vae_decoder")
    assert record is None and why == "no TensorRT engine for vae_decoder is built; build one with `t2vrt build DIR`"
    monkeypatch.setattr(env, "gpu_compute_capability", lambda: "sm89")
    assert find_engine({"a": _record(precision="fp32"), "b": _record()}, "unet")[0]["precision"] == "fp16"


def test_auto_backend_without_gpu_is_onnxruntime(monkeypatch, caplog):
    monkeypatch.setattr(env, "cuda_available", lambda: False)
    engines = {c: _record(c) for c in ("text_encoder", "unet", "vae_decoder")}
    with caplog.at_level(logging.DEBUG, logger="t2vrt.engines.loader"):  # said with -v on a machine without GPU
        assert loader.resolve_backend("auto", _manifest(engines)) == "onnxruntime"
    assert "tensorrt not used: no CUDA GPU is visible to torch" in caplog.text


def test_auto_backend_with_gpu_and_engines_is_tensorrt(monkeypatch):
    monkeypatch.setattr(env, "cuda_available", lambda: True)
    monkeypatch.setattr(env, "gpu_compute_capability", lambda: "sm89")
    monkeypatch.setattr(env, "try_import", lambda name: RTX)
    engines = {c: _record(c) for c in ("text_encoder", "unet", "vae_decoder")}
    assert loader.resolve_backend("auto", _manifest(engines)) == "tensorrt"
    del engines["vae_decoder"]
    assert loader.resolve_backend("auto", _manifest(engines)) == "onnxruntime"
    with pytest.raises(EngineError, match="vae_decoder: no TensorRT engine can run here: no TensorRT engine for"):
        loader.open_runner("DIR", _manifest(engines), "vae_decoder", "tensorrt")


def test_runner_checks_sizes_against_the_built_ranges():
    """The check TrtRunner.infer does before any TensorRT call (run here without constructing an engine)."""
    np = pytest.importorskip("numpy")
    from t2vrt.engines.tensorrt.runner import TrtRunner
    from t2vrt.errors import InputError

    runner = TrtRunner.__new__(TrtRunner)
    runner.spec = component_specs(ModelDims(4, 32, 77, 8, 2, 32))["vae_decoder"]
    runner.record = _record("vae_decoder", ranges={"n": [1, 8, 16], "h": [8, 16, 32], "w": [8, 16, 32]},
                            profile={"decode_chunk": [1, 8, 16], "height": [64, 128, 256], "width": [64, 128, 256]})
    assert runner._check_shapes({"latent": np.zeros((16, 4, 32, 8), np.float32)}) == 0
    with pytest.raises(InputError,
                       match=r"^vae_decoder: h=40 \(height 320 px\) is outside this engine's range \[8, 32\]; "
                                         r"rebuild with `t2vrt build DIR --height 64:128:320`$"):
        runner._check_shapes({"latent": np.zeros((1, 4, 40, 8), np.float32)})


def test_runner_selects_the_bucket_profile():
    """Two size buckets in one engine: the feed's latent size picks the profile; a size in neither gets one line
    naming the buckets and the command that adds one."""
    np = pytest.importorskip("numpy")
    from t2vrt.engines.tensorrt.runner import TrtRunner
    from t2vrt.errors import InputError

    def bucket(h, w):
        return {"profile": {"batch": [1, 1, 1], "frames": [8, 16, 64], "height": [h, h, h], "width": [w, w, w]},
                "ranges": {"b": [1, 2, 2], "f": [8, 16, 64], "h": [h // 8] * 3, "w": [w // 8] * 3}}

    runner = TrtRunner.__new__(TrtRunner)
    runner.spec = component_specs(ModelDims(4, 32, 77, 8, 2, 32))["unet"]
    profiles = [bucket(256, 256), bucket(320, 576)]
    runner.record = _record("unet", profiles=profiles, **profiles[0])
    feed = lambda f, h, w: {"sample": np.zeros((2, 4, f, h, w), np.float32), "timestep": np.zeros(1, np.float32),  # noqa: E731
                            "encoder_hidden_states": np.zeros((2, 77, 32), np.float32)}
    assert runner._check_shapes(feed(16, 32, 32)) == 0
    assert runner._check_shapes(feed(64, 40, 72)) == 1
    with pytest.raises(InputError, match=r"^size 512x512 is in no size bucket of the unet engine \(buckets: 256x256, "
                                         r"576x320\); add one with `t2vrt build DIR --sizes 256x256,576x320,512x512`$"):
        runner._check_shapes(feed(16, 64, 64))
    with pytest.raises(InputError, match=r"^frames=80 is outside the unet engine's profile \[8, 64\]; rebuild with "
                                         r"`t2vrt build DIR --frames 8:16:80 --sizes 256x256,576x320`$"):
        runner._check_shapes(feed(80, 40, 72))


def test_close_frees_and_later_calls_say_so():
    """Without a GPU: close drops the engine and context and empties torch's CUDA cache (low-memory mode's release)."""
    from t2vrt.engines.tensorrt.graphs import GraphCache
    from t2vrt.engines.tensorrt.runner import TrtRunner

    emptied = []
    r = TrtRunner.__new__(TrtRunner)  # the glue only: no engine is deserialized
    r.spec = component_specs(ModelDims(4, 32, 77, 8, 2, 32))["unet"]
    r.stream = types.SimpleNamespace(synchronize=lambda: emptied.append("sync"),
                                     empty_cache=lambda: emptied.append("empty"))
    r.graphs = GraphCache(r)
    r.graphs.entries[("x",)] = object()
    r.context, r.engine, r.runtime, r.scratch = object(), object(), object(), object()
    r.close()
    assert (len(r.graphs), r.context, r.engine, r.runtime, r.scratch) == (0, None, None, None, None)
    assert emptied == ["sync", "empty"]
    with pytest.raises(EngineError, match=r"^unet: this runner was closed; open the component again$"):
        r.infer({})
