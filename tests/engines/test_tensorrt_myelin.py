"""The Myelin failure, reproduced by a real TensorRT-RTX build (sm89, on the CPU): the tiny-odd UNet in fp16 with
frames AND height/width dynamic in one profile (the issue's case: frames 4:9:24, height 32:48:128, width
32:80:128) makes Myelin fail, and the build's one line offers the per-size-bucket build that works.

About 20 s of CPU here and two minutes on a slower machine (the builder's own time), so it is marked ``repro``
(pyproject's addopts deselect it from `make test`) and ``slow``; .ci/run runs it with `pytest -m 'repro or scale'`.
The buckets that do build are in test_tensorrt_buckets.py; the message handling itself, with the builder's recorded
lines, in test_buckets.py."""

import pytest

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (pip install 't2vrt[tensorrt-rtx]')")
pytest.importorskip("diffusers")

from t2vrt.components import Profile  # noqa: E402
from t2vrt.engines.tensorrt.build import BuilderFailed, BuildOptions, build_engines  # noqa: E402
from t2vrt.export import ExportOptions, export_model  # noqa: E402
from t2vrt.export.random_model import build_model  # noqa: E402

EXPORTED = Profile(batch=(1, 1, 1), frames=(4, 9, 24), height=(32, 48, 128), width=(32, 80, 128),
                   decode_chunk=(1, 2, 4))
pytestmark = [pytest.mark.slow, pytest.mark.repro]


def test_a_size_range_fails_in_myelin_and_the_line_offers_the_per_bucket_build(tmp_path):
    model = build_model(tmp_path / "model", "tiny-odd")
    out = export_model(str(model), tmp_path / "engine", ExportOptions(
        components=("text_encoder", "unet"), precisions=("fp32", "fp16"), validate=False, profile=EXPORTED,
        ort_fusion=False))
    manifest = (out / "manifest.json").read_bytes()
    with pytest.raises(BuilderFailed) as e:
        build_engines(out, BuildOptions(frames=(4, 9, 24), height=(32, 48, 128), width=(32, 80, 128),
                                        flavour="tensorrt-rtx", compute_capability=("sm89",), components=("unet",)))
    msg = str(e.value)
    assert msg.startswith("TensorRT could not build unet: ") and "Error Code 1: Myelin" in msg and "\n" not in msg
    assert "; reproduce with `POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert " in msg  # before the fix, not after
    assert msg.endswith("Myelin fails this way when frames and height/width are both dynamic: build per size bucket "
                        f"with `t2vrt build {out} --sizes 80x48`")
    assert (out / "manifest.json").read_bytes() == manifest  # nothing recorded for the failed build
