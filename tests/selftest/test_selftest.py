"""`t2vrt selftest DIR --json OUT` on the session's tiny export, as CI runs it on the CPU: ONNX Runtime CPU fp32
and fp16 against the portable fp32 graph (Polygraphy's comparator), OpenVINO where this t2vrt has that backend,
a TensorRT-RTX build-only pass for sm89, the unavailable backends listed with their install command."""

import importlib.util
import json
import subprocess
import sys

import pytest

from t2vrt.cli import main

# The CLI as on a machine without torch (an engine directory needs only the runtime and the backends' packages):
# importing torch raises ModuleNotFoundError, as where it is not installed. (Where torch is installed, Polygraphy's
# comparator imports it to ask whether an array is a torch tensor; nothing of ours needs it on the CPU.)
RUN = """import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
from t2vrt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _checks(backend: dict) -> dict:
    return {c["name"]: c for c in backend["checks"]}


# The tests on this one run are `slow`: it builds TensorRT-RTX engines (`make test-fast` leaves them out).
@pytest.fixture(scope="module")
def selftest(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("selftest") / "selftest.json"
    manifest_before = (tiny_export / "manifest.json").read_bytes()
    run = subprocess.run([sys.executable, "-c", RUN, "selftest", str(tiny_export), "--json", str(out)],
                         capture_output=True, text=True, timeout=600)
    return run, json.loads(out.read_text()), manifest_before


@pytest.mark.slow
def test_every_available_backend_passes_and_the_table_names_them(selftest):
    run, record, _ = selftest
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert record["passed"] is True
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["backend", "check", "result", "numbers"]
    assert any(line.startswith("onnxruntime-cpu") and "components fp16" in line and " pass " in line for line in lines)
    assert "every available backend passed" in run.stdout


@pytest.mark.slow
def test_components_are_compared_with_tolerances_and_errors(selftest):
    _, record, _ = selftest
    cpu = record["backends"][0]
    assert (cpu["name"], cpu["available"], cpu["passed"]) == ("onnxruntime-cpu", True, True)
    checks = _checks(cpu)
    assert {"components fp32", "components fp16", "generate fp32", "generate fp16", "unet step fp32"} <= set(checks)
    assert record["reference"] == "onnxruntime-cpu fp32 (portable graph)" and len(record["cases"]) == 3
    for precision, atol in (("fp32", 1e-4), ("fp16", 2e-2)):
        results = checks[f"components {precision}"]["details"]["results"]
        assert sorted(results) == ["text_encoder", "unet", "vae_decoder"]
        assert sorted(results["unet"]) == sorted(record["cases"])  # two frame counts, two sizes
        for per_case in results.values():
            for r in per_case.values():
                assert r["passed"] and r["atol"] == atol == record["tolerances"][precision]["atol"]
                for o in r["outputs"].values():
                    assert 0 <= o["max_abs"] <= atol and o["nan"] is False
    fp16 = checks["components fp16"]["details"]["results"]["unet"]
    assert max(o["max_abs"] for r in fp16.values() for o in r["outputs"].values()) > 1e-5  # fp16 really ran
    gen = checks["generate fp16"]["details"]
    assert gen["nan"] == 0 and gen["black_frames"] == 0 and gen["psnr_db"] >= gen["psnr_min_db"] == 30.0
    step = checks["unet step fp32"]["details"]
    assert step["plain"]["median_ms"] > 0 and len(step["plain"]["runs_ms"]) == 3


@pytest.mark.slow
def test_unavailable_backends_say_why_and_how_to_install(selftest):
    _, record, _ = selftest
    cuda = next(b for b in record["backends"] if b["name"] == "onnxruntime-cuda")
    if cuda["available"]:
        pytest.skip("a GPU is visible: ONNX Runtime CUDA runs here (tests/selftest/test_selftest_gpu.py)")
    assert cuda["passed"] is None and cuda["checks"] == []
    assert "CUDAExecutionProvider" in cuda["reason"] and "pip install 't2vrt[gpu]'" in cuda["install"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None, reason="tensorrt_rtx is not installed")
def test_tensorrt_rtx_builds_the_first_bucket_for_sm89_without_touching_the_directory(selftest, tiny_export):
    _, record, manifest_before = selftest
    rtx = next(b for b in record["backends"] if b["name"].startswith("tensorrt"))
    if rtx["mode"] == "run":
        pytest.skip("a GPU is visible: TensorRT runs instead of the build-only pass (test_selftest_gpu.py)")
    assert rtx["name"] == "tensorrt-rtx (build only)" and rtx["passed"] is True
    build = _checks(rtx)["build fp16"]
    assert build["result"] == "pass" and build["details"]["compute_capability"] == "sm89"
    assert build["details"]["sizes"] == ["64x64"]  # build only: one bucket shows the graphs compile for sm89
    unet = build["details"]["engines"]["unet"]
    assert unet["plans"] and all(not p["cached"] for p in unet["plans"])
    assert (tiny_export / "manifest.json").read_bytes() == manifest_before  # built in a private copy
    assert not (tiny_export / "engines").exists()


@pytest.mark.slow
def test_openvino_is_checked_where_t2vrt_has_that_backend(selftest):
    _, record, _ = selftest
    from t2vrt.engines.backends import backend_names

    names = [b["name"] for b in record["backends"]]
    if "openvino" not in backend_names():  # not in the registry: nothing to check, and nothing listed
        assert "openvino" not in names
        return
    ov = record["backends"][names.index("openvino")]
    assert ov["passed"] is (True if ov["available"] else None)


def test_a_backend_off_by_more_than_its_tolerance_fails_the_run(tiny_export, tmp_path, monkeypatch, capsys):
    from t2vrt.selftest import compare

    monkeypatch.setitem(compare.TOLERANCES, "fp16", {"atol": 1e-9, "rtol": 1e-9, "psnr_db": 200.0})
    out = tmp_path / "out.json"
    assert main(["selftest", str(tiny_export), "--json", str(out), "--only", "onnxruntime-cpu"]) == 1
    record = json.loads(out.read_text())
    checks = _checks(record["backends"][0])
    assert record["passed"] is False and checks["components fp32"]["result"] == "pass"
    failed = checks["components fp16"]
    assert failed["result"] == "fail" and "off: " in failed["summary"]
    unet = failed["details"]["results"]["unet"]
    assert all(not r["passed"] and r["outputs"]["noise_pred"]["max_abs"] > 1e-9 for r in unet.values())
    assert checks["generate fp16"]["result"] == "fail"
    assert "FAIL" in capsys.readouterr().out


def test_json_to_a_folder_is_refused_before_anything_runs(tiny_export, tmp_path, capsys):
    assert main(["selftest", str(tiny_export), "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --json") and "is a folder" in err and "\n" not in err


def test_without_polygraphy_one_line_says_how_to_install_it(tiny_export, monkeypatch, capsys):
    import importlib.util as util

    find = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "polygraphy" else find(name, *a))
    assert main(["selftest", str(tiny_export)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("pip install 'polygraphy>=0.53' (it comes with t2vrt[tensorrt] and "
                                            "t2vrt[tensorrt-rtx])")


@pytest.mark.slow  # exports the tiny preset
def test_without_dir_the_tiny_preset_is_exported_checked_and_removed(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out.json"
    assert main(["selftest", "--only", "onnxruntime-cpu", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dir"].startswith("tiny preset") and record["passed"] is True
    assert record["cases"] == ["8f 64x64", "5f 64x64", "8f 32x32"]
    assert [c["result"] for c in record["backends"][0]["checks"]] == ["pass"] * 5
    assert list((tmp_path / "tmp").iterdir()) == []  # the exported model and engines are gone
