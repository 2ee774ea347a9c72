"""The call and the result as diffusers' TextToVideoSDPipeline: positional order, output types, return_dict,
callbacks, prompt_embeds and lists of generators, each compared with diffusers on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from t2vrt import InputError, Pipeline
from tests.helpers import forbid_backends

PROMPT = "a cat playing piano"
LATENT_TOL, FRAME_TOL = 1e-4, 1 / 255


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def gen(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


@pytest.fixture(scope="module")
def ours(tiny_engines):
    pipe = Pipeline.load(tiny_engines, backend="onnxruntime")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_positional_order_and_np_frames(ours, diffusers_pipe):
    """pipe(prompt, height, width, num_frames, num_inference_steps): frames[0] is the first video, float in [0, 1]."""
    out = ours(PROMPT, 48, 32, 3, 2, generator=gen(1))
    ref = diffusers_pipe(PROMPT, 48, 32, 3, 2, generator=gen(1)).frames
    assert out.frames.shape == ref.shape == (1, 3, 48, 32, 3) and out.frames.dtype == ref.dtype == np.float32
    assert np.abs(out.frames - ref).max() < FRAME_TOL
    assert out.frames[0].shape == (3, 48, 32, 3)


def test_output_types_and_return_dict(ours, diffusers_pipe):
    kw = dict(height=32, width=32, num_frames=2, num_inference_steps=2)
    pt = ours(PROMPT, generator=gen(2), output_type="pt", **kw).frames
    ref_pt = diffusers_pipe(PROMPT, generator=gen(2), output_type="pt", **kw).frames
    assert isinstance(pt, torch.Tensor) and pt.shape == ref_pt.shape == (1, 2, 3, 32, 32)
    assert (pt - ref_pt).abs().max() < FRAME_TOL
    pil = ours(PROMPT, generator=gen(2), output_type="pil", **kw).frames
    ref_pil = diffusers_pipe(PROMPT, generator=gen(2), output_type="pil", **kw).frames
    assert len(pil) == len(ref_pil) == 1 and len(pil[0]) == len(ref_pil[0]) == 2
    assert pil[0][0].size == ref_pil[0][0].size
    assert np.abs(np.asarray(pil[0][1], np.int16) - np.asarray(ref_pil[0][1], np.int16)).max() <= 1
    (latents,) = ours(PROMPT, generator=gen(2), output_type="latent", return_dict=False, **kw)
    (ref_latents,) = diffusers_pipe(PROMPT, generator=gen(2), output_type="latent", return_dict=False, **kw)
    assert rel_l2(latents, ref_latents.numpy()) < LATENT_TOL
    out = ours(PROMPT, generator=gen(2), **kw)
    assert out[0] is out.frames and out["frames"] is out.frames and out.to_tuple() == (out.frames,)
    assert out.uint8.dtype == np.uint8 and out.uint8.shape == (1, 2, 32, 32, 3)


def test_export_to_video_writes_the_same_video(ours, diffusers_pipe, tmp_path):
    """diffusers' own helper on our frames[0] writes what it writes from diffusers' frames[0]."""
    import imageio.v3 as iio
    from diffusers.utils import export_to_video

    kw = dict(height=64, width=64, num_frames=4, num_inference_steps=2)
    a = export_to_video(ours(PROMPT, generator=gen(3), **kw).frames[0], str(tmp_path / "ours.mp4"))
    b = export_to_video(diffusers_pipe(PROMPT, generator=gen(3), **kw).frames[0], str(tmp_path / "ref.mp4"))
    va, vb = iio.imread(a, index=None).astype(np.int16), iio.imread(b, index=None).astype(np.int16)
    assert va.shape == vb.shape == (4, 64, 64, 3)
    # the same frames up to a rounding step, each re-encoded: one flipped 8-bit step can move an H.264 block's
    # choices and a pixel by 20, so the video-level bound is the mean and PSNR, not the largest pixel difference
    mse = float(((va - vb).astype(np.float64) ** 2).mean())
    assert np.abs(va - vb).mean() < 1.0 and (mse == 0 or 10 * np.log10(255**2 / mse) > 40)


def test_callback_steps_and_timesteps(ours, diffusers_pipe):
    kw = dict(height=32, width=32, num_frames=2, num_inference_steps=4, callback_steps=3)
    seen, ref = [], []
    ours(PROMPT, generator=gen(4), output_type="latent", callback=lambda i, t, x: seen.append((i, int(t), x.copy())),
         **kw)
    diffusers_pipe(PROMPT, generator=gen(4), output_type="latent", callback=lambda i, t,
                   x: ref.append((i, int(t), x.clone())), **kw)
    assert [s[:2] for s in seen] == [r[:2] for r in ref] and [s[0] for s in seen] == [0, 3]
    for s, r in zip(seen, ref):
        assert rel_l2(s[2], r[2].numpy()) < LATENT_TOL


def test_callback_on_step_end_replaces_latents(ours):
    calls = []

    def on_step_end(pipe, i, t, kwargs):
        calls.append((pipe, i, sorted(kwargs)))
        return {"latents": kwargs["latents"] * 0} if i == 2 else {}

    out = ours(PROMPT, height=32, width=32, num_frames=2, num_inference_steps=3, seed=0, output_type="latent",
               callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert [c[1] for c in calls] == [0, 1, 2] and calls[0][0] is ours and calls[0][2] == ["latents", "prompt_embeds"]
    assert not np.any(out.latents)


def test_prompt_embeds_match_diffusers(ours, diffusers_pipe):
    with torch.no_grad():
        pos, neg = diffusers_pipe.encode_prompt("a dog", torch.device("cpu"), 1, True, "blurry")
    kw = dict(height=32, width=32, num_frames=2, num_inference_steps=2, output_type="latent")
    a = ours(prompt_embeds=pos, negative_prompt_embeds=neg, generator=gen(5), **kw).latents
    ref = diffusers_pipe(prompt_embeds=pos, negative_prompt_embeds=neg, generator=gen(5), **kw).frames.numpy()
    assert rel_l2(a, ref) < LATENT_TOL
    b = ours("a dog", negative_prompt="blurry", generator=gen(5), **kw).latents
    assert rel_l2(b, ref) < LATENT_TOL
    # mixed: encodes the negative
    c = ours(prompt_embeds=pos.numpy(), negative_prompt="blurry", generator=gen(5), **kw).latents
    assert rel_l2(c, ref) < LATENT_TOL


def test_a_generator_per_prompt(ours, diffusers_pipe):
    kw = dict(height=32, width=32, num_frames=2, num_inference_steps=2, output_type="latent")
    prompts = ["a dog", "a cat"]
    a = ours(prompts, generator=[gen(6), gen(7)], **kw).latents
    ref = diffusers_pipe(prompts, generator=[gen(6), gen(7)], **kw).frames.numpy()
    assert rel_l2(a, ref) < LATENT_TOL
    single = ours(prompts[1:], generator=gen(7), **kw).latents
    assert rel_l2(a[1:], single) < 1e-3  # item k comes from generator k


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(cross_attention_kwargs={"scale": 0.5}),
         r"cross_attention_kwargs=\{'scale': 0.5\} is not supported: .*fuse a LoRA"),
        (dict(clip_skip=-1), r"clip_skip=-1 must be a non-negative integer"),
        (dict(callback_steps=0), r"callback_steps=0 must be a positive integer"),
        (dict(callback_on_step_end=print, callback_on_step_end_tensor_inputs=["noise"]),
         r"callback_on_step_end_tensor_inputs has \['noise'\]; choose from \['latents', 'prompt_embeds', "
         r"'negative_prompt_embeds'\]"),
        (dict(prompt_embeds=np.zeros((1, 77, 32), np.float32)), r"^give prompt or prompt_embeds, not both$"),
        (dict(prompt=None, prompt_embeds=np.zeros((1, 7, 32), np.float32)),
         r"prompt_embeds has shape \(1, 7, 32\); this model takes \[batch, 77, "),
        (dict(prompt=None), r"give a prompt \(a string or a list of strings\) or prompt_embeds"),
        (dict(generator=[gen(0), gen(1)]), r"generator is a list of 2; this draw has batch 1"),
        (dict(seed=1, generator=gen(0)), r"give seed or generator, not both"),
        (dict(output_type="uint8"), r"output_type='uint8'; choose one of np, pil, pt, latent"),
    ],
)
def test_refusals(ours, monkeypatch, kwargs, message):
    forbid_backends(ours, monkeypatch)
    args = dict(prompt=PROMPT, height=32, width=32, num_frames=2, num_inference_steps=2) | kwargs
    with pytest.raises(InputError, match=message):
        ours(**args)


def clip_skip_embeds(pipe, prompt: str, clip_skip: int) -> torch.Tensor:
    """diffusers' encode_prompt with clip_skip, written out: its own line reads ``text_encoder.text_model``,
    which transformers 5 no longer has (the text encoder is the text model there)."""
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    te = pipe.text_encoder
    with torch.no_grad():
        return getattr(te, "text_model", te).final_layer_norm(te(ids, output_hidden_states=True)[-1][-(clip_skip + 1)])


@pytest.mark.parametrize("clip_skip", [2])  # the tiny text encoder's first layer: the furthest skip it has
def test_clip_skip_matches_diffusers(ours, diffusers_pipe, clip_skip):
    kw = dict(height=32, width=32, num_frames=2, num_inference_steps=2, output_type="latent")
    a = ours(PROMPT, negative_prompt="blurry", generator=gen(8), clip_skip=clip_skip, **kw).latents
    pos = clip_skip_embeds(diffusers_pipe, PROMPT, clip_skip)  # the negative keeps the last layer, as in diffusers
    ref = diffusers_pipe(prompt_embeds=pos, negative_prompt="blurry", generator=gen(8), **kw).frames.numpy()
    plain = ours(PROMPT, negative_prompt="blurry", generator=gen(8), **kw).latents
    assert rel_l2(a, ref) < LATENT_TOL and rel_l2(plain, ref) > 1e-3  # the skip changes the result


def test_clip_skip_refused_by_an_older_engine_directory(ours, monkeypatch):
    io = dict(ours.manifest.components["text_encoder"]["io"])
    io["outputs"] = io["outputs"][:1]  # what exports before clip_skip wrote
    monkeypatch.setitem(ours.manifest.components["text_encoder"], "io", io)
    with pytest.raises(InputError,
                       match=r"^clip_skip needs the text encoder's hidden states, .*re-export it with `t2vrt export"):
        ours(PROMPT, height=32, width=32, num_frames=2, clip_skip=1)
    with pytest.raises(InputError, match=r"clip_skip=3 is more than the text encoder's 2 layers; choose 0 to 2"):
        monkeypatch.undo()
        ours(PROMPT, height=32, width=32, num_frames=2, clip_skip=3)
