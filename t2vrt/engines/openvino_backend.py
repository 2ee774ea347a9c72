"""The openvino backend: the portable fp32 ONNX graphs on OpenVINO's CPU plugin, in fp32 or bf16.

``auto`` on a CPU: bf16 runs here (ONNX Runtime has no bf16 kernels for these operators on x86); fp32 runs where it
was measured faster on this kind of CPU (``FP32_MEASURED``); a GPU (TensorRT engines, or ONNX Runtime on CUDA)
comes first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from t2vrt.engines import openvino as ovb
from t2vrt.engines.backends import Backend, LoadOptions
from t2vrt.engines.base import Runner
from t2vrt.errors import EngineError
from t2vrt.manifest import Manifest

log = logging.getLogger(__name__)

# fp32 on the CPU: the small preset's UNet step (batch 2, 16 frames, 32x32 latents), OpenVINO with static shapes
# against ONNX Runtime's fused graph, warm medians in one process (benchmarks/RESULTS.md, "OpenVINO").
# Quiet, 2026-12-07, Intel Xeon with AMX, 2 cores (RESULTS.md, "bf16 on the CPU against diffusers in bf16"): UNet
# step 2.19 s (ONNX Runtime) against 1.93 s (OpenVINO fp32), 1.13x. auto keeps ONNX Runtime for fp32 all the same:
# OpenVINO compiles every new shape (27 s for the small UNet, a dozen steps), ONNX Runtime none.
FP32_MEASURED = {"openvino_faster": False, "ratio": 1.13, "cpu": "an Intel Xeon with AMX"}
# bf16 against ONNX Runtime fp32 on the same CPU: the UNet step's speed-up and the frames' PSNR against diffusers
# fp32, from the quiet five-pipeline bench (small preset with every layer active, 16 frames of 256x256, 25 DDIM steps,
# 2 runs after a warm-up, 2026-12-07, Intel Xeon family 6 model 167 with AMX; benchmarks/RESULTS.md, "bf16 on the
# CPU against diffusers in bf16"): UNet step 2.19 s against 0.770 s, frames 42.4 dB.
BF16_MEASURED = {"speedup": 2.84, "psnr_db": 42.4}
_told = False


def bf16_hint() -> str:
    """The one line that tells a user on a bf16 CPU what ``--precision bf16`` gives and costs ("" elsewhere)."""
    if ovb.openvino_missing() or not ovb.cpu_bf16() or not BF16_MEASURED["speedup"]:
        return ""
    return (f"this CPU has bf16 ({ovb.cpu_bf16()}): --precision bf16 (torch_dtype=torch.bfloat16) ran the UNet step "
            f"{BF16_MEASURED['speedup']:.1f}x faster than fp32 on the small preset, with frames "
            f"{BF16_MEASURED['psnr_db']:.0f} dB (PSNR) from fp32's (benchmarks/RESULTS.md, OpenVINO bf16)")


def tell_bf16_once(precision: str | None) -> None:
    """Log ``bf16_hint`` once per process, when a pipeline loads in fp32 on a CPU that has bf16."""
    global _told
    if precision in (None, "fp32") and not _told:
        hint = bf16_hint()
        if hint:
            log.info(hint)
        _told = True


class OpenVino(Backend):
    """OpenVINO on the CPU; one compiled model per request shape (engines/openvino.py). An infer request serves one
    call at a time, so calls are serialized (``shares_runners`` False)."""

    name = "openvino"
    shares_runners = False

    def unusable(self, manifest: Manifest | None, options: LoadOptions | None = None) -> str:
        missing = ovb.openvino_missing()
        if missing:
            return missing
        precision = options.precision if options else None
        if precision == "bf16":  # the only backend for it: on a CPU without bf16, check_options says so in one line
            return ""
        from t2vrt.engines.onnxruntime_cuda import ort_cuda_unusable

        if not ort_cuda_unusable():
            return "a CUDA GPU runs ONNX Runtime here"
        if precision not in (None, "fp32"):
            return f"it runs fp32 or bf16, not {precision}"
        if not FP32_MEASURED["openvino_faster"]:
            tell_bf16_once(precision)
            return (f"in fp32 it ran the UNet step at {FP32_MEASURED['ratio']:.2f}x the speed of ONNX Runtime's fused "
                    f"graph on {FP32_MEASURED['cpu']} but compiles every new shape (--backend openvino to use it)")
        return ""

    def explain(self, options: LoadOptions) -> str:
        precision = options.precision or "fp32"
        if precision == "bf16":
            return f"openvino on the CPU in bf16 ({ovb.cpu_bf16()}; ONNX Runtime has no bf16 kernels on x86)"
        return (f"openvino on the CPU in fp32 (static shapes measured {FP32_MEASURED['ratio']:.2f}x ONNX Runtime's "
                f"fused graph per UNet step on {FP32_MEASURED['cpu']})")

    def check_options(self, options: LoadOptions) -> None:
        if ovb.openvino_missing():
            raise EngineError(f"backend openvino: {ovb.openvino_missing()}")
        if options.providers:
            raise EngineError(f"providers={list(options.providers)} are ONNX Runtime execution providers; the openvino "
                              "backend takes none (use --backend onnxruntime for them)")
        ovb.check_precision(options.precision or "fp32")
        tell_bf16_once(options.precision)  # fp32 on openvino: bf16 is one option away

    def open(self, root: Path, manifest: Manifest, name: str, options: LoadOptions,
             cuda_graphs: bool = False) -> Runner:
        """The portable fp32 graph, compiled in ``options.precision`` (None: fp32) for each request shape."""
        return ovb.OpenVinoRunner(manifest.onnx_path(root, name, "fp32"), manifest.spec(name),
                                  options.precision or "fp32", options.threads)

    def precision_label(self, precision: str | None) -> str:
        if precision == "bf16":
            kept = sorted({"text_encoder", "unet", "vae_decoder", "vae_encoder"} - ovb.BF16_COMPONENTS)
            return f"bf16 ({', '.join(kept)} kept in fp32)" if kept else "bf16"
        return "fp32"

    def intact_files(self, precision: str | None) -> dict:
        return {"precisions": ("fp32",), "engines": False}  # bf16 is compiled from the fp32 graph
