"""Real TensorRT-RTX engines built on the CPU for the tiny model: profile, cache, rebuild, clean logs."""

import argparse
import json

import pytest

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (pip install 't2vrt[tensorrt-rtx]')")
pytest.importorskip("diffusers")

from t2vrt.cli.build import add_parser, options_from  # noqa: E402
from t2vrt.engines.tensorrt.build import BuildOptions, build_engines  # noqa: E402
from t2vrt.engines.tensorrt.env import cuda_available  # noqa: E402
from t2vrt.engines.tensorrt.records import check_profile  # noqa: E402
from t2vrt.errors import EngineError, InputError  # noqa: E402
from tests.helpers import copy_engines, reshape_graph  # noqa: E402

TARGET = ("sm89",)  # one compute capability keeps the CPU build quick
OPTIONS = BuildOptions(frames=(1, 16, 64), height=(64, 128, 256), width=(64, 128, 256), batch=1,
                       flavour="tensorrt-rtx", compute_capability=TARGET)
# The one warning TensorRT may give on these graphs: int64 token ids are bound as int64 by every runner.
ALLOWED_WARNINGS = ("Make sure input input_ids has Int64 binding",)


@pytest.fixture(scope="module")
def engine_dir(tiny_export, tmp_path_factory):
    """A copy of the session export: the builds below add engines to its manifest."""
    return copy_engines(tiny_export, tmp_path_factory.mktemp("trt") / "engine")


@pytest.fixture(scope="module")
def first_build(engine_dir):
    return build_engines(engine_dir, OPTIONS)


def _engines(engine_dir):
    return json.loads((engine_dir / "manifest.json").read_text())["engines"]


@pytest.mark.slow  # real TensorRT-RTX builds
def test_build_is_clean_and_records_the_profile(engine_dir, first_build):
    assert sorted(first_build) == ["text_encoder", "unet", "vae_decoder"]
    for name, r in first_build.items():
        assert not r["cached"] and (engine_dir / r["path"]).stat().st_size > 0
        bad = [m for s, m in r["messages"] if s != "WARNING" or not any(a in m for a in ALLOWED_WARNINGS)]
        assert bad == [], name
    unet = next(r for r in _engines(engine_dir).values() if r["component"] == "unet")
    assert unet["profile"] == {"batch": [1, 1, 1], "frames": [1, 16, 64], "height": [64, 128, 256],
                               "width": [64, 128, 256]}
    assert unet["shapes"]["sample"] == [[1, 4, 1, 8, 8], [2, 4, 16, 16, 16], [2, 4, 64, 32, 32]]
    assert (unet["precision"], unet["flavour"], unet["compute_capability"]) == ("fp16", "tensorrt-rtx", list(TARGET))


@pytest.mark.slow  # real TensorRT-RTX builds
def test_same_inputs_are_a_cache_hit(engine_dir, first_build):
    before = {n: (engine_dir / r["path"]).stat().st_mtime_ns for n, r in first_build.items()}
    again = build_engines(engine_dir, OPTIONS)
    assert all(r["cached"] for r in again.values())
    assert {n: (engine_dir / r["path"]).stat().st_mtime_ns for n, r in again.items()} == before


@pytest.mark.slow  # real TensorRT-RTX builds
def test_a_changed_range_rebuilds_only_the_engine_it_shapes(engine_dir, first_build):
    """--decode-chunk shapes the VAE decoder alone: it is rebuilt and its old plan retired, the other two are cache
    hits. (A frames change rebuilds the UNet the same way, through the same key; the VAE builds in a second where the
    UNet takes ten.)"""
    cli = argparse.ArgumentParser().add_subparsers()
    add_parser(cli)
    args = cli.choices["build"].parse_args([str(engine_dir), "--decode-chunk", "1:2:4", "--frames", "1:16:64",
                                            "--height", "64:128:256", "--width", "64:128:256", "--batch", "1",
                                            "--flavour", "tensorrt-rtx", "--compute-capability", "sm89"])
    changed = build_engines(args.dir, options_from(args))
    assert {n: r["cached"] for n, r in changed.items()} == {"text_encoder": True, "unet": True, "vae_decoder": False}
    assert not (engine_dir / first_build["vae_decoder"]["path"]).exists()  # replaced, not left behind
    records = _engines(engine_dir)
    assert sorted(r["component"] for r in records.values()) == ["text_encoder", "unet", "vae_decoder"]
    vae = records[changed["vae_decoder"]["key"]]
    assert vae["profile"]["decode_chunk"] == [1, 2, 4]
    check_profile(vae, {"decode_chunk": 4, "height": 256, "width": 64})
    with pytest.raises(InputError, match=r"decode_chunk=6 is outside the vae_decoder engine's profile \[1, 4\]; "
                                         r"rebuild with `t2vrt build DIR --decode-chunk 1:2:6`"):
        check_profile(vae, {"decode_chunk": 6})


@pytest.mark.parametrize("options, message", [
    (BuildOptions(flavour="tensorrt-rtx", compute_capability=("sm90",)), "compute capability sm90 is not one"),
    (BuildOptions(flavour="tensorrt-rtx", compute_capability=TARGET, height=(60, 128, 256)), "multiple of 16"),
    (BuildOptions(flavour="tensorrt-rtx", compute_capability=TARGET, frames=(16, 8, 64)), "MIN <= OPT <= MAX"),
    pytest.param(BuildOptions(flavour="tensorrt-rtx", compute_capability=("current",)),
                 "no GPU is visible here for --compute-capability current",
                 marks=pytest.mark.skipif(cuda_available(), reason="a GPU is visible: 'current' is valid here")),
])
def test_bad_options_are_one_line_errors(engine_dir, options, message):
    with pytest.raises((EngineError, InputError), match=message) as e:
        build_engines(engine_dir, BuildOptions(**{**options.__dict__, "components": ("text_encoder",)}))
    assert "\n" not in str(e.value)


@pytest.mark.slow  # real TensorRT-RTX builds
def test_the_warning_check_can_fail(tmp_path):
    """A computed Reshape dim with allowzero=0 makes TensorRT warn (x.shape[0] // 2 can be 0 at the profile's min of 1);
    after clean_graph it does not."""
    from t2vrt.engines.tensorrt.env import make_logger
    from t2vrt.export.onnx import clean_graph

    def warnings(path):
        logger = make_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        assert parser.parse_from_file(str(path)) and parser.num_errors == 0
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (1, 2, 6), (4, 2, 6), (8, 2, 6))
        config.add_optimization_profile(profile)
        config.num_compute_capabilities = 1
        config.set_compute_capability(trt.ComputeCapability.SM89, 0)
        assert builder.build_serialized_network(network, config) is not None
        return [m for s, m in logger.messages if "zeroIsPlaceHolder" in m]

    path = tmp_path / "m.onnx"
    reshape_graph(path)
    assert len(warnings(path)) == 1
    clean_graph(path)
    assert warnings(path) == []


@pytest.mark.slow  # real TensorRT-RTX builds
def test_workspace_limit_is_applied_and_keyed(engine_dir, first_build):
    """--max-workspace sets TensorRT's WORKSPACE pool, is part of the engine key, and its record says so."""
    from t2vrt.engines.tensorrt.builder import _config, make_logger

    builder = trt.Builder(make_logger(trt))
    limited = BuildOptions(**{**OPTIONS.__dict__, "max_workspace_mb": 48})
    config = _config(trt, builder, limited, "tensorrt-rtx", TARGET, {}, engine_dir / "unused.bin")
    assert config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 48 << 20
    cli = argparse.ArgumentParser().add_subparsers()
    add_parser(cli)
    args = cli.choices["build"].parse_args([str(engine_dir), "--batch", "1", "--flavour", "tensorrt-rtx",
                                            "--compute-capability", "sm89", "--components", "text_encoder",
                                            "--max-workspace", "48"])
    built = build_engines(args.dir, options_from(args))["text_encoder"]
    assert not built["cached"] and _engines(engine_dir)[built["key"]]["max_workspace_mb"] == 48
    assert build_engines(args.dir, options_from(args))["text_encoder"]["cached"]
    with pytest.raises(InputError, match="--max-workspace 0 MiB must be at least 1"):
        build_engines(engine_dir, BuildOptions(**{**limited.__dict__, "max_workspace_mb": 0}))


def test_myelin_bad_alloc_says_what_to_fix():
    from t2vrt.engines.tensorrt.builder import _build_failed

    msg = ("IBuilder::buildSerializedNetwork: Error Code 1: Myelin ([myelin_graph.h:1295: attachExceptionMsgToGraph] "
           "Unexpected exception std::bad_alloc In compileGraph at /_src/optimizer/myelin/codeGenerator.cpp:2012)")
    err = str(_build_failed("unet", [("WARNING", "w"), ("ERROR", msg)]))
    assert err.startswith("TensorRT could not build unet: IBuilder") and "both dynamic: fix one of them" in err
    assert "fix one" not in str(_build_failed("unet", [("ERROR", "some other failure")]))
