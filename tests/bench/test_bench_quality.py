"""The quality metrics of bench against known values and a direct (loop) evaluation of the SSIM formula."""

import math

import numpy as np
import pytest

from t2vrt.bench.quality import BLACK, bad_frames, psnr, quality, relative_l2, ssim


def _ssim_loops(x, y, win=11, sigma=1.5):
    """Wang et al. 2004 eq. 13 written out window by window, one grey image (the reference for the vectorized one)."""
    g = np.exp(-((np.arange(win) - (win - 1) / 2) ** 2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2, vals = 0.01**2, 0.03**2, []
    for i in range(x.shape[0] - win + 1):
        for j in range(x.shape[1] - win + 1):
            a, b = x[i : i + win, j : j + win], y[i : i + win, j : j + win]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb, cab = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum(), (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_known_values():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 24, 20, 3))
    assert ssim(x, x) == pytest.approx(1.0)
    # constant frames: only the luminance term is left, (2 * 0.5 * 0.25 + C1) / (0.5^2 + 0.25^2 + C1)
    assert ssim(np.full((1, 16, 16, 3), 0.5), np.full((1, 16, 16, 3), 0.25)) == pytest.approx(
        (0.25 + 1e-4) / (0.3125 + 1e-4)
    )
    # uniform noise plus independent noise of sigma 0.1: about 2 var(x) / (2 var(x) + 0.01) = 0.943
    noisy = x + rng.normal(0, 0.1, x.shape)
    assert ssim(noisy, x) == pytest.approx(2 / 12 / (2 / 12 + 0.01), abs=0.01)
    one, two = x[0, 0, ..., :1], noisy[0, 0, ..., :1]
    assert ssim(two[None], one[None]) == pytest.approx(_ssim_loops(two[..., 0], one[..., 0]), rel=1e-9)
    assert ssim(x[..., :8, :8, :], noisy[..., :8, :8, :]) < 1  # smaller than the window: a 7x7 window
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[..., :1])


def test_psnr_and_relative_l2():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a + 0.1, a) == pytest.approx(20.0)  # 10 log10(1 / 0.01)
    assert relative_l2(np.array([3.0, 4.0]), np.array([3.0, 0.0])) == pytest.approx(4 / 3)


def test_nan_and_black_frames_are_counted():
    f = np.full((1, 4, 8, 8, 3), 0.5)
    f[0, 1] = 0.0
    f[0, 2] = BLACK / 2
    f[0, 3, 0, 0, 0] = np.nan
    assert bad_frames(f) == {"nan_frames": 1, "black_frames": 2}
    q = quality(f, np.full_like(f, 0.5), np.ones(3), np.ones(3))
    assert (q["nan_frames"], q["black_frames"], q["reference_black_frames"], q["latent_rel_l2"]) == (1, 2, 0, 0.0)
    assert q["max_abs"] == pytest.approx(0.5) and q["psnr_db"] != q["psnr_db"]  # NaN frames make PSNR NaN: not hidden
