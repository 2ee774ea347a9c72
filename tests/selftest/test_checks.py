"""The selftest's checks one by one on ONNX Runtime CPU (real runners, the session's tiny export): the size-bucket
switch, the budget, and the refusal of a directory without the fp32 reference."""

import json

import pytest

pytest.importorskip("polygraphy")

from t2vrt.cli import main  # noqa: E402
from t2vrt.selftest import checks  # noqa: E402
from t2vrt.selftest.targets import detect  # noqa: E402
from tests.helpers import copy_engines  # noqa: E402


@pytest.fixture(scope="module")
def context(tiny_export):
    from t2vrt.manifest import load_manifest

    return checks.Context.make(tiny_export, load_manifest(tiny_export))


def test_cases_are_two_frame_counts_and_two_buckets(context):
    assert [str(c) for c in context.cases] == ["8f 64x64", "5f 64x64", "8f 32x32"]
    feeds = context.feeds[context.cases[1]]
    assert feeds["unet"]["sample"].shape == (2, 4, 5, 8, 8) and feeds["vae_decoder"]["latent"].shape == (5, 4, 8, 8)
    assert feeds["text_encoder"]["input_ids"].shape == (2, 77)


def test_profile_switch_runs_a_b_a_within_tolerance(context):
    cpu = detect(context.manifest, ("onnxruntime-cpu",))[0]
    check = checks.profile_switch(context, cpu, "fp16")
    assert check.result == "pass" and check.summary.startswith("64x64 -> 32x32 -> 64x64")
    assert [r["passed"] for r in check.details["against_reference"]] == [True, True, True]
    assert check.details["first_again"]["outputs"]["noise_pred"]["max_abs"] == 0.0  # the same call, the same output


def test_a_spent_budget_is_not_a_pass(tiny_export, capsys):
    assert main(["selftest", str(tiny_export), "--budget-s", "0.001", "--only", "onnxruntime-cpu", "--json", "-"]) == 1
    record = json.loads(capsys.readouterr().out)  # --json -: the JSON alone on stdout, no table
    cpu = record["backends"][0]
    assert record["passed"] is False and cpu["passed"] is False
    assert {c["result"] for c in cpu["checks"]} == {"not run"}
    assert "raise --budget-s" in cpu["checks"][0]["summary"]


def test_an_unknown_only_name_is_refused_with_the_names(tiny_export, capsys):
    assert main(["selftest", str(tiny_export), "--only", "onnxruntime-cuda,tensorrt-xl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --only tensorrt-xl: no such backend; choose from onnxruntime-cpu, onnxruntime-cuda")


def test_a_directory_without_fp32_graphs_is_refused_in_one_line(tiny_export, tmp_path, capsys):
    d = copy_engines(tiny_export, tmp_path / "fp16-only")
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["components"]["unet"]["onnx"]["fp32"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    assert main(["selftest", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no fp32 ONNX graph of unet" in err
    assert err.endswith(f"re-export with `t2vrt export MODEL -o {d} --precision fp32 fp16`")
    assert not list(tmp_path.glob(".t2vrt-selftest-*"))  # refused before any copy
