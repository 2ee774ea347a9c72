"""`t2vrt bench` with several pipelines per side (issue 21): diffusers in float32 and bfloat16 beside ours, quality
against float32, the UNet step's GFLOP/s against the measured matrix-product peak, and the processor's line."""

from __future__ import annotations

import json

import pytest

from t2vrt.cli import main

SMALL = ["--runs", "1", "--warmup", "0", "--frames", "2", "--steps", "2", "--height", "32", "--width", "32",
         "--threads", "1"]


def test_bench_against_diffusers_float32_and_bfloat16(tiny_engines, tiny_model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(tiny_engines), "--diffusers", str(tiny_model), "--torch-dtype", "float32", "bfloat16",
                 "--json", str(out), *SMALL]) == 0
    data = json.loads(out.read_text())
    names = [s["name"] for s in data["sides"]]
    assert names == ["t2vrt", "diffusers float32", "diffusers bfloat16"]
    assert data["config"]["reference"] == "diffusers float32"
    ours, f32, bf16 = data["sides"]
    assert ours["like_for_like"] and ours["quality"]["ok"] and ours["quality"]["psnr_db"] > 50
    q = bf16["quality"]  # bf16 arithmetic differs from float32: measured, not judged by the frame tolerance
    assert not bf16["like_for_like"] and bf16["against"] == "diffusers float32"
    assert q["psnr_db"] < ours["quality"]["psnr_db"]
    assert (q["nan_frames"], q["black_frames"]) == (0, 0) and 0 < q["ssim"] <= 1
    assert "quality" not in f32 and set(ours["ratios"]) == {"diffusers float32", "diffusers bfloat16"}
    r = ours["ratios"]["diffusers bfloat16"]["total_s"]
    assert r["median"] == pytest.approx(bf16["runs"][0]["total_s"] / ours["runs"][0]["total_s"])
    f = data["flops"]
    assert f["unet_step_gflop"] > 0 and f["unet_batch_per_step"] == 2
    assert set(f["matmul_peak_gflops"]) == {"float32", "bfloat16"}
    for side, dtype in ((ours, "float32"), (bf16, "bfloat16")):
        e = side["efficiency"]
        assert e["peak_gflops"] == f["matmul_peak_gflops"][dtype]
        step_s = side["summary"]["unet_per_step_s"]["median"]
        assert e["achieved_gflops"] == pytest.approx(f["unet_step_gflop"] / step_s)
        assert e["fraction_of_peak"] == pytest.approx(e["achieved_gflops"] / e["peak_gflops"])
    assert data["parity"]["ok"] and data["speedup"]["total_s"]["pairs"]  # the earlier keys: ours against float32
    text = capsys.readouterr().out
    assert "| pipeline | end to end (s) | vs diffusers float32 | vs diffusers bfloat16 | PSNR vs diffusers float32" \
        in text
    assert "| diffusers bfloat16 (torch cpu bfloat16) |" in text and "UNet step: " in text


def test_bench_several_of_ours(tiny_engines, tmp_path):
    """--ours BACKEND:PRECISION names each pipeline; the same one twice gets a second name, not a merged record."""
    out = tmp_path / "bench.json"
    args = ["--ours", "onnxruntime:fp32", "onnxruntime", "--json", str(out), *SMALL]
    assert main(["bench", str(tiny_engines), *args]) == 0
    data = json.loads(out.read_text())
    assert [s["name"] for s in data["sides"]] == ["t2vrt onnxruntime fp32", "t2vrt onnxruntime fp32 (2)"]
    assert all(len(s["runs"]) == 1 and s["precision"] == "fp32" for s in data["sides"]) and "flops" not in data


@pytest.mark.parametrize("bad", ["nosuch:fp32", "onnxruntime:int4"])
def test_bench_refuses_an_unknown_side(tiny_engines, capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(["bench", str(tiny_engines), "--ours", bad])
    assert e.value.code == 2 and "expected BACKEND:PRECISION" in capsys.readouterr().err


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse avx avx2 fma avx512f avx512_bf16 avx512_vnni

processor\t: 1
model name\t: other
"""


def test_machine_line_names_family_model_and_instruction_sets():
    from t2vrt.bench.machine import cpu_fields

    f = cpu_fields(CPUINFO)
    assert f == {"vendor": "AuthenticAMD", "family": "25", "model": "17", "model_name": "AMD EPYC 9B14",
                 "isa": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]}
    assert cpu_fields("model name\t: Some CPU\nflags\t: sse2\n")["isa"] == []


def test_unet_flops_grow_with_the_batch(tiny_model):
    from t2vrt.bench.flops import efficiency, matmul_peak_gflops, unet_call_flops

    one = unet_call_flops(tiny_model, 1, 4, (8, 8), 77)
    assert one > 0 and unet_call_flops(tiny_model, 2, 4, (8, 8), 77) == pytest.approx(2 * one)
    assert unet_call_flops(tiny_model, 1, 8, (8, 8), 77) > 1.5 * one  # more frames, more work
    peak = matmul_peak_gflops("fp32", threads=1, n=256, repeats=2)
    assert peak > 0.1
    e = efficiency(2e9, 0.5, 8.0)
    assert e == {"achieved_gflops": 4.0, "peak_gflops": 8.0, "fraction_of_peak": 0.5, "step_floor_s": 0.25}
