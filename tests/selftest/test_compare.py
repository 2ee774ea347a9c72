"""The comparisons on their own: Polygraphy's elementwise check at each precision's tolerance, NaN and shape
failures, and a generation's frames by PSNR, NaN and black frames."""

import numpy as np
import pytest

pytest.importorskip("polygraphy")

from t2vrt.selftest.compare import TOLERANCES, compare_outputs, frame_checks  # noqa: E402

NAMES = ("reference", "candidate")


def _pair(offset: float, seed: int = 0):
    x = np.random.default_rng(seed).standard_normal((2, 4, 3, 8, 8)).astype(np.float32)
    return {"noise_pred": x}, {"noise_pred": x + np.float32(offset)}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_inside_the_tolerance_passes_and_outside_fails(precision):
    atol = TOLERANCES[precision]["atol"]
    inside = compare_outputs(*_pair(atol / 2), precision, NAMES)
    assert inside["passed"] and inside["atol"] == atol
    assert inside["outputs"]["noise_pred"]["max_abs"] == pytest.approx(atol / 2, rel=1e-2)
    # an offset of 20 atol on values of about 1 is also above rtol of them, for most elements
    outside = compare_outputs(*_pair(20 * atol), precision, NAMES)
    assert not outside["passed"] and outside["outputs"]["noise_pred"]["max_abs"] == pytest.approx(20 * atol, rel=1e-2)


def test_nan_and_a_shape_mismatch_fail():
    ref, out = _pair(0.0)
    out["noise_pred"][0, 0, 0, 0, 0] = np.nan
    r = compare_outputs(ref, out, "fp32", NAMES)
    assert not r["passed"] and r["outputs"]["noise_pred"]["nan"] is True
    shorter = {"noise_pred": ref["noise_pred"][:, :, :2]}
    assert not compare_outputs(ref, shorter, "fp32", NAMES)["passed"]


def test_frames_fail_on_low_psnr_nan_and_black_frames():
    frames = np.random.default_rng(1).uniform(0.2, 0.8, (1, 4, 16, 16, 3))
    same = frame_checks(frames, frames, "fp16")
    assert same["passed"] and same["psnr_db"] == "inf" and same["black_frames"] == 0 and same["frames"] == 4
    noisy = frames + np.random.default_rng(2).normal(0, 0.1, frames.shape)  # about 20 dB
    r = frame_checks(noisy, frames, "fp16")
    assert not r["passed"] and 15 < r["psnr_db"] < 25
    black = frames.copy()
    black[0, 2] = 0.0
    r = frame_checks(black, frames, "bf16")
    assert r["black_frames"] == 1 and not r["passed"]
    nan = frames.copy()
    nan[0, 1, 0, 0, 0] = np.nan
    assert frame_checks(nan, frames, "fp32")["nan"] == 1 and not frame_checks(nan, frames, "fp32")["passed"]
