"""Text-to-video over exported components: encode, denoise with guidance, decode in chunks."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from t2vrt.components import TEXT_TO_VIDEO
from t2vrt.engines.backends import LoadOptions
from t2vrt.engines.base import can_release
from t2vrt.engines.loader import open_runner, resolve
from t2vrt.errors import InputError
from t2vrt.integrity import check_for_pipeline, read_json_file
from t2vrt.manifest import MANIFEST, load_manifest
from t2vrt.runtime.arrays import cat, from_numpy, on_device, permute, to_numpy
from t2vrt.runtime.callbacks import StepCallbacks
from t2vrt.runtime.checks import check_call, check_decode_chunk, check_positive, check_request
from t2vrt.runtime.context import ContextPlan, context_plan, free_noise_latents, windowed
from t2vrt.runtime.guard import check_stage, check_step
from t2vrt.runtime.locking import new_locks, serialized
from t2vrt.runtime.noise import Noise
from t2vrt.runtime.output import Video
from t2vrt.runtime.plan import CallPlan, planned_call
from t2vrt.runtime.pretrained import cached_engine_dir, dtype_precision, explain_not_engine_dir, export_options
from t2vrt.runtime.prompts import Prompts, check_clip_skip, embeddings, read_prompts
from t2vrt.runtime.schedulers import make_sampler
from t2vrt.runtime.stages import StageObserver
from t2vrt.runtime.tokenizer import ClipTokenizer

log = logging.getLogger(__name__)


class Pipeline:
    """Text-to-video over an engine directory: ``Pipeline.load(DIR)``, or ``Pipeline.from_pretrained(MODEL,
    export=True)``.

    Weights (runners) are loaded once and reused across calls, prompts and frame counts.

    A call is ``run(plan(...))``: ``plan`` checks every argument and decides everything that needs no backend
    (runtime/plan.py); ``run`` does the work, each component inside ``with self.stage(name) as runner:``, which
    tells observers when the stage starts and ends (runtime/stages.py; ``add_observer``).

    With ``low_memory=True`` only the component in use is resident: each stage's runner is opened when the stage
    starts and closed when it ends, also on an error (text encoder, then UNet, then VAE decoder), so the peak is
    that of the largest component, not of all three together; each call loads them again.

    Safe to call from several threads in every mode (runtime/locking.py says what each mode shares). Loading checks
    the engine directory: the components a call needs are there and the files it will run match their sha256
    (integrity.py); every argument is checked before any backend runs (checks.py), and the loop stops at the first
    NaN or infinity (guard.py).
    """

    COMPONENTS = TEXT_TO_VIDEO  # what from_pretrained exports

    def __init__(self, root: Path, options: LoadOptions | str | None = None, **load_kw: Any):
        """``options``: a LoadOptions (or a backend name); ``load_kw``: its fields as keyword arguments (backend,
        precision, providers, threads, low_memory), which replace the object's values."""
        self.root = Path(root)
        self.options = LoadOptions.of(options, **load_kw)
        explain_not_engine_dir(root)
        self.manifest = load_manifest(self.root)
        self.backend_impl = resolve(self.options.backend, self.manifest, self.options)
        self.backend_impl.check_options(self.options)  # e.g. unknown providers, refused before any component opens
        # components there, files intact
        check_for_pipeline(self.root, self.manifest, self.backend_impl, self.precision)
        self.tokenizer = ClipTokenizer(self.root, self.manifest.tokenizer)
        self.scheduler_config = read_json_file(self.root, self.manifest.scheduler_config, "scheduler config")
        self.scaling_factor = self.manifest.vae_scaling_factor
        self._runners: dict[str, Any] = {}
        self._observers: list[StageObserver] = []
        self.stream = self.backend_impl.stream(self.options)  # the one CUDA stream of its GPU runners, or None
        self._lock, self._call_lock = new_locks()  # see runtime/locking.py for what each mode shares
        log.info("t2vrt pipeline on %s (%s%s) from %s", self.backend, self.precision or "default precision",
                 ", low memory" if self.low_memory else "", self.root)

    # The load options, read as attributes (as before LoadOptions): the resolved backend's name, and the rest as given.
    backend = property(lambda self: self.backend_impl.name)
    precision = property(lambda self: self.options.precision)
    providers = property(lambda self: list(self.options.providers) if self.options.providers else None)
    threads = property(lambda self: self.options.threads)  # ONNX Runtime intra-op threads per session (None: its own)
    low_memory = property(lambda self: self.options.low_memory)

    @classmethod
    def load(cls, path: str | Path, options: LoadOptions | str | None = None, **load_kw: Any) -> Pipeline:
        """Load an engine directory; ``options`` and ``load_kw`` as the constructor's."""
        return cls(Path(path), options, **load_kw)

    @classmethod
    def from_pretrained(cls, model: str | Path, export: bool = False, *, revision: str | None = None,
                        variant: str | None = None, profile: Any = None, precision: str | None = None,
                        torch_dtype: Any = None, cache_dir: str | Path | None = None,
                        options: LoadOptions | None = None, backend: str | None = None,
                        providers: list[str] | None = None, low_memory: bool | None = None, threads: int | None = None,
                        **export_kw: Any) -> Pipeline:
        """As diffusers' and optimum's: an engine directory loads as it is; a diffusers folder or hub id is exported
        (``export=True``) into the cache on first use and loaded from there after (t2vrt.runtime.pretrained).
        ``profile``: a Profile, a dict of some of its fields, or None (from the model's native size). ``options``:
        LoadOptions; the keyword arguments backend, precision, providers, low_memory and threads replace its values."""
        load = LoadOptions.of(options, backend=backend, precision=precision, providers=providers,
                              low_memory=low_memory, threads=threads)
        if (Path(model).expanduser() / MANIFEST).is_file():  # torch_dtype picks the precision, as in diffusers
            return cls.load(model, load, precision=dtype_precision(torch_dtype, load.precision))
        export_options_, run_precision = export_options(cls.COMPONENTS, revision, variant, profile, load.precision,
                                                        torch_dtype, export_kw)
        out = cached_engine_dir(str(model), export_options_, cache_dir, export)
        return cls.load(out, load, precision=run_precision)

    def runner(self, name: str):
        """The runner of component ``name``, opened on first use; in low-memory mode the others are closed first."""
        with self._lock:
            return self._runner(name)

    def _runner(self, name: str):
        if name not in self._runners:
            if self.low_memory:
                self._close(*self._runners)
            on_gpu = {"stream": self.stream} if self.stream is not None else {}  # CPU runners take no stream
            r = open_runner(self.root, self.manifest, name, self.backend_impl, self.precision, self.providers,
                            self.threads, **on_gpu)
            if self.low_memory and not can_release(r):
                log.warning("low-memory mode: the %s runner of %s cannot release its memory (it has no close()), "
                            "so it stays resident beside the next component", r.backend, name)
            self._runners[name] = r
        return self._runners[name]

    def add_observer(self, observer: StageObserver) -> StageObserver:
        """Tell ``observer`` when each stage starts and ends (and let it wrap the stage's runner); returns it."""
        self._observers.append(observer)
        return observer

    def remove_observer(self, observer: StageObserver) -> None:
        self._observers.remove(observer)

    @contextmanager
    def stage(self, name: str) -> Iterator[Any]:
        """``with self.stage(name) as runner:`` the runner of component ``name`` for one stage: observers hear the
        start (before the runner opens) and the end (after it is released: closed in low-memory mode, also when the
        stage raised)."""
        observers, t0 = list(self._observers), time.perf_counter()
        for o in observers:
            o.stage_started(name)
        error = None
        try:
            runner = self.runner(name)
            for o in observers:
                runner = o.wrap_runner(name, runner)
            yield runner
        except BaseException as e:
            error = e
            raise
        finally:
            self.release(name)
            for o in observers:
                o.stage_ended(name, time.perf_counter() - t0, error)

    def release(self, name: str) -> None:
        """Stage ``name`` is done for this call: in low-memory mode close its runner now, else keep it for the next
        call."""
        if self.low_memory:
            self._close(name)

    def _close(self, *names: str) -> None:
        with self._lock:
            closing = [self._runners.pop(name, None) for name in list(names)]
        for r in closing:
            if r is not None and can_release(r):
                r.close()

    def check_sizes(self, batch: int, num_frames: int, height: int, width: int) -> None:
        """Refuse sizes outside the manifest's profile and outside what the backend built,
        before any backend runs (the backend's check: e.g. the built engines' profiles on TensorRT)."""
        check_request(self.manifest, batch, num_frames, height, width, root=str(self.root))
        sizes = {"batch": batch, "frames": num_frames, "height": height, "width": width}
        self.backend_impl.check_request(self.root, self.manifest, self.precision, sizes)

    # -- stages (each serialized as a whole call: the TensorRT call lock, the pipeline's stream) --------------------
    @serialized
    def encode_prompt(self, prompts: list[str], negatives: list[str] | None, clip_skip: int | None = None) -> Any:
        """Embeddings [2b, L, D] ([negative; prompt], one batch) under guidance, else [b, L, D]."""
        return self.embed(Prompts(prompts, negatives, None, None, negatives is not None), clip_skip)

    @serialized
    def encode_texts(self, texts: list[str]) -> dict[str, Any]:
        """The text encoder's outputs for ``texts`` (one call)."""
        with self.stage("text_encoder") as text_encoder:
            out = text_encoder.infer({"input_ids": self.tokenizer(texts)})
        check_stage(self, "text_encoder", out["last_hidden_state"])
        return out

    @serialized
    def embed(self, p: Prompts, clip_skip: int | None = None) -> Any:
        """The UNet's encoder_hidden_states from prompts and/or precomputed embeddings (t2vrt.runtime.prompts)."""
        dtype = next(t.dtype for t in self.manifest.spec("unet").inputs if t.name == "encoder_hidden_states")
        return embeddings(p, self.encode_texts, dtype, clip_skip)

    @serialized
    def denoise(self, x: Any, emb: Any, sampler, guidance_scale: float, noise: Noise, start: int = 0,
                callbacks: StepCallbacks | None = None, progress: bool | None = None,
                context: ContextPlan | None = None) -> Any:
        """The sampling loop: one batched UNet call per model evaluation, guidance eps = u + g (c - u); with a
        ``context`` plan of several windows, one call per window, blended to a full-length eps (runtime/context.py)."""
        with self.stage("unet") as unet:
            # the loop's edge: latents and embeddings where the UNet's outputs live (CUDA for the GPU runners), also
            # when prompt_embeds left the embeddings as NumPy; the runner's own, under observers' wrappers
            device = getattr(self.runner("unet"), "output_device", None)
            x, emb = on_device(x, device), on_device(emb, device)
            return self._loop(unet, x, emb, sampler, guidance_scale, noise, start, callbacks, progress, context)

    def _loop(self, unet, x: Any, emb: Any, sampler, guidance_scale: float, noise: Noise, start: int,
              callbacks: StepCallbacks | None, progress: bool | None, context: ContextPlan | None) -> Any:
        from tqdm.auto import tqdm

        guided = guidance_scale > 1.0
        on_step = (callbacks or StepCallbacks()).begin(sampler, start)
        state = sampler.init_state()
        # Timesteps converted at the edge, on the latents' device: no host copy inside the loop.
        ts = {i: from_numpy(np.array([sampler.timesteps[i]], dtype=np.float32),
                            x) for i in range(start, len(sampler.timesteps))}
        for i in tqdm(range(start, len(sampler.timesteps)), desc="denoise", disable=not self._progress(progress),
                      leave=False):
            xin = sampler.scale_model_input(x, i)

            def predict(xw, t=ts[i]):  # one batched UNet call over (a window of) the latents, guided
                eps = unet.infer({"sample": cat([xw, xw]) if guided else xw, "timestep": t,
                                  "encoder_hidden_states": emb})["noise_pred"]
                if guided:
                    u, c = eps[: len(xw)], eps[len(xw):]
                    eps = u + guidance_scale * (c - u)
                return eps

            eps = windowed(predict, xin, context) if context is not None and context.active else predict(xin)
            x, state = sampler.step(i, x, eps, state, noise.like_frames)
            check_step(self, i, len(sampler.timesteps), x, eps)  # NaN guard: one reduction per step
            x, emb = on_step(i, x, emb, guided)
        return x

    @serialized
    def decode(self, latents: Any, chunk: int, progress: bool | None = None) -> np.ndarray:
        """[b, c, f, h, w] latents -> float frames [b, f, H, W, 3] in [0, 1], ``chunk`` frames per VAE call."""
        b, c, f, h, w = latents.shape
        flat = permute(latents / self.scaling_factor, (0, 2, 1, 3, 4)).reshape(b * f, c, h, w)
        images = check_stage(self, "vae_decoder",
                             self.run_chunked("vae_decoder", {"latent": flat}, chunk, progress)["image"])
        video = images.reshape(b, f, *images.shape[1:])
        return np.clip(video.transpose(0, 1, 3, 4, 2) / 2 + 0.5, 0, 1)

    @serialized
    def run_chunked(self, name: str, feed: dict[str, Any], chunk: int,
                    progress: bool | None = None) -> dict[str, np.ndarray]:
        """Run a per-frame component (the VAE decoder or encoder) over the frames of ``feed`` ``chunk`` at a time.

        Each chunk's outputs go to host memory at once, so the backend holds one chunk's activations whatever the
        frame count. A last chunk shorter than the profile's minimum is padded with copies of its last frame (a
        TensorRT profile cannot take fewer), and the padding's outputs dropped. Runs as stage ``name``.
        """
        from tqdm.auto import tqdm

        lo = self.manifest.profile.decode_chunk[0]
        n = len(next(iter(feed.values())))
        parts: dict[str, list[np.ndarray]] = {}
        bar = tqdm(total=n, desc=name.replace("_", " "), unit="frame", disable=not self._progress(progress),
                   leave=False)
        with bar, self.stage(name) as runner:
            for i in range(0, n, chunk):
                k = min(chunk, n - i)
                piece = {key: _pad_to(v[i : i + k], lo) for key, v in feed.items()}
                for key, out in runner.infer(piece).items():
                    parts.setdefault(key, []).append(to_numpy(out)[:k])
                bar.update(k)
        return {key: np.concatenate(v) for key, v in parts.items()}

    # -- the call -------------------------------------------------------------------------------
    def plan(self, prompt: str | list[str] | None = None, height: int | None = None, width: int | None = None,
             num_frames: int = 16, num_inference_steps: int = 50, guidance_scale: float = 9.0,
             negative_prompt: str | list[str] | None = None, eta: float = 0.0, generator: Any = None,
             latents: Any = None, prompt_embeds: Any = None, negative_prompt_embeds: Any = None,
             output_type: str = "np", return_dict: bool = True, callback: Callable | None = None,
             callback_steps: int = 1, cross_attention_kwargs: dict | None = None, clip_skip: int | None = None, *,
             callback_on_step_end: Callable | None = None,
             callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",), seed: int | None = None,
             scheduler: str | None = None, decode_chunk_size: int | None = None, progress: bool | None = None,
             context_frames: int | None = None, context_stride: int | None = None, context_mode: str = "clamped",
             context_weighting: str = "taper", free_noise: bool = False) -> CallPlan:
        """diffusers' TextToVideoSDPipeline.__call__: the same arguments in the same order, the same defaults, the
        same result (``.frames[0]`` is the first video). Keyword-only extras: ``callback_on_step_end`` (and its
        tensor inputs) as current diffusers pipelines, ``seed`` (instead of a generator), ``scheduler`` (a name,
        e.g. "dpmsolver++"), ``decode_chunk_size`` (VAE frames per call), ``progress`` (the bars), and
        ``context_frames`` (W) and ``context_stride``: denoise in overlapping windows of W frames, so ``num_frames``
        may exceed the engine's frame range; ``context_mode`` "clamped" or "cyclic" (a looping video),
        ``context_weighting`` "taper" or "uniform"; ``free_noise``: FreeNoise's initial noise (runtime/context.py;
        given ``latents`` are used as they are, as in diffusers' FreeNoise).

        ``plan`` checks every argument and decides everything that needs no backend (a CallPlan); ``run(plan)``
        makes the video, and ``pipe(...)`` is ``pipe.run(pipe.plan(...))``."""
        check_call(self, locals())  # every argument, by name, before any backend runs
        p = read_prompts(prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, guidance_scale,
                         self.embed_shape)
        height, width = self.native_size(height, width)
        context = context_plan(self.manifest.profile.frames, num_frames, context_frames, context_stride, context_mode,
                               context_weighting, free_noise, root=str(self.root))
        self.check_sizes(p.batch, num_frames if context is None else context.unet_frames, height, width)
        chunk = self._chunk(decode_chunk_size, p.batch * num_frames)
        self.check_unsupported(cross_attention_kwargs, clip_skip)
        steps = StepCallbacks(callback, callback_steps, callback_on_step_end, callback_on_step_end_tensor_inputs, self)
        sampler = self.sampler(scheduler, num_inference_steps, eta)
        m = self.manifest.model
        shape = (p.batch, m.latent_channels, num_frames, height // m.vae_scale, width // m.vae_scale)
        if latents is not None and tuple(latents.shape) != shape:
            raise InputError(f"latents have shape {tuple(latents.shape)}; expected {shape} for these arguments")
        seed = Noise(seed, generator).seed  # checks seed against generator; a random seed when neither is given
        return CallPlan(p, num_frames, height, width, shape, sampler, 0, guidance_scale, context, chunk, seed,
                        generator, latents, free_noise, clip_skip, steps, output_type, return_dict, progress)

    @serialized
    def run(self, plan: CallPlan) -> Video | tuple:
        """Make the video ``plan`` describes (``plan = pipe.plan(...)``, the arguments of ``__call__``)."""
        noise = Noise(plan.seed, plan.generator)
        x = self.initial_latents(plan.latents, plan.latent_shape, noise, plan.context if plan.free_noise else None)
        emb = self.embed(plan.prompts, plan.clip_skip)
        x = from_numpy(to_numpy(x * plan.sampler.init_noise_sigma), emb)  # on the engines' device (no-op for NumPy)
        x = self.denoise(x, emb, plan.sampler, plan.guidance_scale, noise, callbacks=plan.callbacks,
                         progress=plan.progress, context=plan.context)
        return self.result(x, plan.decode_chunk, noise.seed, plan.output_type, plan.return_dict, plan.progress)

    __call__ = planned_call(plan)

    def native_size(self, height: int | None, width: int | None) -> tuple[int, int]:
        """(height, width) with the model's native size (sample_size x VAE scale) where not given."""
        m = self.manifest.model
        return height or m.sample_size * m.vae_scale, width or m.sample_size * m.vae_scale

    @property
    def embed_shape(self) -> tuple[int, int]:
        """(tokens, width) of one prompt's embeddings, what prompt_embeds must have after the batch axis."""
        return self.manifest.model.max_length, self.manifest.model.text_hidden

    def sampler(self, scheduler: str | None, num_inference_steps: int, eta: float):
        check_positive("num_inference_steps", num_inference_steps)
        check_positive("eta", eta, allow_zero=True)
        return make_sampler(scheduler, self.scheduler_config, num_inference_steps, **({"eta": eta} if eta else {}))

    def check_unsupported(self, cross_attention_kwargs: dict | None, clip_skip: int | None) -> None:
        """One line for what an exported graph cannot do, and for clip_skip where the text encoder cannot serve it."""
        if cross_attention_kwargs:
            raise InputError(
                f"cross_attention_kwargs={cross_attention_kwargs!r} is not supported: attention processors and LoRA "
                "scales are fixed in the exported UNet; fuse a LoRA into the model's weights before `t2vrt export`")
        check_clip_skip(self.manifest, clip_skip)

    def initial_latents(self, latents: Any, shape: tuple[int, ...], noise: Noise,
                        free_noise_plan: ContextPlan | None = None) -> np.ndarray:
        """Given latents as they are, else a draw (FreeNoise's reordered one with a plan)."""
        if latents is None:
            x = noise.randn(shape)
            return x if free_noise_plan is None else free_noise_latents(x, free_noise_plan, noise)
        if tuple(latents.shape) != shape:
            raise InputError(f"latents have shape {tuple(latents.shape)}; expected {shape} for these arguments")
        return to_numpy(latents).astype(np.float32)

    def result(self, x: Any, chunk: int, seed: int | None, output_type: str, return_dict: bool,
               progress: bool | None = None) -> Any:
        """Decode unless ``output_type`` is "latent"; diffusers' output object, or its tuple with
        ``return_dict=False``."""
        out = Video.build(None if output_type == "latent" else self.decode(x, chunk, progress), x, seed, output_type)
        return out if return_dict else out.to_tuple()

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """As diffusers: ``disable=True`` turns the bars off for every later call (``progress=`` overrides per call)."""
        self._progress_config = dict(kwargs)

    def _progress(self, progress: bool | None) -> bool:
        if progress is not None:
            return progress
        return not getattr(self, "_progress_config", {}).get("disable", False)

    def _chunk(self, chunk: int | None, frames: int) -> int:
        """VAE frames per call: the profile's opt by default, refused outside the profile, at most ``frames``."""
        opt = self.manifest.profile.decode_chunk[1]
        if chunk is None:
            return min(opt, frames)
        check_decode_chunk(self.manifest, chunk, root=str(self.root))
        if chunk > frames:
            log.info("decode_chunk_size=%d is more than the %d frames to decode: decoding them in one call", chunk,
                     frames)
        return min(chunk, frames)

    def close(self) -> None:
        """Close every open runner (in any mode); a later call opens what it needs again."""
        self._close(*self._runners)


def _pad_to(x: Any, n: int) -> Any:
    """``x`` with its last item repeated until it has at least ``n`` items along axis 0."""
    return x if len(x) >= n else cat([x] + [x[-1:]] * (n - len(x)))
