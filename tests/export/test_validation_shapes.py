"""Validation shapes: the standard and the small set keep the rule; "auto" picks small for big components."""

from __future__ import annotations

import pytest

from t2vrt.components import ModelDims
from t2vrt.errors import ExportError
from t2vrt.export import ExportOptions, export_model, exporter
from t2vrt.export.exporter import trace_sizes, validation_shape_set, validation_sizes
from t2vrt.manifest import load_manifest

REAL = ModelDims(latent_channels=4, text_hidden=1024, max_length=77, vae_scale=8, unet_downsample=8, sample_size=32)


@pytest.mark.parametrize("small", [False, True])
def test_shapes_keep_the_rule(small):
    """Two shapes unlike the trace's, batch 1 and 2, two frame counts (not the trace's), non-square latents."""
    trace = trace_sizes(REAL)
    shapes = validation_sizes(REAL, small)
    assert len(shapes) == 2 and all(s != trace for s in shapes)
    assert {s["b"] for s in shapes} == {1, 2}
    assert len({s["f"] for s in shapes}) == 2 and trace["f"] not in {s["f"] for s in shapes}
    assert all(s["h"] != s["w"] and s["h"] % 8 == 0 and s["w"] % 8 == 0 for s in shapes)
    assert all((s["h"], s["w"]) != (trace["h"], trace["w"]) for s in shapes)


def test_small_is_less_work():
    work = lambda shapes: sum(s["b"] * s["f"] * s["h"] * s["w"] for s in shapes)  # noqa: E731
    assert work(validation_sizes(REAL, small=True)) * 8 <= work(validation_sizes(REAL))


def test_auto_by_parameter_count():
    big, tiny = exporter.SMALL_VALIDATION_PARAMS + 1, 1000
    assert validation_shape_set(ExportOptions(), big) == "small"
    assert validation_shape_set(ExportOptions(), tiny) == "standard"
    assert validation_shape_set(ExportOptions(validation="standard"), big) == "standard"
    assert validation_shape_set(ExportOptions(validation="small"), tiny) == "small"


@pytest.mark.slow  # its own UNet export
def test_auto_small_in_the_manifest(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, "SMALL_VALIDATION_PARAMS", 0)  # the tiny UNet counts as big
    out = export_model(str(tiny_model), tmp_path / "e", ExportOptions(components=("unet",), ort_fusion=False))
    m = load_manifest(out)
    v = m.components["unet"]["validation"]["fp32"]
    assert v["shape_set"] == "small"
    assert [s["sizes"] for s in v["shapes"]] == validation_sizes(m.model, small=True)


def test_unknown_shape_set(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="validation='tiny'; choose one of auto, standard, small"):
        export_model(str(tiny_model), tmp_path / "e", ExportOptions(validation="tiny"))
