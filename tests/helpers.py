"""Helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

# What the session's tiny engine directory declares; parity tests use other shapes than the export's trace
# (b=2, f=5, 32x48 pixels).
TINY_PROFILE = dict(batch=(1, 1, 2), frames=(1, 8, 16), height=(32, 64, 128), width=(32, 64, 128),
                    decode_chunk=(1, 4, 8))
# Every component and precision the session export holds: one export serves text-to-video, video-to-video and fp16.
TINY_COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
TINY_PRECISIONS = ("fp32", "fp16")


def forbid_backends(pipe, monkeypatch):
    """``pipe`` with every runner refused: a check that must come before any backend runs fails the test otherwise."""
    monkeypatch.setattr(pipe, "runner", lambda name: pytest.fail(f"the {name} backend ran before the check"))
    return pipe


def copy_engines(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    """A private copy of an engine directory for a test that changes it, less the components in ``drop``
    (their files and their manifest entries), as if they had never been exported."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for name in drop:
        del manifest["components"][name]
        shutil.rmtree(dst / "onnx" / name)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def reshape_graph(path: Path) -> None:
    """y1 = x.reshape(x.shape[0] // 2, 4, 6) (computed), y2 = x.reshape([0, -1]) (GroupNorm-style placeholder)."""
    import onnx
    from onnx import TensorProto, helper

    def c(name, v):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [len(v)], v))

    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        c("i0", [0]), c("two", [2]), c("rest", [4, 6]), c("placeholder", [0, -1]),
        helper.make_node("Gather", ["s", "i0"], ["n"]),  # the index 0 is no dimension value
        helper.make_node("Div", ["n", "two"], ["half"]),
        helper.make_node("Concat", ["half", "rest"], ["shape1"], axis=0),
        helper.make_node("Reshape", ["x", "shape1"], ["y1"], name="computed"),
        helper.make_node("Reshape", ["x", "placeholder"], ["y2"], name="placeholder"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 6])],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def diffusers_run(pipe, prompt, seed: int, **kw):
    """diffusers' latents and its output_type="np" frames from ONE run of ``pipe``: the pipeline's __call__ makes
    its "np" frames from the latents with exactly ``video_processor.postprocess_video(decode_latents(latents))``,
    so the frames equal a second run with output_type="np" at half the cost."""
    import torch

    latents = pipe(prompt, generator=torch.Generator("cpu").manual_seed(seed), output_type="latent", **kw).frames
    with torch.no_grad():
        frames = pipe.video_processor.postprocess_video(video=pipe.decode_latents(latents), output_type="np")
    return latents.numpy(), frames
