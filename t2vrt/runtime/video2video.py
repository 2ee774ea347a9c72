"""Video-to-video (SDEdit, Meng et al. 2021, arXiv:2108.01073), as diffusers' VideoToVideoSDPipeline:
encode the input, noise it to the timestep that ``strength`` picks, denoise from there, decode.

This is how Zeroscope upscales: a 576w video, resized to 1024x576, goes through zeroscope_v2_XL at
strength ~0.6. Loading, prompt encoding, the denoising loop and the decode are Pipeline's own.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from t2vrt.components import VIDEO_TO_VIDEO
from t2vrt.engines.backends import LoadOptions
from t2vrt.errors import InputError, ManifestError
from t2vrt.manifest import add_command
from t2vrt.runtime.arrays import cat, from_numpy, permute
from t2vrt.runtime.callbacks import StepCallbacks
from t2vrt.runtime.checks import check_call
from t2vrt.runtime.context import context_plan
from t2vrt.runtime.guard import check_stage
from t2vrt.runtime.locking import serialized
from t2vrt.runtime.media.frames import load_frames, resize_frames, to_encoder_input
from t2vrt.runtime.noise import Noise
from t2vrt.runtime.output import Video, check_output_type
from t2vrt.runtime.pipeline import Pipeline, _pad_to
from t2vrt.runtime.plan import CallPlan, planned_call
from t2vrt.runtime.prompts import read_prompts

log = logging.getLogger(__name__)


def start_index(num_inference_steps: int, strength: float, order: int = 1) -> int:
    """Index of the first model evaluation, as diffusers' get_timesteps: the last ``int(steps * strength)``
    inference steps run; a sampler with ``order`` evaluations per step starts at ``t_start * order``."""
    if not 0.0 < strength <= 1.0:
        raise InputError(f"strength={strength} is outside (0, 1]; 1 ignores the input video, small values keep it")
    run = min(int(num_inference_steps * strength), num_inference_steps)
    if run < 1:
        raise InputError(
            f"strength={strength} with num_inference_steps={num_inference_steps} leaves no denoising step "
            f"(int(steps * strength) = 0); raise strength or num_inference_steps"
        )
    return (num_inference_steps - run) * order


class VideoToVideoPipeline(Pipeline):
    """A Pipeline over an engine directory exported with a ``vae_encoder``."""

    COMPONENTS = VIDEO_TO_VIDEO  # what from_pretrained exports

    def __init__(self, root, options: LoadOptions | str | None = None, **load_kw: Any):
        super().__init__(root, options, **load_kw)
        if "vae_encoder" not in self.manifest.components:
            raise ManifestError(
                f"engine directory {str(self.root)!r} has no vae_encoder, which video-to-video needs; add it with "
                f"`{add_command(self.manifest, self.root, ('vae_encoder',))}`"
            )

    @serialized
    def encode_video(self, frames, chunk: int, noise: Noise, progress: bool | None = None) -> Any:
        """Frames [f, H, W, 3] -> scaled latents [f, c, h, w] = (mean + std * n) * scaling_factor, the encoder
        run ``chunk`` frames at a time; n is drawn once for all frames, as diffusers' latent_dist.sample."""
        from tqdm.auto import tqdm

        starts = tqdm(range(0, len(frames), chunk), desc="vae encoder", unit="chunk",
                      disable=not self._progress(progress),
                      leave=False)
        lo, outs = self.manifest.profile.decode_chunk[0], []
        with self.stage("vae_encoder") as vae:
            for i in starts:  # a last chunk below the profile's minimum padded (as run_chunked), its padding dropped
                piece = to_encoder_input(frames[i : i + chunk])
                outs.append({k: v[: len(piece)] for k, v in vae.infer({"image": _pad_to(piece, lo)}).items()})
        mean, std = cat([o["latent_mean"] for o in outs]), cat([o["latent_std"] for o in outs])
        check_stage(self, "vae_encoder", mean), check_stage(self, "vae_encoder", std)
        n = from_numpy(noise.randn(tuple(mean.shape)), mean)
        return (mean + std * n) * self.scaling_factor

    def _size(self, frames, height: int | None, width: int | None) -> tuple[int, int]:
        """The requested size; where not given, the input's own, which must then fit the model as it is."""
        _, h0, w0, _ = frames.shape
        mult = self.manifest.model.size_multiple
        for name, given, own in (("height", height, h0), ("width", width, w0)):
            if given is None and own % mult:
                raise InputError(
                    f"the input video is {w0}x{h0}: its {name} {own} is not a multiple of {mult}, as this model needs; "
                    f"pass {name} (e.g. {max(mult, round(own / mult) * mult)}) to resize it"
                )
        return height or h0, width or w0

    def plan(self, prompt: str | list[str] | None = None, video: Any = None, strength: float = 0.6,
             num_inference_steps: int = 50, guidance_scale: float = 15.0,
             negative_prompt: str | list[str] | None = None, eta: float = 0.0, generator: Any = None,
             latents: Any = None, prompt_embeds: Any = None, negative_prompt_embeds: Any = None,
             output_type: str = "np", return_dict: bool = True, callback: Callable | None = None,
             callback_steps: int = 1, cross_attention_kwargs: dict | None = None, clip_skip: int | None = None, *,
             callback_on_step_end: Callable | None = None,
             callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",), height: int | None = None,
             width: int | None = None, seed: int | None = None, scheduler: str | None = None,
             decode_chunk_size: int | None = None, progress: bool | None = None, context_frames: int | None = None,
             context_stride: int | None = None, context_mode: str = "clamped",
             context_weighting: str = "taper") -> CallPlan:
        """diffusers' VideoToVideoSDPipeline.__call__ (its order and defaults). Keyword-only extras: those of
        Pipeline.__call__, and ``height``/``width`` (resize the input; default its own size); ``context_*`` re-render
        a video longer than the UNet's frame range window by window, as Pipeline's (runtime/context.py).
        ``plan`` checks it all (reading the input video) and ``run(plan)`` renders, as Pipeline's."""
        check_call(self, locals())  # every argument, by name, before any backend runs
        p = read_prompts(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, guidance_scale,
                         self.embed_shape)
        if p.batch != 1:
            raise InputError(f"video-to-video takes one prompt per video; got {p.batch} prompts")
        if latents is not None:
            raise InputError("latents are not used by video-to-video (diffusers ignores them): the input video sets "
                             "the start")
        if video is None:
            raise InputError("give the input video: frames [f, H, W, 3], a list of frames, or a file path")
        # a file longer than the profile is refused after decoding max + 1 frames; with windows any length serves
        frames = load_frames(video, max_frames=self.manifest.profile.frames[2] if context_frames is None else None)
        height, width = self._size(frames, height, width)
        num_frames = len(frames)
        context = context_plan(self.manifest.profile.frames, num_frames, context_frames, context_stride, context_mode,
                               context_weighting, root=str(self.root))
        self.check_sizes(1, num_frames if context is None else context.unet_frames, height, width)
        check_output_type(output_type)
        sampler = self.sampler(scheduler, num_inference_steps, eta)
        start = start_index(num_inference_steps, strength, getattr(sampler, "order", 1))
        chunk = self._chunk(decode_chunk_size, num_frames)
        self.check_unsupported(cross_attention_kwargs, clip_skip)
        steps = StepCallbacks(callback, callback_steps, callback_on_step_end, callback_on_step_end_tensor_inputs, self)
        generator = generator[0] if isinstance(generator, (list, tuple)) and len(generator) == 1 else generator
        seed = Noise(seed, generator).seed
        m = self.manifest.model
        shape = (1, m.latent_channels, num_frames, height // m.vae_scale, width // m.vae_scale)
        return CallPlan(p, num_frames, height, width, shape, sampler, start, guidance_scale, context, chunk, seed,
                        generator, None, False, clip_skip, steps, output_type, return_dict, progress, frames, strength)

    @serialized
    def run(self, plan: CallPlan) -> Video | tuple:
        """Re-render the input video of ``plan`` (``plan = pipe.plan(...)``, the arguments of ``__call__``)."""
        frames = resize_frames(plan.frames, plan.height, plan.width)
        noise, sampler, start = Noise(plan.seed, plan.generator), plan.sampler, plan.start
        log.info("video-to-video: %d frames %dx%d, strength %g: %d of %d model evaluations", len(frames), plan.width,
                 plan.height, plan.strength, len(sampler.timesteps) - start, len(sampler.timesteps))
        emb = self.embed(plan.prompts, plan.clip_skip)
        x0 = self.encode_video(frames, plan.decode_chunk, noise, plan.progress)
        x = sampler.add_noise(x0, from_numpy(noise.randn(tuple(x0.shape)), x0), start)  # diffusers' second draw
        x = permute(x.reshape(1, *x.shape), (0, 2, 1, 3, 4))  # [f, c, h, w] -> [1, c, f, h, w]
        x = self.denoise(x, emb, sampler, plan.guidance_scale, noise, start=start, callbacks=plan.callbacks,
                         progress=plan.progress, context=plan.context)
        return self.result(x, plan.decode_chunk, noise.seed, plan.output_type, plan.return_dict, plan.progress)

    __call__ = planned_call(plan)
