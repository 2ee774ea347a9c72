"""Temporal context windows: denoise a video longer than the UNet's frame range in overlapping windows.

Each model evaluation runs the UNet over windows of at most ``W`` frames, ``stride`` frames apart, and blends the
per-frame noise predictions with weights that sum to one per frame (the output-level fusion of MultiDiffusion,
Bar-Tal et al. 2023, arXiv:2302.08113, applied along time as AnimateDiff's context windows do). The scheduler sees
one full-length prediction, so every sampler works unchanged. ``free_noise_order`` is FreeNoise's noise rescheduling
(Qiu et al. 2023, arXiv:2310.15169, section 3.2). The functions are pure and work on NumPy arrays and torch tensors.

UNet calls per model evaluation (each at batch 2b under classifier-free guidance), for F frames, W and stride s:
    F <= W:   1
    clamped:  ceil((F - W) / s) + 1      (windows at 0, s, 2s, ... and a last one ending at frame F)
    cyclic:   ceil(F / s)                (windows at 0, s, 2s, ... < F, wrapping around to frame 0)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from t2vrt.errors import InputError
from t2vrt.runtime.arrays import is_torch

log = logging.getLogger(__name__)
MODES = ("clamped", "cyclic")
WHERE = "this engine directory's range"  # as runtime/checks.py
WEIGHTINGS = ("taper", "uniform")


def default_stride(frames: int) -> int:
    """A quarter window: 4 for W=16, as diffusers' FreeNoise default."""
    return max(1, frames // 4)


def window_schedule(num_frames: int, frames: int, stride: int, mode: str = "clamped") -> list[np.ndarray]:
    """Frame indices of each window; together they cover every frame of ``num_frames``.

    ``clamped``: windows start at 0, s, 2s, ...; the last is moved back to end at the last frame, so every window
    has exactly ``frames`` frames. ``cyclic``: windows start at every multiple of s below ``num_frames`` and wrap
    around to frame 0, so the first and last frames are blended together (a video that loops)."""
    if not 1 <= stride <= frames:
        raise InputError(f"context_stride={stride} must be in [1, {frames}] (context_frames={frames})")
    if mode not in MODES:
        raise InputError(f"context_mode={mode!r}; choose one of {', '.join(MODES)}")
    if num_frames <= frames:
        return [np.arange(num_frames)]
    if mode == "cyclic":
        return [(start + np.arange(frames)) % num_frames for start in range(0, num_frames, stride)]
    starts = list(range(0, num_frames - frames, stride)) + [num_frames - frames]
    return [start + np.arange(frames) for start in starts]


def unet_calls_per_evaluation(num_frames: int, frames: int, stride: int, mode: str = "clamped") -> int:
    """The formula of the module docstring (``len(window_schedule(...))`` without building it)."""
    if num_frames <= frames:
        return 1
    if mode == "cyclic":
        return math.ceil(num_frames / stride)
    return math.ceil((num_frames - frames) / stride) + 1


def window_profile(n: int, weighting: str = "taper") -> np.ndarray:
    """Unnormalized weight of each position in a window of ``n`` frames.

    ``uniform``: all ones (diffusers' "flat"). ``taper``: a Hann window sampled half a frame in from each edge,
    sin^2(pi (j + 1/2) / n), so it is positive everywhere (every frame stays covered) and a window fades in and out
    over its overlap instead of switching at its edge."""
    if weighting not in WEIGHTINGS:
        raise InputError(f"context_weighting={weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    if weighting == "uniform":
        return np.ones(n)
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


def blend_weights(windows: list[np.ndarray], num_frames: int, weighting: str = "taper") -> list[np.ndarray]:
    """Per-window, per-frame float64 weights normalized so the weights of each frame sum to one over the windows."""
    raw = [window_profile(len(idx), weighting) for idx in windows]
    total = np.zeros(num_frames)
    for idx, w in zip(windows, raw):
        np.add.at(total, idx, w)
    if not (total > 0).all():
        raise ValueError(f"frames {np.flatnonzero(total <= 0).tolist()} are in no window")  # a bug, not a user error
    return [w / total[idx] for idx, w in zip(windows, raw)]


@dataclass
class ContextPlan:
    """The windows and blending weights of one call, built once before the loop."""

    num_frames: int
    frames: int
    stride: int
    mode: str = "clamped"
    weighting: str = "taper"
    windows: list[np.ndarray] = field(init=False)
    weights: list[np.ndarray] = field(init=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.windows = window_schedule(self.num_frames, self.frames, self.stride, self.mode)
        self.weights = blend_weights(self.windows, self.num_frames, self.weighting)

    @property
    def unet_frames(self) -> int:
        """The most frames one UNet call sees."""
        return max(len(idx) for idx in self.windows)

    @property
    def active(self) -> bool:
        """False when one window holds the whole video: then denoising is exactly the plain loop."""
        return len(self.windows) > 1

    def weights_like(self, x: Any) -> list[Any]:
        """The weights as [1, 1, n, 1, 1] arrays of ``x``'s type, device and dtype (converted once per kind)."""
        key = (type(x), str(getattr(x, "device", "")), str(x.dtype))
        if key not in self._cache:
            self._cache[key] = [_as_array(w.reshape(1, 1, -1, 1, 1), x) for w in self.weights]
        return self._cache[key]


def windowed(unet_call: Callable[[Any], Any], x: Any, plan: ContextPlan) -> Any:
    """The full-length prediction for latents ``x`` [b, c, f, h, w]: ``unet_call`` (latents of one window ->
    its guided noise prediction) on each window of ``plan``, blended frame by frame with the plan's weights."""
    out = None
    for idx, w in zip(plan.windows, plan.weights_like(x)):
        sel = _frames(idx, x)
        xw = x[:, :, sel]  # a strided view for a run of frames: runners bind contiguous buffers
        part = unet_call(xw.contiguous() if is_torch(xw) else np.ascontiguousarray(xw)) * w
        if out is None:
            out = part.new_zeros(x.shape) if is_torch(part) else np.zeros(x.shape, dtype=part.dtype)
        out[:, :, sel] += part
    return out


def free_noise_order(num_frames: int, frames: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """FreeNoise's rescheduling as a frame map: latents[:, :, order] is the rescheduled noise.

    Frames [0, W) keep their own noise. Each later block of ``stride`` frames takes the noise of the block one
    window length earlier in a random order, so every frame's noise is one of the first window's W frames and a
    window starting at a multiple of ``stride`` (with W a multiple of ``stride``) holds exactly the first window's
    noise, reordered. Distant frames thus start from the same noise and keep the same content; the price is less
    variety over a long video (its motion tends to repeat with period about W) and nothing else: the full-length
    noise is drawn as without it (the same random stream for the sampler), then reindexed."""
    order = np.arange(num_frames)
    for start in range(frames, num_frames, stride):
        n = min(stride, num_frames - start)
        back = order[start - frames : start - frames + stride]
        order[start : start + n] = rng.permutation(back)[:n]
    return order


def context_plan(frames_range: tuple[int, int, int], num_frames: int, context_frames: int | None = None,
                 context_stride: int | None = None, context_mode: str = "clamped", context_weighting: str = "taper",
                 free_noise: bool = False, root: str = "DIR") -> ContextPlan | None:
    """The checked plan of a call's context arguments (named as the pipelines' keywords); None without
    ``context_frames`` (plain denoising)."""
    check_context(frames_range, num_frames, context_frames, context_stride, free_noise, root)
    if context_frames is None:
        return None
    window_profile(1, context_weighting)  # refuse an unknown weighting even when one window holds the video
    stride = default_stride(context_frames) if context_stride is None else context_stride
    plan = ContextPlan(num_frames, context_frames, stride, context_mode, context_weighting)
    if plan.active:
        log.info("denoising %d frames in %d %s windows of %d frames, %d apart (%s blending): %d UNet calls per model "
                 "evaluation", num_frames, len(plan.windows), context_mode, context_frames, stride, context_weighting,
                 len(plan.windows))
    return plan


def free_noise_latents(latents: Any, plan: ContextPlan, noise: Any) -> Any:
    """``latents`` [b, c, f, h, w] with FreeNoise's frame order (``free_noise_order``), drawn from ``noise``'s seed.

    The order comes from its own NumPy stream seeded by (seed, "FREE"), so the Gaussian stream the sampler draws
    from later is the same as without FreeNoise; given a generator and no seed, one integer is drawn from it."""
    seed = noise.seed
    if seed is None:
        import torch

        seed = int(torch.randint(0, 2**62, (1,), generator=noise.generator, device=noise.generator.device))
    order = free_noise_order(plan.num_frames, plan.frames, plan.stride, np.random.default_rng([int(seed), 0x46524545]))
    return latents[:, :, _frames(order, latents)]


def seam_metric(images: np.ndarray, windows: list[np.ndarray]) -> dict | None:
    """How visible the window seams are in decoded ``images`` [b, f, H, W, 3] (or [f, H, W, 3]).

    The mean absolute difference between consecutive frames t, t+1 where a window edge falls between them (some
    window holds exactly one of the two) against the same where none does; a ratio near 1 means the seams are no
    jumpier than the motion inside windows. None when one window holds the video (there are no seams)."""
    a = np.asarray(images, dtype=np.float32)
    a = a if a.ndim == 5 else a[None]
    f = a.shape[1]
    member = np.zeros((len(windows), f), dtype=bool)
    for k, idx in enumerate(windows):
        member[k, idx] = True
    edge = (member[:, :-1] != member[:, 1:]).any(axis=0)  # per pair (t, t+1)
    if not edge.any() or edge.all():
        return None
    step = np.abs(a[:, 1:] - a[:, :-1]).mean(axis=(0, 2, 3, 4))
    boundary, inside = float(step[edge].mean()), float(step[~edge].mean())
    return {"boundary": boundary, "inside": inside, "ratio": boundary / inside if inside > 0 else float("inf"),
            "boundary_pairs": int(edge.sum()), "inside_pairs": int((~edge).sum())}


def check_context(frames_range: tuple[int, int, int], num_frames: int, context_frames: int | None,
                  context_stride: int | None, free_noise: bool = False, root: str = "DIR") -> None:
    """One-line InputErrors for the frame arguments, before any model runs (``root``: the engine directory, for the
    re-export command the messages name)."""
    from t2vrt.manifest import check_field

    lo, opt, hi = frames_range
    if context_frames is None:
        try:
            check_field("frames", num_frames, frames_range, WHERE, root=root, name="num_frames")
        except InputError as e:
            if num_frames <= hi:
                raise
            w = min(max(opt, lo), hi)
            raise InputError(f"{e}, or denoise it in overlapping windows with context_frames={w}, context_stride="
                             f"{default_stride(w)} (CLI: --context-frames {w} --context-stride "
                             f"{default_stride(w)})") from None
        if context_stride is not None or free_noise:
            raise InputError("context_stride and free_noise need context_frames (the window length in frames); give it "
                             "too")
        return
    check_field("frames", context_frames, frames_range, WHERE, root=root, name="context_frames")
    if context_stride is not None and not 1 <= context_stride <= context_frames:
        raise InputError(f"context_stride={context_stride} must be in [1, {context_frames}] (at most the window, "
                         f"context_frames={context_frames}, so the windows overlap or touch)")


def _frames(idx: np.ndarray, x: Any) -> Any:
    """A slice for a run of consecutive frames (a view, no copy), else an index array of ``x``'s kind."""
    if idx[-1] - idx[0] == len(idx) - 1:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    if is_torch(x):
        import torch

        return torch.as_tensor(idx, device=x.device)
    return idx


def _as_array(a: np.ndarray, like: Any) -> Any:
    if is_torch(like):
        import torch

        return torch.from_numpy(a).to(device=like.device, dtype=like.dtype)
    return a.astype(like.dtype)
