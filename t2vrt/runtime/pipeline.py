"""Text-to-video over exported components: encode, denoise with guidance, decode in chunks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2vrt.engines.base import can_release
from t2vrt.engines.loader import open_runner, resolve_backend
from t2vrt.errors import InputError
from t2vrt.manifest import load_manifest
from t2vrt.runtime.arrays import cat, from_numpy, permute, to_numpy
from t2vrt.runtime.checks import check_decode_chunk, check_positive, check_request
from t2vrt.runtime.context import ContextPlan, context_plan, free_noise_latents, windowed
from t2vrt.runtime.noise import Noise
from t2vrt.runtime.schedulers import make_sampler
from t2vrt.runtime.tokenizer import ClipTokenizer
from t2vrt.runtime.video import Video

log = logging.getLogger(__name__)
OUTPUT_TYPES = ("np", "uint8", "latent")


class Pipeline:
    """Weights (runners) are loaded once and reused across calls, prompts and frame counts.

    With ``low_memory=True`` only the component in use is resident: each stage's runner is opened when the stage
    starts and closed when it ends (text encoder, then UNet, then VAE decoder), so the peak is that of the largest
    component, not of all three together; each call loads them again. Subclasses get the same policy by opening
    runners through ``runner(name)`` and calling ``release(name)`` when a stage is done.
    """

    def __init__(self, root: Path, backend: str = "auto", precision: str | None = None, providers: list[str] | None = None,
                 low_memory: bool = False):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.backend = resolve_backend(backend, self.manifest)
        self.precision = precision
        self.providers = providers
        self.low_memory = low_memory
        self.tokenizer = ClipTokenizer(self.root, self.manifest.tokenizer)
        self.scheduler_config = json.loads((self.root / self.manifest.scheduler_config).read_text())
        self.scaling_factor = self.manifest.vae_scaling_factor
        self._runners: dict[str, Any] = {}
        log.info("t2vrt pipeline on %s (%s%s) from %s", self.backend, precision or "default precision", ", low memory" if low_memory else "", self.root)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", precision: str | None = None, providers: list[str] | None = None,
             low_memory: bool = False) -> "Pipeline":
        return cls(Path(path), backend, precision, providers, low_memory)

    def runner(self, name: str):
        """The runner of component ``name``, opened on first use; in low-memory mode the others are closed first."""
        if name not in self._runners:
            if self.low_memory:
                self._close(*self._runners)
            r = open_runner(self.root, self.manifest, name, self.backend, self.precision, self.providers)
            if self.low_memory and not can_release(r):
                log.warning("low-memory mode: the %s runner of %s cannot release its memory (it has no close()), "
                            "so it stays resident beside the next component", r.backend, name)
            self._runners[name] = r
        return self._runners[name]

    def release(self, name: str) -> None:
        """Stage ``name`` is done for this call: in low-memory mode close its runner now, else keep it for the next call."""
        if self.low_memory:
            self._close(name)

    def _close(self, *names: str) -> None:
        for name in list(names):
            r = self._runners.pop(name, None)
            if r is not None and can_release(r):
                r.close()

    def check_sizes(self, batch: int, num_frames: int, height: int, width: int) -> None:
        """Refuse sizes outside the manifest's profile and, on TensorRT, outside the built engines' profiles,
        before any backend runs (``precision`` None: fp32 ONNX on ONNX Runtime, the best engine on TensorRT)."""
        check_request(self.manifest, batch, num_frames, height, width, root=str(self.root))
        if self.backend != "tensorrt":
            return
        from t2vrt.engines.tensorrt_records import check_profile, find_engine

        sizes = {"batch": batch, "frames": num_frames, "height": height, "width": width}
        for name in self.manifest.components:
            record, _ = find_engine(self.manifest.engines, name, self.precision, root=str(self.root))
            if record is not None:
                check_profile(record, sizes, root=str(self.root))

    # -- stages -------------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str], negatives: list[str] | None) -> Any:
        """Embeddings [2b, L, D] ([negative; prompt], one batch) under guidance, else [b, L, D]."""
        texts = (negatives + prompts) if negatives is not None else prompts
        emb = self.runner("text_encoder").infer({"input_ids": self.tokenizer(texts)})["last_hidden_state"]
        self.release("text_encoder")
        return emb

    def denoise(self, x: Any, emb: Any, sampler, guidance_scale: float, noise: Noise, start: int = 0,
                callback: Callable[[int, Any], None] | None = None, progress: bool = True,
                context: ContextPlan | None = None) -> Any:
        """The sampling loop: one batched UNet call per model evaluation, guidance eps = u + g (c - u); with a
        ``context`` plan of several windows, one call per window, blended to a full-length eps (runtime/context.py)."""
        from tqdm.auto import tqdm

        unet, guided = self.runner("unet"), guidance_scale > 1.0
        state = sampler.init_state()
        # Timesteps converted at the edge, on the latents' device: no host copy inside the loop.
        ts = {i: from_numpy(np.array([sampler.timesteps[i]], dtype=np.float32), x) for i in range(start, len(sampler.timesteps))}
        for i in tqdm(range(start, len(sampler.timesteps)), desc="denoise", disable=not progress, leave=False):
            xin = sampler.scale_model_input(x, i)

            def predict(xw, t=ts[i]):  # one batched UNet call over (a window of) the latents, guided
                eps = unet.infer({"sample": cat([xw, xw]) if guided else xw, "timestep": t, "encoder_hidden_states": emb})["noise_pred"]
                if guided:
                    u, c = eps[: len(xw)], eps[len(xw):]
                    eps = u + guidance_scale * (c - u)
                return eps

            eps = windowed(predict, xin, context) if context is not None and context.active else predict(xin)
            x, state = sampler.step(i, x, eps, state, noise.like_frames)
            if callback is not None:
                callback(i, x)
        self.release("unet")
        return x

    def decode(self, latents: Any, chunk: int) -> np.ndarray:
        """[b, c, f, h, w] latents -> float frames [b, f, H, W, 3] in [0, 1], ``chunk`` frames per VAE call."""
        b, c, f, h, w = latents.shape
        flat = permute(latents / self.scaling_factor, (0, 2, 1, 3, 4)).reshape(b * f, c, h, w)
        images = self.run_chunked("vae_decoder", {"latent": flat}, chunk)["image"]
        video = images.reshape(b, f, *images.shape[1:])
        return np.clip(video.transpose(0, 1, 3, 4, 2) / 2 + 0.5, 0, 1)

    def run_chunked(self, name: str, feed: dict[str, Any], chunk: int) -> dict[str, np.ndarray]:
        """Run a per-frame component (the VAE decoder or encoder) over the frames of ``feed`` ``chunk`` at a time.

        Each chunk's outputs go to host memory at once, so the backend holds one chunk's activations whatever the
        frame count. A last chunk shorter than the profile's minimum is padded with copies of its last frame (a
        TensorRT profile cannot take fewer), and the padding's outputs dropped. Releases ``name`` when done.
        """
        lo = self.manifest.profile.decode_chunk[0]
        runner, n = self.runner(name), len(next(iter(feed.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for i in range(0, n, chunk):
            k = min(chunk, n - i)
            piece = {key: _pad_to(v[i : i + k], lo) for key, v in feed.items()}
            for key, out in runner.infer(piece).items():
                parts.setdefault(key, []).append(to_numpy(out)[:k])
        self.release(name)
        return {key: np.concatenate(v) for key, v in parts.items()}

    # -- the call -------------------------------------------------------------------------------
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None, num_frames: int = 16,
                 height: int | None = None, width: int | None = None, num_inference_steps: int = 50,
                 guidance_scale: float = 9.0, eta: float = 0.0, seed: int | None = None, generator: Any = None,
                 latents: Any = None, output_type: str = "np", scheduler: str | None = None,
                 decode_chunk_size: int | None = None, progress: bool = True,
                 callback: Callable[[int, Any], None] | None = None, *, context_frames: int | None = None,
                 context_stride: int | None = None, context_mode: str = "clamped", context_weighting: str = "taper",
                 free_noise: bool = False) -> Video:
        """``context_frames`` (W) and ``context_stride``: denoise in overlapping windows of W frames, so
        ``num_frames`` may exceed the engine's frame range; ``context_mode`` "clamped" or "cyclic" (a looping video),
        ``context_weighting`` "taper" or "uniform"; ``free_noise``: FreeNoise's initial noise (runtime/context.py; given
        ``latents`` are used as they are, as in diffusers' FreeNoise)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        m = self.manifest.model
        height = height or m.sample_size * m.vae_scale
        width = width or m.sample_size * m.vae_scale
        plan = context_plan(self.manifest.profile.frames, num_frames, context_frames, context_stride, context_mode,
                            context_weighting, free_noise, root=str(self.root))
        self.check_sizes(len(prompts), num_frames if plan is None else plan.unet_frames, height, width)
        negatives = self._negatives(negative_prompt, len(prompts)) if guidance_scale > 1.0 else None
        chunk = self._chunk(decode_chunk_size, len(prompts) * num_frames)
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type={output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
        check_positive("num_inference_steps", num_inference_steps)
        check_positive("eta", eta, allow_zero=True)
        options = {"eta": eta} if eta else {}
        sampler = make_sampler(scheduler, self.scheduler_config, num_inference_steps, **options)

        shape = (len(prompts), m.latent_channels, num_frames, height // m.vae_scale, width // m.vae_scale)
        noise = Noise(seed, generator)
        if latents is None:
            latents = noise.randn(shape)
            if free_noise and plan is not None:
                latents = free_noise_latents(latents, plan, noise)
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents have shape {tuple(latents.shape)}; expected {shape} for these arguments")
        x = latents * sampler.init_noise_sigma
        emb = self.encode_prompt(prompts, negatives)
        x = from_numpy(to_numpy(x), emb)  # latents on the engines' device (a no-op for NumPy runners)
        x = self.denoise(x, emb, sampler, guidance_scale, noise, callback=callback, progress=progress, context=plan)
        if output_type == "latent":
            return Video(None, x, noise.seed)
        return Video(self.decode(x, chunk), x, noise.seed)

    def _negatives(self, negative_prompt, n: int) -> list[str]:
        if negative_prompt is None:
            return [""] * n
        negs = [negative_prompt] * n if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(negs) != n:
            raise InputError(f"negative_prompt has {len(negs)} entries; prompt has {n}: give one per prompt or a single string")
        return negs

    def _chunk(self, chunk: int | None, frames: int) -> int:
        """VAE frames per call: the profile's opt by default, refused outside the profile, at most ``frames``."""
        opt = self.manifest.profile.decode_chunk[1]
        if chunk is None:
            return min(opt, frames)
        check_decode_chunk(self.manifest, chunk, root=str(self.root))
        if chunk > frames:
            log.info("decode_chunk_size=%d is more than the %d frames to decode: decoding them in one call", chunk, frames)
        return min(chunk, frames)

    def close(self) -> None:
        """Close every open runner (in any mode); a later call opens what it needs again."""
        self._close(*self._runners)


def _pad_to(x: Any, n: int) -> Any:
    """``x`` with its last item repeated until it has at least ``n`` items along axis 0."""
    return x if len(x) >= n else cat([x] + [x[-1:]] * (n - len(x)))
