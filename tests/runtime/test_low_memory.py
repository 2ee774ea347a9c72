"""Low-memory mode (one resident component), chunked VAE calls, feed-forward chunking at export."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from t2vrt import Pipeline
from t2vrt.runtime import pipeline as pipeline_module
from tests.helpers import TINY_PROFILE

PROMPT = "a panda eating bamboo on a rock"
CALL = dict(num_frames=3, height=32, width=48, num_inference_steps=2, seed=4, progress=False)


@pytest.fixture()
def events(monkeypatch):
    """Spy on open_runner and on every opened runner's close: a list of ("open" | "close", component)."""
    log: list[tuple[str, str]] = []
    real_open = pipeline_module.open_runner

    def spy_open(root, manifest, name, *args):
        runner = real_open(root, manifest, name, *args)
        real_close = runner.close
        runner.close = lambda: (log.append(("close", name)), real_close())[1]
        log.append(("open", name))
        return runner

    monkeypatch.setattr(pipeline_module, "open_runner", spy_open)
    return log


STAGES = ("text_encoder", "unet", "vae_decoder")
ONE_AT_A_TIME = [(e, name) for name in STAGES for e in ("open", "close")]


def test_low_memory_gives_the_same_frames(tiny_engines, events):
    full = Pipeline.load(tiny_engines)
    a = full(PROMPT, decode_chunk_size=2, **CALL)
    assert events == [("open", n) for n in STAGES]
    events.clear()
    full(PROMPT, **CALL)
    assert events == []  # everything stayed loaded for the repeated call
    full.close()

    events.clear()
    low = Pipeline.load(tiny_engines, low_memory=True)
    b = low(PROMPT, decode_chunk_size=2, **CALL)
    assert events == ONE_AT_A_TIME  # each loaded, run and released before the next is loaded
    assert low._runners == {}
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.latents, b.latents)

    events.clear()
    low(PROMPT, **CALL)
    assert events == ONE_AT_A_TIME  # and again on the next call


def test_video_to_video_gets_the_policy(tiny_v2v_engines, events):
    """VideoToVideoPipeline opens runners through Pipeline.runner, so low-memory mode needs nothing of its own."""
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    t, y, x, c = np.ogrid[:3, :32, :48, :3]
    frames = (127.5 + 80 * np.sin(0.3 * x + 0.2 * y + 0.5 * t + c)).astype(np.uint8)
    kw = dict(strength=0.5, num_inference_steps=2, seed=2, progress=False, decode_chunk_size=2)
    a = VideoToVideoPipeline.load(tiny_v2v_engines)(PROMPT, frames, **kw)
    events.clear()
    b = VideoToVideoPipeline.load(tiny_v2v_engines, low_memory=True)(PROMPT, frames, **kw)
    stages = ("text_encoder", "vae_encoder", "unet", "vae_decoder")
    assert events == [(e, name) for name in stages for e in ("open", "close")]
    np.testing.assert_array_equal(a.frames, b.frames)


def test_low_memory_latent_output_never_loads_the_vae(tiny_engines, events):
    Pipeline.load(tiny_engines, low_memory=True)(PROMPT, output_type="latent", **CALL)
    assert events == ONE_AT_A_TIME[:4]


def test_opening_a_runner_releases_the_others(tiny_engines, events):
    """The policy lives in runner(): a stage that forgets release() still leaves one component resident."""
    low = Pipeline.load(tiny_engines, low_memory=True)
    low.runner("unet")
    low.runner("vae_decoder")
    assert events == [("open", "unet"), ("close", "unet"), ("open", "vae_decoder")]
    assert list(low._runners) == ["vae_decoder"]


class NoClose:
    """A runner whose backend cannot give its memory back."""

    backend = "fake"

    def __init__(self, spec):
        self.spec = spec


def test_a_runner_that_cannot_release_is_reported(tiny_engines, monkeypatch, caplog):
    monkeypatch.setattr(pipeline_module, "open_runner", lambda root, m, name, *a: NoClose(m.spec(name)))
    low = Pipeline.load(tiny_engines, low_memory=True)
    with caplog.at_level(logging.WARNING, logger="t2vrt.runtime.pipeline"):
        low.runner("unet")
        low.runner("vae_decoder")
    assert "the fake runner of unet cannot release its memory (it has no close())" in caplog.text
    assert list(low._runners) == ["vae_decoder"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="t2vrt.runtime.pipeline"):
        Pipeline.load(tiny_engines).runner("unet")
    assert caplog.text == ""  # only low-memory mode needs releasing


def test_closed_runner_says_so(tiny_engines):
    from t2vrt.errors import EngineError

    pipe = Pipeline.load(tiny_engines)
    unet = pipe.runner("unet")
    pipe.close()
    with pytest.raises(EngineError, match="unet: this runner was closed; open the component again"):
        unet.infer({})


def test_chunked_calls_and_padding(tiny_engines, monkeypatch):
    """Calls of at most `chunk` frames, none below the profile minimum, the padding's outputs dropped."""
    from dataclasses import replace

    pipe = Pipeline.load(tiny_engines)
    video = pipe(PROMPT, decode_chunk_size=1, **CALL)
    vae = pipe.runner("vae_decoder")
    sizes, real = [], vae.infer
    monkeypatch.setattr(vae, "infer", lambda feed: sizes.append(len(feed["latent"])) or real(feed))
    monkeypatch.setattr(pipe.manifest, "profile", replace(pipe.manifest.profile, decode_chunk=(2, 2, 8)))
    frames = pipe.decode(video.latents, 2)
    assert sizes == [2, 2]  # 3 frames: a call of 2, then 1 padded to the minimum of 2
    np.testing.assert_allclose(frames, video.images, atol=1e-5)


@pytest.mark.parametrize("chunk,message", [
    (0, r"^decode_chunk_size=0 is outside this engine directory's range \[1, 8\]; it must be at least 1$"),
    (9,
     r"^decode_chunk_size=9 is outside this engine directory's range \[1, 8\]; re-export with `t2vrt export "
     r"\S+/tiny -o \S+ --overwrite --decode-chunk 1:4:9`$"),
])
def test_bad_chunk(tiny_engines, chunk, message):
    from t2vrt import InputError

    with pytest.raises(InputError, match=message):
        Pipeline.load(tiny_engines)(PROMPT, decode_chunk_size=chunk, **CALL)


def test_chunk_above_the_frame_count_is_clamped(tiny_engines, caplog):
    pipe = Pipeline.load(tiny_engines)
    with caplog.at_level(logging.INFO, logger="t2vrt.runtime.pipeline"):
        assert pipe._chunk(None, 2) == 2
        assert caplog.text == ""  # the default needs no word
        assert pipe._chunk(8, 3) == 3
    assert "decode_chunk_size=8 is more than the 3 frames to decode: decoding them in one call" in caplog.text


# -- feed-forward chunking at export ----------------------------------------------------------------------------------
FF_SLICES = 3


@pytest.fixture(scope="module")
def ff_engines(tiny_model, tmp_path_factory):
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("engines") / "tiny-ff"
    return export_model(str(tiny_model), out, ExportOptions(profile=Profile(**TINY_PROFILE), ff_chunks=FF_SLICES,
                                                                  ort_fusion=False))


@pytest.fixture(scope="module")
def transformer_blocks(tiny_model) -> int:
    """How many transformer blocks (spatial and temporal) the tiny UNet has, counted by diffusers' class."""
    from diffusers import UNet3DConditionModel
    from diffusers.models.attention import BasicTransformerBlock

    unet = UNet3DConditionModel.from_pretrained(tiny_model / "unet")
    return sum(isinstance(m, BasicTransformerBlock) for m in unet.modules())


@pytest.mark.slow  # its own export with feed-forward chunking
def test_ff_chunking_is_recorded_and_validated(ff_engines, transformer_blocks):
    from t2vrt.manifest import load_manifest

    m = load_manifest(ff_engines)
    unet = m.components["unet"]
    assert unet["ff_chunking"] == {"slices": FF_SLICES, "blocks": transformer_blocks}
    assert all(o["rel_l2"] < 1e-4 for s in unet["validation"]["fp32"]["shapes"] for o in s["outputs"].values())
    assert "ff_chunking" not in m.components["vae_decoder"]


def test_negative_ff_chunks_is_refused(tiny_model, tmp_path):
    from t2vrt.errors import ExportError
    from t2vrt.export import ExportOptions, export_model

    with pytest.raises(ExportError,
                       match=r"ff_chunks=-2 \(--ff-chunking\) must be >= 0; 0 or 1 keeps the feed-forward whole"):
        export_model(str(tiny_model), tmp_path / "out", ExportOptions(ff_chunks=-2))
    assert not (tmp_path / "out").exists()


def weight_uses(path) -> list[int]:
    """For each 2-D weight of the graph, how many nodes read it."""
    import onnx

    g = onnx.load(str(path)).graph
    weights = {t.name for t in g.initializer if len(t.dims) == 2}
    counts = {w: 0 for w in weights}
    for node in g.node:
        for name in node.input:
            if name in counts:
                counts[name] += 1
    return sorted(counts.values())


@pytest.mark.slow  # its own export with feed-forward chunking
def test_ff_graph_is_sliced(ff_engines, tiny_engines, transformer_blocks):
    from t2vrt.manifest import load_manifest

    sliced = weight_uses(load_manifest(ff_engines).onnx_path(ff_engines, "unet", "fp32"))
    whole = weight_uses(load_manifest(tiny_engines).onnx_path(tiny_engines, "unet", "fp32"))
    # Two feed-forward weights (GEGLU's projection, the output) per block, each read once per slice; a GEGLU the
    # export split into two products (export.modules.SplitGEGLU) has two projection weights.
    split = load_manifest(ff_engines).components["unet"].get("geglu_split", 0)
    assert sliced.count(FF_SLICES) == 2 * transformer_blocks + split and FF_SLICES not in whole
    assert len(sliced) == len(whole) and max(whole) == 1


@pytest.mark.slow  # its own export with feed-forward chunking
@pytest.mark.parametrize("num_frames", [2, 7])  # the trace had 5 frames
def test_ff_chunked_engine_generates_at_other_frame_counts(ff_engines, tiny_engines, num_frames):
    kw = dict(CALL, num_frames=num_frames, output_type="latent")
    a = Pipeline.load(ff_engines)(PROMPT, **kw).latents
    b = Pipeline.load(tiny_engines)(PROMPT, **kw).latents
    assert a.shape == b.shape and a.shape[2] == num_frames
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5


# -- command line -----------------------------------------------------------------------------------------------------
def test_cli_flags(tiny_engines, tmp_path, events):
    from t2vrt.cli import build_parser, main
    from t2vrt.runtime.media.video import read_video

    export = ["export", "m", "-o", "x"]
    assert build_parser().parse_args(export).ff_chunking == 0
    assert build_parser().parse_args(export + ["--ff-chunking"]).ff_chunking == 8
    assert build_parser().parse_args(export + ["--ff-chunking", "3"]).ff_chunking == 3
    assert build_parser().parse_args(["upscale", "d", "in.mp4", "p", "--low-memory"]).low_memory
    out = tmp_path / "v.gif"
    args = ["generate", str(tiny_engines), "a cat", "--frames", "2", "--height", "32", "--width", "32", "--steps", "1"]
    assert main(args + ["--low-memory", "-o", str(out)]) == 0
    assert read_video(out).shape == (2, 32, 32, 3)
    assert events == ONE_AT_A_TIME
