"""How close a UNet step comes to this machine's limit: the step's FLOPs and the matrix-product peak it could reach.

FLOPs are counted once with torch's ``FlopCounterMode`` on the diffusers UNet built from the model folder's config on
the ``meta`` device (no weights, no arithmetic: about a second for the ``small`` preset). On ``meta`` the attention
runs as its plain matrix products, so they are counted (on a CPU the fused attention kernel has no FLOP formula in
torch and would count as zero). The peak is the best of a few timed ``torch.mm`` calls of square matrices at the
precision of the pipeline and the bench's thread count: what this CPU's matrix units give to a large, simple product.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

# the names either side uses for a precision -> torch's dtype name
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16",
          "float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def dtype_name(precision: str) -> str:
    """torch's dtype name of ``fp32``/``fp16``/``bf16`` or of a torch dtype name."""
    return DTYPES[precision.removeprefix("torch.")]


def unet_call_flops(model: str | Path, batch: int, frames: int, latent_hw: tuple[int, int], text_len: int) -> float:
    """FLOPs of one call of the model folder's UNet on ``[batch, C, frames, h, w]`` latents (multiply-add = 2)."""
    import torch
    from diffusers import UNet3DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    config = UNet3DConditionModel.load_config(str(Path(model) / "unet"))
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(config)
    h, w = latent_hw
    sample = torch.empty(batch, config["in_channels"], frames, h, w, device="meta")
    text = torch.empty(batch, text_len, config["cross_attention_dim"], device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(sample, torch.tensor(981.0, device="meta"), text)
    return float(counter.get_total_flops())


def matmul_peak_gflops(dtype: str, device: str = "cpu", threads: int | None = None, n: int = 2048,
                       repeats: int = 5) -> float:
    """Best GFLOP/s of ``repeats`` timed ``n x n`` matrix products in ``dtype`` (after one warm-up product)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(n, n, generator=g).to(device=device, dtype=getattr(torch, dtype_name(dtype)))
                for _ in range(2))
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync()
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def efficiency(step_flops: float, unet_per_step_s: float, peak_gflops: float | None) -> dict:
    """Achieved GFLOP/s of a UNet step and its fraction of the peak at its precision."""
    achieved = step_flops / unet_per_step_s / 1e9 if unet_per_step_s > 0 else 0.0
    out = {"achieved_gflops": achieved, "peak_gflops": peak_gflops}
    if peak_gflops:
        out["fraction_of_peak"] = achieved / peak_gflops
        out["step_floor_s"] = step_flops / peak_gflops / 1e9  # the step at the peak: the floor on this machine
    return out


def add_efficiency(data: dict, config, request, sides: list) -> None:
    """Count the UNet step's FLOPs at the request's shape, measure the peak at each side's precision, and add both
    with each side's achieved GFLOP/s to ``data`` (``data["flops"]`` and each side's ``efficiency``)."""
    model = sides[0].pipe.manifest.model
    batch = 2 if request.guidance_scale > 1 else 1  # classifier-free guidance: both halves in one call, as diffusers
    latent = (request.height // model.vae_scale, request.width // model.vae_scale)
    try:
        one = unet_call_flops(config.diffusers, 1, request.num_frames, latent, model.max_length)
    except Exception as e:  # a model folder diffusers cannot build on meta: the speeds stand without the ratio
        log.warning("could not count the UNet's FLOPs (%s: %s); no GFLOP/s reported", type(e).__name__, e)
        return
    step = one * batch  # FLOPs grow with the batch; however a pipeline splits it into calls
    peaks, n = {}, 8192 if config.device.startswith("cuda") else 2048  # a GPU needs a larger product to fill it
    for dtype in sorted({dtype_name(p.precision) for p in sides}):
        peaks[dtype] = matmul_peak_gflops(dtype, config.device, config.threads, n=n)
        log.info("matrix-product peak in %s: %.0f GFLOP/s", dtype, peaks[dtype])
    data["flops"] = {"unet_step_gflop": step / 1e9, "unet_batch_per_step": batch,
                     "counted_by": "torch FlopCounterMode, diffusers UNet on the meta device",
                     "matmul_peak_gflops": peaks, "peak_by": f"best of 5 torch.mm {n}x{n}",
                     "threads": config.threads or _threads()}
    for entry, p in zip(data["sides"], sides):
        median = entry["summary"]["unet_per_step_s"]["median"]
        entry["efficiency"] = efficiency(step, median, peaks[dtype_name(p.precision)])


def _threads() -> int:
    import torch

    return torch.get_num_threads()
