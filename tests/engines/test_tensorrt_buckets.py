"""Size buckets built for real: fp16 TensorRT-RTX engines (sm89, on the CPU) of a tiny model unlike the fixtures
(cross-attention width 24, head dim 4, 16 norm groups, VAE scale 2, non-square export profile), frames dynamic,
two (height, width) buckets as two optimization profiles of one engine per component. About 30 s of CPU (export
and two builds), so marked slow; the selection logic itself is tested without TensorRT in test_buckets.py."""

import json

import pytest

trt = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx is not installed (pip install 't2vrt[tensorrt-rtx]')")
pytest.importorskip("diffusers")

from t2vrt.components import Profile  # noqa: E402
from t2vrt.engines.buckets import Size, record_sizes  # noqa: E402
from t2vrt.engines.tensorrt.build import BuildOptions, build_engines  # noqa: E402
from t2vrt.engines.tensorrt.records import check_profile  # noqa: E402
from t2vrt.errors import InputError  # noqa: E402
from t2vrt.export import ExportOptions, export_model  # noqa: E402
from t2vrt.export.random_model import build_model  # noqa: E402

# The failing case: frames 4:9:24, height 32:48:128, width 32:80:128 (fp16 Myelin fails with size dynamic).
EXPORTED = Profile(batch=(1, 1, 1), frames=(4, 9, 24), height=(32, 48, 128), width=(32, 80, 128),
                   decode_chunk=(1, 2, 4))
SIZES = (Size(80, 48), Size(64, 64))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("buckets")
    model = build_model(root / "model", "tiny-odd")
    out = export_model(str(model), root / "engine", ExportOptions(components=("text_encoder", "unet", "vae_decoder"),
                       precisions=("fp32", "fp16"), validate=False, profile=EXPORTED, ort_fusion=False))
    results = build_engines(out, BuildOptions(sizes=SIZES, frames=(4, 9, 24), flavour="tensorrt-rtx",
                                              compute_capability=("sm89",), components=("unet", "vae_decoder")))
    engines = json.loads((out / "manifest.json").read_text())["engines"]
    return out, {r["component"]: engines[results[r["component"]]["key"]] for r in engines.values()}


def test_each_bucket_is_a_recorded_profile(built):
    _, records = built
    unet, vae = records["unet"], records["vae_decoder"]
    assert record_sizes(unet) == record_sizes(vae) == list(SIZES)
    assert [p["ranges"] for p in unet["profiles"]] == [
        {"b": [1, 2, 2], "f": [4, 9, 24], "h": [24, 24, 24], "w": [40, 40, 40]},  # VAE scale 2
        {"b": [1, 2, 2], "f": [4, 9, 24], "h": [32, 32, 32], "w": [32, 32, 32]},
    ]
    assert unet["shapes"][1]["encoder_hidden_states"] == [[1, 77, 24], [2, 77, 24], [2, 77, 24]]
    assert unet["precision"] == "fp16" and unet["compute_capability"] == ["sm89"]


def test_the_request_selects_its_bucket(built):
    _, records = built
    assert check_profile(records["unet"], {"batch": 1, "frames": 24, "height": 48, "width": 80}) == 0
    assert check_profile(records["unet"], {"batch": 1, "frames": 4, "height": 64, "width": 64}) == 1
    assert check_profile(records["vae_decoder"], {"decode_chunk": 3, "height": 64, "width": 64}) == 1


def test_a_size_in_no_bucket_is_one_line(built):
    root, records = built
    with pytest.raises(InputError) as e:
        check_profile(records["unet"], {"batch": 1, "frames": 9, "height": 48, "width": 64}, root=str(root))
    assert str(e.value) == (f"size 64x48 is in no size bucket of the unet engine (buckets: 80x48, 64x64); "
                            f"add one with `t2vrt build {root} --sizes 80x48,64x64,64x48`")


def test_one_plan_per_bucket_for_real(built, monkeypatch):
    """--plan-per-bucket: two plan files, two records of one profile each; the multi-profile engine they replace is
    retired, the other component's kept; the request selects the plan of its bucket, and a size in none gets the same
    line. Built for the VAE decoder (size-dependent like the UNet, a few seconds instead of fifteen)."""
    from t2vrt.engines.tensorrt import env as env
    from t2vrt.engines.tensorrt.records import check_plans, find_engines

    root, records = built
    r = build_engines(root,
                      BuildOptions(sizes=SIZES, frames=(4, 9, 24), flavour="tensorrt-rtx", compute_capability=("sm89",),
                                         components=("vae_decoder",), plan_per_bucket=True))["vae_decoder"]
    engines = json.loads((root / "manifest.json").read_text())["engines"]
    plans = [engines[p["key"]] for p in r["plans"]]
    assert [record_sizes(p) for p in plans] == [[s] for s in SIZES] and all(len(p["profiles"]) == 1 for p in plans)
    assert all((root / p["path"]).stat().st_size > 0 for p in plans) and len({p["path"] for p in plans}) == 2
    assert not (root / records["vae_decoder"]["path"]).exists() and (root / records["unet"]["path"]).is_file()
    monkeypatch.setattr(env, "gpu_compute_capability", lambda: None)  # no GPU here: the sm89 plans count as runnable
    vae, _ = find_engines(engines, "vae_decoder")
    assert [p["path"] for p in vae] == [p["path"] for p in plans]
    assert check_plans(vae, {"decode_chunk": 3, "height": 64, "width": 64}) == (plans[1], 0)
    with pytest.raises(InputError,
                       match=r"^size 64x48 is in no size bucket of the vae_decoder engine \(buckets: 80x48, 64x64\)"):
        check_plans(vae, {"decode_chunk": 2, "height": 48, "width": 64})
