"""The TensorRT timing cache through a build, with a builder stand-in that behaves as TensorRT's Python bindings
document it (IBuilderConfig in pyCore.cpp, the text ``help(tensorrt_rtx.IBuilderConfig)`` prints):
``set_timing_cache(cache, ignore_mismatch=False)`` returns False for a cache made on another device, and
``get_timing_cache()`` returns None when no cache is set."""

import logging
import types

import pytest

from t2vrt.engines.tensorrt import builder
from t2vrt.engines.tensorrt.build import BuildOptions

OWN = b"cache of this GPU"


class FakeConfig:
    def __init__(self, keeps_cache=True):
        self.cache, self.keeps_cache, self.refused = None, keeps_cache, []
        self.builder_optimization_level = None

    def create_timing_cache(self, data):
        return types.SimpleNamespace(data=bytes(data), serialize=lambda: OWN + b" (updated)")

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache.data not in (b"", OWN) and not ignore_mismatch:  # another device's header: refused
            self.refused.append(cache.data)
            return False
        self.cache = cache if self.keeps_cache else None
        return True

    def get_timing_cache(self):
        return self.cache

    def add_optimization_profile(self, profile):
        pass


def fake_trt(config):
    builder = types.SimpleNamespace(create_network=lambda flags: "network", create_builder_config=lambda: config,
                                    create_optimization_profile=lambda: types.SimpleNamespace(set_shape=lambda *a: 0),
                                    build_serialized_network=lambda network, cfg: b"plan")
    parser = types.SimpleNamespace(parse_from_file=lambda path: True)
    return types.SimpleNamespace(Builder=lambda logger: builder, OnnxParser=lambda network, logger: parser,
                                 NetworkDefinitionCreationFlag=types.SimpleNamespace(), __version__="10.12.0")


@pytest.fixture()
def run_build(monkeypatch, tmp_path):
    monkeypatch.setattr(builder, "make_logger", lambda trt, keep=None: types.SimpleNamespace(messages=[]))
    monkeypatch.setattr(builder, "gpu_name", lambda: "NVIDIA H100 80GB HBM3", raising=False)

    def run(config):
        return builder._build_plan(fake_trt(config), "tensorrt", tmp_path / "m.onnx", BuildOptions(), ("sm90",),
                                 [{"x": [[1], [1], [1]]}], tmp_path, "unet")

    return run


def test_a_foreign_cache_is_set_aside_and_the_build_goes_on(run_build, tmp_path, caplog):
    """Row 5: set_timing_cache's False is checked; the build runs on a new cache and writes it (main built with
    no cache and then failed on get_timing_cache() being None)."""
    path = builder.timing_cache_path(tmp_path, "tensorrt", "10.12.0", ("sm90",))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"cache of an H200")
    config = FakeConfig()
    with caplog.at_level(logging.WARNING, logger="t2vrt.engines.tensorrt.build"):
        plan, _ = run_build(config)
    assert plan == b"plan" and config.refused == [b"cache of an H200"]
    assert path.read_bytes() == OWN + b" (updated)" and "does not match this GPU or TensorRT" in caplog.text


def test_no_cache_from_the_builder_is_not_a_failed_build(run_build, tmp_path, caplog):
    """Row 5: get_timing_cache() returning None is logged, the plan is still returned."""
    with caplog.at_level(logging.WARNING, logger="t2vrt.engines.tensorrt.build"):
        plan, _ = run_build(FakeConfig(keeps_cache=False))
    assert plan == b"plan" and "kept no timing cache" in caplog.text
    assert not builder.timing_cache_path(tmp_path, "tensorrt", "10.12.0", ("sm90",)).exists()


def test_cache_file_is_per_gpu_model(monkeypatch, tmp_path):
    """Row 5: an H100 and an H200 are both sm90; their timing caches are apart."""
    paths = set()
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        monkeypatch.setattr(builder, "gpu_name", lambda name=name: name)
        paths.add(builder.timing_cache_path(tmp_path, "tensorrt", "10.12.0", ("sm90",)).name)
    assert paths == {"timing_cache-tensorrt-10.12.0-sm90-nvidia-h100-80gb-hbm3.bin",
                     "timing_cache-tensorrt-10.12.0-sm90-nvidia-h200.bin"}


def test_rtx_builds_require_user_allocation():
    """Row 4: TensorRT-RTX engines are built capturable (REQUIRE_USER_ALLOCATION, a flag of tensorrt_rtx's API)."""
    trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed")
    from t2vrt.engines.tensorrt.env import make_logger

    trt_builder = trt.Builder(make_logger(trt))
    options = BuildOptions(flavour="tensorrt-rtx")
    config = builder._config(trt, trt_builder, options, "tensorrt-rtx", ("sm89",), {}, None)
    assert config.get_flag(trt.BuilderFlag.REQUIRE_USER_ALLOCATION)
