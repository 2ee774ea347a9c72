"""The pipeline around GPU runners, on the CPU: latents where the runners' outputs live (prompt_embeds included),
host synchronizations per denoising step, the stream every stage runs on, the stage lock, and the VAE encoder's
last chunk padded to the profile's minimum."""

import threading
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import t2vrt.runtime.pipeline as pipeline  # noqa: E402
from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner  # noqa: E402
from tests.engines.standins import RecordingStream  # noqa: E402

ASK = dict(num_frames=3, height=32, width=48, num_inference_steps=3, seed=3, progress=False)


class DeviceOnlyRunner:
    """A GPU runner's contract: outputs are tensors on its ``output_device``, and what it is fed must be there.

    A real CUDA runner copies a NumPy feed in at its edge, but then returns CUDA tensors that meet the host-side
    latents in the scheduler, where torch refuses the mix ("Expected all tensors to be on the same device"); this
    stand-in refuses the host array at the door instead, so a CPU run shows the same mistake."""

    def __init__(self, inner):
        self.inner, self.spec, self.backend, self.output_device = inner, inner.spec, "onnxruntime", inner.device

    def infer(self, feed):
        host = sorted(n for n, a in feed.items() if not isinstance(a, torch.Tensor))
        if host:
            raise AssertionError(f"{self.spec.name}: host arrays {host} fed to a device runner")
        return self.inner.infer(feed)

    def close(self):
        self.inner.close()


def bound(stream, device_only=()):
    def open_runner(root, m, name, *a, **k):
        kw = {"stream": stream} if stream else {}
        r = OrtBoundRunner(m.cpu_onnx_path(root, name, "fp32"), m.spec(name), "cpu", **kw)
        return DeviceOnlyRunner(r) if name in device_only else r

    return open_runner


@pytest.fixture(scope="module")
def reference(tiny_engines):
    pipe = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")
    emb = pipe.encode_prompt(["a cat"], [""])
    return pipe("a cat", **ASK), np.asarray(emb)


def test_prompt_embeds_put_the_latents_on_the_runners_device(tiny_engines, reference, monkeypatch):
    """Row 1: with prompt_embeds and negative_prompt_embeds nothing is encoded; the latents and embeddings still go
    to the UNet's device at the loop's edge, and the frames are the NumPy path's."""
    ref, emb = reference
    monkeypatch.setattr(pipeline, "open_runner", bound(None, device_only=("unet",)))
    pipe = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")
    out = pipe(prompt_embeds=emb[1:], negative_prompt_embeds=emb[:1], **ASK)
    assert isinstance(out.latents, torch.Tensor)
    np.testing.assert_allclose(np.asarray(out.frames), np.asarray(ref.frames), atol=1e-5)


def test_one_host_sync_per_step_and_every_stage_on_the_stream(tiny_engines, reference, monkeypatch):
    """Row 2: during the denoising loop the host reads a device value at most once per step (the NaN guard), no
    runner synchronizes the stream, and every runner call happens with the pipeline's stream current."""
    stream = RecordingStream()
    monkeypatch.setattr(pipeline, "open_runner", bound(stream))
    pipe = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")
    pipe.stream = stream  # what pipeline_stream gives a GPU backend
    reads, inside = [], []
    for name in ("__bool__", "item", "cpu", "numpy", "tolist", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **k):
            if inside:
                reads.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    denoise = pipeline.Pipeline.denoise

    def watched(self, *a, **k):
        inside.append(True)
        try:
            return denoise(self, *a, **k)
        finally:
            inside.clear()

    monkeypatch.setattr(pipeline.Pipeline, "denoise", watched)
    entered = []
    infer = OrtBoundRunner.infer
    monkeypatch.setattr(OrtBoundRunner, "infer", lambda self, feed: entered.append(stream.entered) or infer(self, feed))
    out = pipe("a cat", **ASK)
    assert len(reads) <= ASK["num_inference_steps"] and stream.syncs == 0
    assert all(n > 0 for n in entered)  # the pipeline's stream was entered before every runner call
    np.testing.assert_allclose(np.asarray(out.frames), np.asarray(reference[0].frames), atol=1e-5)


def test_stage_methods_take_the_call_lock(tiny_engines, monkeypatch):
    """Row 9: a public stage method (not only __call__) waits for the TensorRT call lock."""
    monkeypatch.setattr(pipeline, "open_runner", bound(None))
    pipe = pipeline.Pipeline.load(tiny_engines, backend="onnxruntime")
    from t2vrt.engines.backends import get_backend

    pipe.backend_impl = get_backend("tensorrt")  # the backend whose runners serve one call at a time
    done = threading.Event()
    with pipe._call_lock:
        worker = threading.Thread(target=lambda: (pipe.encode_texts(["a cat"]), done.set()))
        worker.start()
        assert not done.wait(0.3)
    worker.join(30)
    assert done.is_set()


def test_video_encoder_pads_its_last_chunk_to_the_profile_minimum(tiny_v2v_engines, monkeypatch):
    """Row 9: a last chunk below the profile's minimum is padded (TensorRT's setInputShape refuses a shape outside
    the profile) and the padding's latents dropped: the same latents as unpadded calls where the shape is allowed."""
    from t2vrt.runtime.noise import Noise
    from t2vrt.runtime.video2video import VideoToVideoPipeline

    frames = np.random.default_rng(0).uniform(0, 1, (5, 32, 48, 3)).astype(np.float32)
    pipe = VideoToVideoPipeline.load(tiny_v2v_engines, backend="onnxruntime")
    expected = np.asarray(pipe.encode_video(frames, 2, Noise(1, None)))
    pipe.manifest.profile = replace(pipe.manifest.profile, decode_chunk=(2, 4, 8))
    real = pipe.runner("vae_encoder")
    seen = []

    class ProfileBound:
        spec, backend = real.spec, real.backend

        def infer(self, feed):
            seen.append(len(feed["image"]))
            if len(feed["image"]) < 2:
                raise AssertionError("TensorRT refuses a chunk below the profile's minimum")
            return real.infer(feed)

    pipe._runners["vae_encoder"] = ProfileBound()
    got = np.asarray(pipe.encode_video(frames, 2, Noise(1, None)))
    assert seen == [2, 2, 2] and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
