"""components.py: the one MIN:OPT:MAX parser and the one range check (its message names the widening command)."""

import subprocess
import sys

import pytest

from t2vrt.components import (
    COMPONENTS,
    PROFILE_FIELDS,
    SYMBOL_FIELDS,
    TEXT_TO_VIDEO,
    VIDEO_TO_VIDEO,
    ModelDims,
    Profile,
    build_command,
    check_range_order,
    component_specs,
    parse_range,
)
from t2vrt.errors import InputError
from t2vrt.manifest import check_field, export_command


@pytest.mark.parametrize("text,expected", [("8:16:64", (8, 16, 64)), ("16", (16, 16, 16)), ("1:1:1", (1, 1, 1))])
def test_parse_range(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize("text,message", [
    ("8:16", r"^'8:16' is not MIN:OPT:MAX \(e.g. 8:16:64\) or one number$"),
    ("a:b:c", r"^'a:b:c' is not MIN:OPT:MAX"),
    ("64:16:8", r"^range 64:16:8 must be MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX$"),
    ("0:1:2", r"^range 0:1:2 must be MIN:OPT:MAX"),
])
def test_parse_range_refuses(text, message):
    with pytest.raises(InputError, match=message):
        parse_range(text)


def test_range_order_names_the_field():
    with pytest.raises(InputError, match=r"^frames range 9:8:16 must be"):
        check_range_order("frames", (9, 8, 16))


def test_commands_widen_the_range():
    assert build_command("out/ms", frames=(8, 16, 80)) == "t2vrt build out/ms --frames 8:16:80"
    assert export_command("d", batch=(1, 1, 3), decode_chunk=(1, 4, 9)) == \
        "t2vrt export MODEL -o d --overwrite --batch 3 --decode-chunk 1:4:9"


def test_one_message_for_export_and_build_ranges():
    check_field("frames", 16, (8, 16, 64), "somewhere")  # inside: no error
    with pytest.raises(InputError, match=r"^num_frames=80 is outside this range \[8, 64\]; "
                                         r"re-export with `t2vrt export MODEL -o DIR --overwrite --frames 8:16:80`$"):
        check_field("frames", 80, (8, 16, 64), "this range", name="num_frames")
    with pytest.raises(InputError, match=r"^height=64 is outside the unet engine's profile \[128, 512\]; "
                                         r"rebuild with `t2vrt build e --height 64:256:512`$"):
        check_field("height", 64, (128, 256, 512), "the unet engine's profile", "build", "e")
    with pytest.raises(InputError, match=r"^decode_chunk=0 is outside .* \[1, 8\]; it must be at least 1$"):
        check_field("decode_chunk", 0, (1, 4, 8), "the range")


def test_names_and_maps_agree_with_the_specs():
    specs = component_specs(ModelDims(4, 32, 77, 8, 2, 32))
    assert tuple(specs) == COMPONENTS and set(TEXT_TO_VIDEO) < set(VIDEO_TO_VIDEO) == set(COMPONENTS)
    for name, spec in specs.items():
        symbols = {d if isinstance(d, str) else d[0] for t in spec.inputs for d in t.dims if not isinstance(d, int)}
        assert {SYMBOL_FIELDS[s] for s in symbols} == set(PROFILE_FIELDS[name])
        assert set(Profile().symbol_ranges(name, ModelDims(4, 32, 77, 8, 2, 32))) == symbols


@pytest.mark.parametrize("module", ["t2vrt", "t2vrt.cli"])
def test_python_dash_m(module):
    res = subprocess.run([sys.executable, "-m", module, "build", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "MIN:OPT:MAX" in res.stdout
