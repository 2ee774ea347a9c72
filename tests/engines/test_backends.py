"""Backends as objects: the one registry of names, auto's order, LoadOptions and what each backend answers."""

import logging

import pytest

from t2vrt.cli import build_parser
from t2vrt.cli.options import load_options
from t2vrt.engines import backends, loader
from t2vrt.engines.backends import REGISTRY, Backend, LoadOptions, auto_order, backend_names, get_backend
from t2vrt.errors import EngineError, InputError


def test_one_registry_feeds_names_and_auto():
    assert backend_names() == ("auto", "onnxruntime", "openvino", "tensorrt")
    assert backend_names(auto=False) == tuple(sorted(REGISTRY))
    assert [b.name for b in auto_order()] == list(REGISTRY)  # the registry's order is auto's
    assert get_backend("onnxruntime") is get_backend("onnxruntime")  # one object per backend
    with pytest.raises(EngineError,
                       match=r"^unknown backend 'ov'; choose one of auto, onnxruntime, openvino, tensorrt$"):
        get_backend("ov")


def test_what_each_backend_answers():
    ort, trt = get_backend("onnxruntime"), get_backend("tensorrt")
    assert ort.shares_runners and not trt.shares_runners
    assert ort.precision_label(None) == "fp32" and trt.precision_label(None) == "the built engines' precision"
    assert ort.intact_files("fp16") == {"precisions": ("fp16",), "engines": False}
    assert trt.intact_files(None) == {"precisions": (), "engines": True}
    assert trt.unusable(None) == "no TensorRT engines are built (t2vrt build DIR)"
    with pytest.raises(EngineError, match=r"^ONNX Runtime providers \['NopeExecutionProvider'\] are not available"):
        ort.check_options(LoadOptions(providers=["NopeExecutionProvider"]))


def test_a_registered_backend_joins_auto_and_the_names(monkeypatch, caplog):
    """What adding a backend takes: one class, one registry entry (here placed first in auto's order)."""

    class Never(Backend):
        name = "never"

        def unusable(self, manifest, options=None):
            return "not on this machine"

    monkeypatch.setattr(backends, "REGISTRY", {"never": "x:Never", **REGISTRY})
    monkeypatch.setitem(backends._INSTANCES, "never", Never())
    monkeypatch.setattr(get_backend("tensorrt"), "unusable", lambda m, o=None: "no engines")
    monkeypatch.setattr(get_backend("openvino"), "unusable", lambda m, o=None: "not faster here")
    assert "never" in backend_names() and LoadOptions(backend="never").backend == "never"
    monkeypatch.setattr(loader, "_machine_has_gpu", lambda: True)  # the reasons are INFO where a GPU is
    with caplog.at_level(logging.INFO, logger="t2vrt.engines.loader"):
        assert loader.resolve("auto", None).name == "onnxruntime"
    assert caplog.records[-1].getMessage().endswith(
        "(never not used: not on this machine; tensorrt not used: no engines; openvino not used: not faster here)")


def test_load_options_are_checked_and_merged():
    o = LoadOptions.of("onnxruntime", threads=2, low_memory=None)
    assert o == LoadOptions(backend="onnxruntime", threads=2)
    assert LoadOptions.of(o, precision="fp16").precision == "fp16"
    assert LoadOptions(providers=["CPUExecutionProvider"]).providers == ("CPUExecutionProvider",)  # hashable, frozen
    for bad, message in [(dict(threads=0), r"^threads=0 must be at least 1"),
                         (dict(precision="int8"), r"^precision='int8'"),
                         (dict(low_memory="yes"), r"^low_memory='yes'"), (dict(providers="CPU"), r"^providers='CPU'")]:
        with pytest.raises(InputError, match=message):
            LoadOptions(**bad)
    with pytest.raises(InputError, match=r"^unexpected load options \['thread'\]"):
        LoadOptions.of(None, thread=2)


@pytest.mark.parametrize("command", ["batch DIR P.jsonl -o OUT", "serve DIR", "generate DIR PROMPT"])
def test_batch_serve_and_generate_take_the_load_options(command):
    args = build_parser().parse_args(command.split() + ["--low-memory", "--threads", "3", "--providers",
                                                        "CPUExecutionProvider",
                                                        "--backend", "onnxruntime"])
    assert load_options(args) == LoadOptions("onnxruntime", None, ("CPUExecutionProvider",), 3, True)
