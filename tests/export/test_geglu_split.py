"""GEGLU's projection is exported as two products (export.modules.SplitGEGLU): the same numbers as diffusers' GEGLU,
no Slice over the doubled width in the UNet graph, recorded in the manifest, and diffusers' module put back."""

import pytest
import torch

from t2vrt.export.modules import SplitGEGLU, geglu_split

GEGLU = pytest.importorskip("diffusers.models.activations").GEGLU


@pytest.mark.parametrize("bias", [True, False])
def test_split_geglu_matches_diffusers(bias):
    torch.manual_seed(0)
    g = GEGLU(24, 40, bias=bias).eval()
    x = torch.randn(3, 7, 24)
    with torch.no_grad():
        want, got = g(x), SplitGEGLU(g)(x)
    assert got.shape == want.shape == (3, 7, 40)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_the_halves_share_the_weights():
    g = GEGLU(8, 6)
    s = SplitGEGLU(g)
    assert s.value.weight.data_ptr() == g.proj.weight.data_ptr()
    assert s.gate.weight.data_ptr() == g.proj.weight[6:].data_ptr()
    assert s.gate.bias.data_ptr() == g.proj.bias[6:].data_ptr()


def test_the_originals_come_back_and_off_changes_nothing():
    block = torch.nn.Sequential(GEGLU(8, 6), torch.nn.Linear(6, 6), torch.nn.Sequential(GEGLU(6, 4)))
    with geglu_split(block) as n:
        assert n == 2 and isinstance(block[0], SplitGEGLU) and isinstance(block[2][0], SplitGEGLU)
    assert isinstance(block[0], GEGLU) and isinstance(block[2][0], GEGLU)
    with geglu_split(block, on=False) as n:
        assert n == 0 and isinstance(block[0], GEGLU)


def test_the_exported_unet_has_no_geglu_slice_and_records_it(tiny_export, tiny_model):
    import onnx
    from diffusers import UNet3DConditionModel

    from t2vrt.manifest import load_manifest

    unet = load_manifest(tiny_export).components["unet"]
    gegl = sum(isinstance(m, GEGLU) for m in UNet3DConditionModel.from_pretrained(tiny_model / "unet").modules())
    assert gegl > 0 and unet["geglu_split"] == gegl
    graph = onnx.load(tiny_export / unet["onnx"]["fp32"]["path"], load_external_data=False).graph
    ff_slices = [n.name for n in graph.node if n.op_type == "Slice" and "/ff/" in n.name]
    assert ff_slices == []
    assert all(o["rel_l2"] < 1e-4 for s in unet["validation"]["fp32"]["shapes"] for o in s["outputs"].values())
