"""Text-to-video over exported components: encode, denoise with guidance, decode in chunks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2vrt.engines.loader import open_runner, resolve_backend
from t2vrt.errors import InputError
from t2vrt.manifest import load_manifest
from t2vrt.runtime.arrays import cat, permute, to_numpy
from t2vrt.runtime.checks import check_positive, check_request
from t2vrt.runtime.noise import Noise
from t2vrt.runtime.schedulers import make_sampler
from t2vrt.runtime.tokenizer import ClipTokenizer
from t2vrt.runtime.video import Video

log = logging.getLogger(__name__)
OUTPUT_TYPES = ("np", "uint8", "latent")


class Pipeline:
    """Weights (runners) are loaded once and reused across calls, prompts and frame counts."""

    def __init__(self, root: Path, backend: str = "auto", precision: str = "fp32", providers: list[str] | None = None):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.backend = resolve_backend(backend, self.manifest)
        self.precision = precision
        self.providers = providers
        self.tokenizer = ClipTokenizer(self.root, self.manifest.tokenizer)
        self.scheduler_config = json.loads((self.root / self.manifest.scheduler_config).read_text())
        self.scaling_factor = float(self.manifest.extra.get("vae_scaling_factor", 0.18215))
        self._runners: dict[str, Any] = {}
        log.info("t2vrt pipeline on %s (%s) from %s", self.backend, precision, self.root)

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", precision: str = "fp32", providers: list[str] | None = None) -> "Pipeline":
        return cls(Path(path), backend, precision, providers)

    def runner(self, name: str):
        if name not in self._runners:
            self._runners[name] = open_runner(self.root, self.manifest, name, self.backend, self.precision, self.providers)
        return self._runners[name]

    # -- stages -------------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str], negatives: list[str] | None) -> Any:
        """Embeddings [2b, L, D] ([negative; prompt], one batch) under guidance, else [b, L, D]."""
        texts = (negatives + prompts) if negatives is not None else prompts
        return self.runner("text_encoder").infer({"input_ids": self.tokenizer(texts)})["last_hidden_state"]

    def denoise(self, x: Any, emb: Any, sampler, guidance_scale: float, noise: Noise, start: int = 0,
                callback: Callable[[int, Any], None] | None = None, progress: bool = True) -> Any:
        """The sampling loop: one batched UNet call per model evaluation, guidance eps = u + g (c - u)."""
        from tqdm.auto import tqdm

        unet, guided = self.runner("unet"), guidance_scale > 1.0
        state = sampler.init_state()
        for i in tqdm(range(start, len(sampler.timesteps)), desc="denoise", disable=not progress, leave=False):
            xin = sampler.scale_model_input(x, i)
            t = np.array([sampler.timesteps[i]], dtype=np.float32)
            eps = unet.infer({"sample": cat([xin, xin]) if guided else xin, "timestep": t, "encoder_hidden_states": emb})["noise_pred"]
            if guided:
                u, c = eps[: len(x)], eps[len(x):]
                eps = u + guidance_scale * (c - u)
            x, state = sampler.step(i, x, eps, state, noise.like_frames)
            if callback is not None:
                callback(i, x)
        return x

    def decode(self, latents: Any, chunk: int) -> np.ndarray:
        """[b, c, f, h, w] latents -> float frames [b, f, H, W, 3] in [0, 1], ``chunk`` frames per VAE call."""
        b, c, f, h, w = latents.shape
        flat = permute(latents / self.scaling_factor, (0, 2, 1, 3, 4)).reshape(b * f, c, h, w)
        vae = self.runner("vae_decoder")
        images = [to_numpy(vae.infer({"latent": flat[i : i + chunk]})["image"]) for i in range(0, b * f, chunk)]
        video = np.concatenate(images).reshape(b, f, *images[0].shape[1:])
        return np.clip(video.transpose(0, 1, 3, 4, 2) / 2 + 0.5, 0, 1)

    # -- the call -------------------------------------------------------------------------------
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None, num_frames: int = 16,
                 height: int | None = None, width: int | None = None, num_inference_steps: int = 50,
                 guidance_scale: float = 9.0, eta: float = 0.0, seed: int | None = None, generator: Any = None,
                 latents: Any = None, output_type: str = "np", scheduler: str | None = None,
                 decode_chunk_size: int | None = None, progress: bool = True,
                 callback: Callable[[int, Any], None] | None = None) -> Video:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        m = self.manifest.model
        height = height or m.sample_size * m.vae_scale
        width = width or m.sample_size * m.vae_scale
        check_request(self.manifest, len(prompts), num_frames, height, width)
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
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents have shape {tuple(latents.shape)}; expected {shape} for these arguments")
        x = latents * sampler.init_noise_sigma
        emb = self.encode_prompt(prompts, negatives)
        x = self.denoise(x, emb, sampler, guidance_scale, noise, callback=callback, progress=progress)
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
        lo, opt, hi = self.manifest.profile.decode_chunk
        chunk = opt if chunk is None else chunk
        if not lo <= chunk <= hi:
            raise InputError(f"decode_chunk_size={chunk} is outside [{lo}, {hi}] (the VAE decoder's frame batch range)")
        return min(chunk, frames)

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()
