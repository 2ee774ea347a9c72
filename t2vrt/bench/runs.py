"""One measured generation of our Pipeline, and of diffusers' TextToVideoSDPipeline on the same request."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from t2vrt.bench.measure import PeakMemory, Recorder, StageRecorder, load_average, sync_for, wrap_calls, wrap_stage
from t2vrt.components import TEXT_TO_VIDEO as COMPONENTS
from t2vrt.errors import InputError

log = logging.getLogger(__name__)
# our sampler name -> the diffusers scheduler class that does the same work
DIFFUSERS_SCHEDULERS = {"ddim": "DDIMScheduler"}


@dataclass(frozen=True)
class BenchRequest:
    """One generation, the same for both pipelines (height/width None: the model's native size)."""

    prompt: str = "a panda eating bamboo on a rock"
    negative_prompt: str | None = None
    num_frames: int = 16
    height: int | None = None
    width: int | None = None
    num_inference_steps: int = 25
    guidance_scale: float = 9.0
    seed: int = 0
    scheduler: str = "ddim"
    decode_chunk_size: int | None = None
    context_frames: int | None = None  # ours only: denoise in windows (runtime/context.py)
    context_stride: int | None = None
    free_noise: bool = False

    def to_json(self) -> dict:
        return asdict(self)

    def context(self) -> dict:
        return dict(context_frames=self.context_frames, context_stride=self.context_stride, free_noise=self.free_noise)

    def common(self) -> dict:
        return dict(negative_prompt=self.negative_prompt, num_frames=self.num_frames, height=self.height,
                    width=self.width, num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale)


def metrics(rec: Recorder, req: BenchRequest, memory: PeakMemory, rss_before: float) -> dict:
    """Per-stage numbers of one run. "outside engines" is everything but the text encoder, UNet and VAE calls."""
    s, steps, frames = rec.seconds, req.num_inference_steps, req.num_frames
    total = s["total"]
    engines = sum(s.get(c, 0.0) for c in COMPONENTS)
    out = {
        "total_s": total,
        "text_encoder_s": s.get("text_encoder", 0.0),
        "unet_s": s.get("unet", 0.0),
        "unet_calls": rec.calls.get("unet", 0),
        "unet_per_step_s": s.get("unet", 0.0) / steps,
        "glue_per_step_s": (rec.seconds["loop"] - s.get("unet", 0.0)) / steps,
        "vae_decode_s": s.get("vae_decoder", 0.0),
        "vae_per_frame_s": s.get("vae_decoder", 0.0) / frames,
        "outside_engines_s": total - engines,
        "outside_engines_pct": 100.0 * (total - engines) / total,
        "peak_rss_mb": rec.finish_peak(),
        "rss_before_mb": rss_before,
        "peak_rss_growth_mb": rec.run_peak_mb - rss_before,  # what the run itself needed above what was resident
        "stage_peak_rss_mb": dict(rec.peaks_mb),
        "stage_rss_growth_mb": dict(rec.growth_mb),
        "load_average": load_average(),
    }
    cuda = memory.cuda_peak_mb()
    if cuda is not None:
        out["cuda_max_allocated_mb"] = cuda
        out["gpu_peak_used_mb"] = memory.gpu_peak_mb()
    return out


class Measured:
    """Shared run logic: reset the recorder and the memory meter, time the whole call, collect metrics."""

    name = "?"

    def __init__(self, request: BenchRequest, device: str):
        self.request, self.device = request, device
        self.memory = PeakMemory(device)
        self.recorder = Recorder(sync=sync_for(device), memory=self.memory)
        self.load_rss_mb = 0.0  # RSS added by loading the pipeline (weights, sessions)
        self.latents: np.ndarray | None = None  # the final latents of the last run (for the quality numbers)

    def generate(self) -> np.ndarray:
        raise NotImplementedError

    def run(self) -> tuple[dict, np.ndarray]:
        rec = self.recorder
        rec.clear()
        rss_before = self.memory.current_mb()
        self.memory.reset()
        with rec.time("total"):
            frames = self.generate()
        record = metrics(rec, self.request, self.memory, rss_before)
        log.info("%s: %.2f s total, UNet %.3f s/step, peak RSS %.0f MB, load %s", self.name, record["total_s"],
                 record["unet_per_step_s"], record["peak_rss_mb"], record["load_average"])
        return record, frames


class OursRun(Measured):
    """Our Pipeline, observed: its stages timed and every runner behind a timing proxy (StageRecorder); the code path
    is unchanged. ``threads``: ONNX Runtime's intra-op threads (LoadOptions.threads)."""

    name = "t2vrt"

    def __init__(self, engines: str | Path, request: BenchRequest, backend: str = "onnxruntime",
                 precision: str = "fp32", device: str = "cpu", threads: int | None = None, low_memory: bool = False):
        from t2vrt import LoadOptions, Pipeline

        super().__init__(request, device)
        self.requested_backend, self.precision = backend, precision
        rss = self.memory.current_mb()
        options = LoadOptions(backend=backend, precision=precision, threads=threads, low_memory=low_memory)
        self.pipe = Pipeline.load(engines, options)
        for name in COMPONENTS:  # loaded before the runs, so the load is not in the first run's times
            self.pipe.runner(name)
        self.load_rss_mb = self.memory.current_mb() - rss
        self.pipe.add_observer(StageRecorder(self.recorder, {"text_encoder": "encode", "unet": "loop",
                                                             "vae_decoder": "decode"}))
        unet = self.pipe.runner("unet")
        self.backend = f"{self.pipe.backend} {getattr(unet, 'providers', '')}".strip()
        graph = getattr(unet, "path", None)  # ONNX Runtime: which UNet graph ran (the CPU-fused one where exported)
        if graph is not None and Path(graph).name != "model.onnx":
            self.backend += f", UNet graph {Path(graph).name}"

    def generate(self) -> np.ndarray:
        r = self.request
        video = self.pipe(r.prompt, seed=r.seed, scheduler=r.scheduler, decode_chunk_size=r.decode_chunk_size,
                          progress=False, **r.common(), **r.context())
        from t2vrt.runtime.arrays import to_numpy

        self.latents = to_numpy(video.latents)
        return video.images

    def run(self) -> tuple[dict, np.ndarray]:
        """A long request (in context windows) also reports how visible the window seams are."""
        from t2vrt.runtime.context import default_stride, seam_metric, window_schedule

        record, frames = super().run()
        w = self.request.context_frames
        if w is not None:
            stride = self.request.context_stride or default_stride(w)
            record["seams"] = seam_metric(frames, window_schedule(self.request.num_frames, w, stride))
        return record, frames

    def close(self) -> None:
        """Release every runner (the sessions' weights) before another pipeline loads."""
        self.pipe.close()

    def native_size(self) -> tuple[int, int]:
        m = self.pipe.manifest.model
        return m.sample_size * m.vae_scale, m.sample_size * m.vae_scale


class DiffusersRun(Measured):
    """diffusers' TextToVideoSDPipeline from the model folder; the model calls and the loop are timed by wrappers.
    ``precision``: the ``torch_dtype`` by name (float32, bfloat16, float16; fp32, bf16, fp16 say the same)."""

    name = "diffusers"

    def __init__(self, model: str | Path, request: BenchRequest, device: str = "cpu", precision: str = "fp32"):
        import diffusers
        import torch
        from diffusers import TextToVideoSDPipeline

        super().__init__(request, device)
        rss = self.memory.current_mb()
        if request.scheduler not in DIFFUSERS_SCHEDULERS:
            raise InputError(f"scheduler {request.scheduler!r} has no diffusers counterpart here; "
                             f"choose one of {', '.join(DIFFUSERS_SCHEDULERS)} or run without --diffusers")
        from t2vrt.bench.flops import dtype_name

        self.precision = dtype_name(precision)
        dtype = getattr(torch, self.precision)
        pipe = TextToVideoSDPipeline.from_pretrained(str(model), torch_dtype=dtype).to(device)
        cls = getattr(diffusers, DIFFUSERS_SCHEDULERS[request.scheduler])
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        rec = self.recorder
        wrap_calls(pipe.text_encoder, "forward", "text_encoder", rec)
        wrap_calls(pipe.unet, "forward", "unet", rec)
        wrap_calls(pipe.vae, "decode", "vae_decoder", rec)
        wrap_stage(pipe, "encode_prompt", "encode", rec)
        wrap_stage(pipe, "decode_latents", "decode", rec)
        wrap_loop(pipe, rec, self)
        self.pipe, self.backend = pipe, f"torch {device} {str(dtype).removeprefix('torch.')}"
        self.load_rss_mb = self.memory.current_mb() - rss

    def generate(self) -> np.ndarray:
        import torch

        r = self.request
        gen = torch.Generator("cpu").manual_seed(r.seed)
        with torch.no_grad():
            frames = self.pipe(r.prompt, generator=gen, output_type="np", **r.common()).frames
        if self.latents is not None and self.latents.ndim == 4:  # diffusers steps on [b * f, c, h, w]: as ours
            n, c, h, w = self.latents.shape
            self.latents = self.latents.reshape(n // r.num_frames, r.num_frames, c, h, w).transpose(0, 2, 1, 3, 4)
        return frames


def wrap_loop(pipe: Any, rec: Recorder, keep: Any = None) -> None:
    """diffusers' loop has no method of its own: time it from the first UNet call to the end of the last scheduler step.
    ``keep``: an object whose ``latents`` is set to each step's output (the last one is the final latents)."""
    unet_forward, step = pipe.unet.forward, pipe.scheduler.step

    @functools.wraps(unet_forward)
    def forward(*args, **kwargs):
        rec.marks.setdefault("loop_start", time.perf_counter())
        return unet_forward(*args, **kwargs)

    @functools.wraps(step)  # diffusers reads the signature to decide whether to pass eta and generator
    def timed_step(*args, **kwargs):
        out = step(*args, **kwargs)
        rec.sync()
        if keep is not None:
            keep.latents = (out.prev_sample if hasattr(out, "prev_sample") else out[0]).float().cpu().numpy()
        rec.seconds["loop"] = time.perf_counter() - rec.marks.setdefault("loop_start", time.perf_counter())
        return out

    pipe.unet.forward, pipe.scheduler.step = forward, timed_step
