"""Size buckets without TensorRT: parsing, defaults, the profile selection and its one-line errors."""

import pytest

from t2vrt.components import ModelDims, Profile, component_specs
from t2vrt.engines.buckets import (
    Size,
    bucket_profiles,
    check_sizes,
    default_sizes,
    feed_symbols,
    no_bucket_message,
    parse_sizes,
    select_profile,
)
from t2vrt.errors import InputError

MODELSCOPE = ModelDims(4, 1024, 77, 8, 8, 32)


def test_sizes_are_width_by_height():
    assert parse_sizes("256x256, 576x320,256X256") == (Size(256, 256), Size(576, 320))
    assert str(Size(576, 320)) == "576x320" and Size(576, 320).height == 320
    for bad in ("256", "256x", "ax3", ","):
        with pytest.raises(InputError, match="WIDTHxHEIGHT") as e:
            parse_sizes(bad)
        assert "\n" not in str(e.value)


def test_default_buckets_are_the_export_opt_and_the_native_size():
    assert default_sizes(MODELSCOPE, Profile()) == (Size(256, 256),)  # ModelScope: opt 256x256 = native
    zeroscope = Profile(height=(256, 320, 576), width=(256, 576, 1024))
    assert default_sizes(MODELSCOPE, zeroscope) == (Size(576, 320), Size(576, 256))
    odd = ModelDims(4, 24, 77, 2, 2, 24)  # VAE scale 2, native latent 24: 48 px high
    assert default_sizes(odd, Profile(height=(32, 48, 128), width=(32, 80, 128))) == (Size(80, 48),)
    assert default_sizes(odd, Profile(height=(64, 64, 128), width=(32, 80, 128))) == (Size(80, 64),)  # 48 not held


def test_bucket_checks_name_the_fix():
    with pytest.raises(InputError, match=r"^size 250x256: width and height must be multiples of 64 for this model$"):
        check_sizes(MODELSCOPE, Profile(), [Size(250, 256)])
    with pytest.raises(InputError, match=r"^size 2048x256 is outside the exported range \(width 128..1024, height "
                                         r"128..1024\); re-export with `t2vrt export MODEL --height"):
        check_sizes(MODELSCOPE, Profile(), [Size(2048, 256)])
    b = bucket_profiles(Profile(frames=(8, 16, 64)), [Size(576, 320)])
    assert (b[0].height, b[0].width, b[0].frames) == ((320, 320, 320), (576, 576, 576), (8, 16, 64))


def test_select_profile_is_pure_and_picks_the_holder():
    profiles = [{"frames": [8, 16, 64], "height": [256] * 3, "width": [256] * 3},
                {"frames": [8, 16, 64], "height": [320] * 3, "width": [576] * 3},
                {"frames": [1, 16, 128], "height": [128, 256, 1024], "width": [128, 256, 1024]}]
    assert select_profile(profiles, {"frames": 16, "height": 320, "width": 576}) == 1
    # tightest; batch unconstrained
    assert select_profile(profiles, {"frames": 16, "height": 256, "width": 256, "batch": 7}) == 0
    assert select_profile(profiles, {"frames": 100, "height": 256, "width": 256}) == 2
    assert select_profile(profiles[:2], {"frames": 16, "height": 512, "width": 512}) is None


def test_feed_symbols_divide_scaled_dims():
    spec = component_specs(ModelDims(4, 24, 77, 2, 2, 24))["vae_encoder"]
    assert feed_symbols(spec, {"image": (3, 3, 96, 160)}) == {"n": 3, "h": 48, "w": 80}


def test_no_bucket_message_lists_the_buckets_and_the_command():
    record = {"component": "unet", "profiles": [
        {"profile": {"height": [h] * 3, "width": [w] * 3}, "ranges": {}} for w, h in ((256, 256), (576, 320))]}
    assert no_bucket_message(record, Size(512, 512), "out/ms") == (
        "size 512x512 is in no size bucket of the unet engine (buckets: 256x256, 576x320); "
        "add one with `t2vrt build out/ms --sizes 256x256,576x320,512x512`")


def test_myelin_failure_on_a_range_offers_the_per_bucket_build():
    from t2vrt.engines.tensorrt.builder import _build_failed

    msg = ("IBuilder::buildSerializedNetwork: Error Code 1: Myelin ([myelin_graph.h:1295: attachExceptionMsgToGraph] "
           "MyelinCheckException: runtime_fusion_codegen.cpp:77: CHECK(!mvmf_cudnn.empty()) failed. empty "
           "runtime-fusion "
           "MVMF for '__myl_Fc' In compileGraph at /_src/optimizer/myelin/codeGenerator.cpp:2012)")
    err = str(_build_failed("unet", [("ERROR", msg)], per_bucket="t2vrt build d --sizes 80x48"))
    assert err.endswith("both dynamic: build per size bucket with `t2vrt build d --sizes 80x48`") and "\n" not in err


def test_the_reproduction_comes_before_the_fix_so_the_line_ends_with_what_to_run(monkeypatch, tmp_path):
    from t2vrt.engines.tensorrt import build as tb
    from t2vrt.engines.tensorrt import builder as bb

    def fails(*a, **k):
        raise bb._build_failed("unet", [("ERROR", "Error Code 1: Myelin (bad_alloc)")], "t2vrt build d --sizes 80x48")

    class Flags:  # a TensorRT with strongly typed networks
        STRONGLY_TYPED = 1

    trt = type("trt", (), {"NetworkDefinitionCreationFlag": Flags})
    monkeypatch.setattr(bb, "_build_serialized", fails)
    shapes = {"x": ((1, 2), (1, 2), (1, 2))}
    with pytest.raises(bb.BuilderFailed) as e:
        bb._build_plan(trt, "tensorrt-rtx", tmp_path / "u.onnx", tb.BuildOptions(), ("sm89",), [shapes], tmp_path,
                       "unet")
    head, rest = str(e.value).split("; reproduce with `", 1)
    assert head == "TensorRT could not build unet: Error Code 1: Myelin (bad_alloc)"
    assert rest.index("polygraphy convert") < rest.index("; Myelin fails this way")
    assert rest.endswith("build per size bucket with `t2vrt build d --sizes 80x48`")


def test_sizes_and_ranges_together_are_refused(engine_copy):
    """On a private copy: were the refusal to regress, the build would write into this copy, not the shared export."""
    from t2vrt.engines.tensorrt.build import BuildOptions, build_engines

    before = sorted((str(p.relative_to(engine_copy)), p.stat().st_size) for p in engine_copy.rglob("*"))
    manifest = (engine_copy / "manifest.json").read_bytes()
    with pytest.raises(InputError, match=r"^give either --sizes .* or --height/--width ranges .*, not both$"):
        build_engines(engine_copy, BuildOptions(sizes=(Size(64, 64),), height=(32, 64, 128)))
    with pytest.raises(InputError, match=r"^size 256x256 is outside the exported range"):
        build_engines(engine_copy, BuildOptions(sizes=(Size(256, 256),), flavour="tensorrt-rtx"))
    assert (engine_copy / "manifest.json").read_bytes() == manifest  # refused before anything was written
    assert sorted((str(p.relative_to(engine_copy)), p.stat().st_size) for p in engine_copy.rglob("*")) == before


def test_build_cli_takes_sizes_as_width_by_height():
    import argparse

    from t2vrt.cli import build

    sub = argparse.ArgumentParser().add_subparsers()
    build.add_parser(sub)
    args = sub.choices["build"].parse_args(["d", "--sizes", "256x256,576x320", "--frames", "8:16:64"])
    o = build.options_from(args)
    assert (o.sizes, o.frames, o.height, o.width) == ((Size(256, 256), Size(576, 320)), (8, 16, 64), None, None)
    assert build.options_from(sub.choices["build"].parse_args(["d", "--height", "export"])).height == "export"
    with pytest.raises(SystemExit):
        sub.choices["build"].parse_args(["d", "--sizes", "256by256"])
