"""Quality numbers beside every speed number: frame differences, PSNR, SSIM, latent relative L2, NaN and black frames.

Frames are floats in [0, 1], shaped [..., H, W, C] (the pipelines' ``[b, f, H, W, 3]``); every metric is over all of
them. SSIM is Wang et al. 2004 ("Image quality assessment: from error visibility to structural similarity", eq. 13)
with scikit-image's Gaussian setting: an 11x11 window of sigma 1.5, K1 0.01, K2 0.03, over each channel of each frame,
valid positions only (no padding), averaged.
"""

from __future__ import annotations

import numpy as np

BLACK = 1 / 255  # a frame whose every value is at most this is black


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical arrays)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the last two axes of ``x`` [n, H, W] by the 1-D window ``g``."""
    k = len(g)
    rows = sum(g[i] * x[:, i : x.shape[1] - k + 1 + i, :] for i in range(k))
    return sum(g[i] * rows[:, :, i : x.shape[2] - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, win: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity of two frame stacks [..., H, W, C] (1.0 for identical frames)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"ssim needs two frame stacks [..., H, W, C] of one shape; got {a.shape} and {b.shape}")
    h, w = a.shape[-3:-1]
    win = min(win, h, w)
    win -= 1 - win % 2  # frames smaller than the window: the largest odd window that fits
    x = np.moveaxis(a, -1, -3).reshape(-1, h, w)  # [n * C, H, W]
    y = np.moveaxis(b, -1, -3).reshape(-1, h, w)
    g = _gaussian(win, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    vx, vy, cxy = _filter(x * x, g) - mx * mx, _filter(y * y, g) - my * my, _filter(x * y, g) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def relative_l2(a, b) -> float:
    """||a - b|| / ||b|| (``b`` the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ref = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / ref if ref else float(np.linalg.norm(a - b))


def bad_frames(frames: np.ndarray) -> dict[str, int]:
    """Counts of frames [..., H, W, C] holding a NaN, and of black frames (every value at most 1/255)."""
    f = np.asarray(frames, np.float64).reshape(-1, *np.shape(frames)[-3:])
    nan = np.isnan(f).any(axis=(1, 2, 3))
    black = ~nan & (np.nan_to_num(f, nan=1.0) <= BLACK).all(axis=(1, 2, 3))
    return {"nan_frames": int(nan.sum()), "black_frames": int(black.sum())}


def quality(ours: np.ndarray, ref: np.ndarray, ours_latents=None, ref_latents=None) -> dict:
    """Every quality number of one comparison (``ref`` the reference pipeline's frames)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    d = np.abs(ours - ref)
    out = {"max_abs": float(np.nanmax(d)) if d.size else 0.0, "mean_abs": float(np.nanmean(d)) if d.size else 0.0,
           "psnr_db": psnr(ours, ref), "ssim": ssim(ours, ref)}
    if ours_latents is not None and ref_latents is not None:
        out["latent_rel_l2"] = relative_l2(ours_latents, ref_latents)
    bad_o, bad_r = bad_frames(ours), bad_frames(ref)
    out.update({"nan_frames": bad_o["nan_frames"], "black_frames": bad_o["black_frames"],
                "reference_nan_frames": bad_r["nan_frames"], "reference_black_frames": bad_r["black_frames"]})
    return out
