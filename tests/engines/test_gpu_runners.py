"""The GPU runners for real, against ONNX Runtime on the CPU: tiny engines built here (TensorRT where its bindings
are installed, else TensorRT-RTX on a GPU it supports), every component at two sizes along its dynamic axes (frame
counts, chunk sizes, batches) in two size buckets, with a profile switch between them and back, eager and with CUDA
graphs; the ONNX Runtime CUDA runner in fp32, fp16 and with CUDA graphs; and the pipeline on both backends with
prompt_embeds, on the one stream it owns. Needs only torch with CUDA; skipped elsewhere ("needs a CUDA GPU").

Part of the GPU script's first command (benchmarks/gpu/): ``pytest -m gpu tests/engines/test_gpu_runners.py``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from t2vrt.engines import loader  # noqa: E402
from t2vrt.engines.buckets import Size  # noqa: E402
from t2vrt.engines.onnxruntime import OrtRunner  # noqa: E402
from t2vrt.engines.streams import CudaStream  # noqa: E402
from t2vrt.manifest import load_manifest  # noqa: E402
from tests.helpers import TINY_COMPONENTS, copy_engines  # noqa: E402

pytestmark = pytest.mark.gpu
SIZES = (Size(64, 64), Size(96, 32))  # two buckets (WIDTHxHEIGHT), multiples of the tiny model's 16
# per component, the two values of its non-spatial dynamic axis: frames (UNet), chunk (VAE), batch (text encoder)
COUNTS = {"text_encoder": ("b", (1, 2)), "unet": ("f", (3, 8)), "vae_decoder": ("n", (2, 5)),
          "vae_encoder": ("n", (1, 4))}


def tensorrt_flavour() -> str:
    """The TensorRT to build with here; pytest.skip naming why where neither can."""
    from t2vrt.engines.tensorrt.env import gpu_compute_capability, try_import

    if try_import("tensorrt") is not None:
        return "tensorrt"
    rtx = try_import("tensorrt_rtx")
    if rtx is None:
        pytest.skip("neither tensorrt nor tensorrt_rtx is installed (pip install 't2vrt[tensorrt]')")
    here = gpu_compute_capability()
    if here.upper() not in rtx.ComputeCapability.__members__:
        pytest.skip(f"TensorRT-RTX {rtx.__version__} does not support this GPU ({here})")
    return "tensorrt-rtx"


@pytest.fixture(scope="module")
def engines(tiny_export, tmp_path_factory):
    """A copy of the session export with fp32 engines of every component, one profile per size bucket."""
    from t2vrt.engines.tensorrt.build import BuildOptions, build_engines

    root = copy_engines(tiny_export, tmp_path_factory.mktemp("gpu") / "engines")
    build_engines(root, BuildOptions(sizes=SIZES, flavour=tensorrt_flavour(), precision="fp32",
                                     components=TINY_COMPONENTS))
    return root


def feeds(manifest, name: str, rng) -> list[dict]:
    """Feeds of ``name`` in the order bucket A at both counts, bucket B at both, bucket A again (two switches)."""
    spec, (axis, counts) = manifest.spec(name), COUNTS[name]
    scale = manifest.model.vae_scale
    out = []
    for size in SIZES + SIZES[:1]:
        for n in counts:
            sizes = {"b": 2, "f": 4, "n": 2, "h": size.height // scale, "w": size.width // scale, axis: n}
            feed = {}
            for t in spec.inputs:
                shape = t.shape(sizes)
                feed[t.name] = (rng.integers(0, 49, shape).astype(np.int64) if t.dtype == "int64"
                                else rng.standard_normal(shape).astype(t.dtype))
            out.append(feed)
    return out


def close(got, want, rel: float) -> None:
    """``got`` (a device tensor) within ``rel`` of ``want``'s largest magnitude (TF32 and fp16 rounding)."""
    got = got.float().cpu().numpy()
    assert got.shape == want.shape
    err, scale = float(np.abs(got - want).max()), max(1.0, float(np.abs(want).max()))
    assert err <= rel * scale, f"max error {err:.3g} against a largest magnitude {scale:.3g}"


def compare(root, name: str, runner, stream, rel: float, precision: str = "fp32") -> None:
    m = load_manifest(root)
    ref = OrtRunner(m.onnx_path(root, name, "fp32"), m.spec(name), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # twice over, new values the second time: every captured graph replays on inputs unlike its capture's (a replay
    # that read the previous call's inputs, the race of row 3b, would not match)
    for feed in feeds(m, name, rng) + feeds(m, name, rng):
        want = ref.infer(feed)
        with stream.active():
            got = runner.infer(feed)
        stream.synchronize()
        for key, value in want.items():
            close(got[key], value, rel)
        assert all(v.device.type == "cuda" for v in got.values())


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["eager", "cuda-graphs"])
@pytest.mark.parametrize("name", TINY_COMPONENTS)
def test_tensorrt_runner_matches_onnxruntime_cpu(engines, name, cuda_graphs):
    stream = CudaStream()
    runner = loader.open_runner(engines, load_manifest(engines), name, "tensorrt", precision="fp32",
                                cuda_graphs=cuda_graphs, stream=stream)
    compare(engines, name, runner, stream, rel=1e-2)
    runner.close()


@pytest.mark.parametrize("precision, cuda_graphs, rel", [("fp32", False, 1e-3), ("fp16", False, 3e-2),
                                                         ("fp32", True, 1e-3)])
@pytest.mark.parametrize("name", TINY_COMPONENTS)
def test_onnxruntime_cuda_runner_matches_cpu(tiny_export, name, precision, cuda_graphs, rel):
    from t2vrt.engines.onnxruntime_cuda import OrtBoundRunner, ort_cuda_unusable

    why = ort_cuda_unusable()
    if why:
        pytest.skip(why)
    m, stream = load_manifest(tiny_export), CudaStream()
    runner = OrtBoundRunner(m.onnx_path(tiny_export, name, precision), m.spec(name), "cuda", cuda_graphs=cuda_graphs,
                            stream=stream)
    compare(tiny_export, name, runner, stream, rel)
    runner.close()


@pytest.mark.parametrize("backend", ["tensorrt", "onnxruntime"])
def test_pipeline_with_prompt_embeds_on_the_gpu(engines, backend):
    """Row 1 on a GPU: prompt_embeds (nothing encoded) with CUDA runners; the frames match the CPU pipeline's."""
    from t2vrt.engines.onnxruntime_cuda import ort_cuda_unusable
    from t2vrt.runtime.pipeline import Pipeline

    if backend == "onnxruntime" and ort_cuda_unusable():
        pytest.skip(ort_cuda_unusable())
    ask = dict(num_frames=3, height=64, width=64, num_inference_steps=3, seed=3, progress=False)
    cpu = Pipeline.load(engines, backend="onnxruntime", providers=["CPUExecutionProvider"])
    emb = np.asarray(cpu.encode_prompt(["a cat"], [""]))
    want = cpu(prompt_embeds=emb[1:], negative_prompt_embeds=emb[:1], **ask)
    pipe = Pipeline.load(engines, backend=backend, precision="fp32")
    assert pipe.stream is not None and pipe.stream.handle != 0  # its own stream, not the legacy default
    got = pipe(prompt_embeds=emb[1:], negative_prompt_embeds=emb[:1], **ask)
    assert got.latents.device.type == "cuda"
    np.testing.assert_allclose(np.asarray(got.frames), np.asarray(want.frames), atol=2e-2)
