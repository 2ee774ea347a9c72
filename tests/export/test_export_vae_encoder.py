"""The VAE encoder (video-to-video): exported, validated and profiled by the generic export path."""

from __future__ import annotations

from t2vrt.manifest import load_manifest


def test_vae_encoder_exported_and_validated(tiny_v2v_engines):
    m = load_manifest(tiny_v2v_engines)
    assert set(m.components) == {"text_encoder", "unet", "vae_decoder", "vae_encoder"}
    spec = m.spec("vae_encoder")
    assert [t.name for t in spec.inputs] == ["image"]
    assert [t.name for t in spec.outputs] == ["latent_mean", "latent_std"]
    s = m.model.vae_scale
    assert spec.dynamic_axes()["image"] == {0: "n", 2: f"{s}h", 3: f"{s}w"}
    assert spec.shapes({"n": 3, "h": 4, "w": 6}) == {
        "image": (3, 3, 4 * s, 6 * s), "latent_mean": (3, 4, 4, 6), "latent_std": (3, 4, 4, 6),
    }
    v = m.components["vae_encoder"]["validation"]["fp32"]
    assert sorted(r["sizes"]["n"] for r in v["shapes"]) == [1, 3]  # frame batches unlike the trace's 2
    assert all(set(r["outputs"]) == {"latent_mean", "latent_std"} for r in v["shapes"])
    assert all(o["rel_l2"] < 1e-4 for r in v["shapes"] for o in r["outputs"].values())


def test_vae_encoder_profile_is_the_decode_chunk_range(tiny_v2v_engines):
    """The encoder runs over chunks of frames as the decoder does: same n range, same pixel ranges."""
    m = load_manifest(tiny_v2v_engines)
    enc = m.profile.symbol_ranges("vae_encoder", m.model)
    assert enc == m.profile.symbol_ranges("vae_decoder", m.model)
    assert enc["n"] == m.profile.decode_chunk
    assert enc["h"] == tuple(v // m.model.vae_scale for v in m.profile.height)


def test_vae_encoder_graph_axes_are_dynamic(tiny_v2v_engines):
    import onnx

    m = load_manifest(tiny_v2v_engines)
    g = onnx.load(str(m.onnx_path(tiny_v2v_engines, "vae_encoder", "fp32")), load_external_data=False).graph
    axes = m.spec("vae_encoder").dynamic_axes()
    for t in list(g.input) + list(g.output):
        dims = t.type.tensor_type.shape.dim
        assert all(dims[i].dim_param and not dims[i].dim_value for i in axes[t.name]), t.name
