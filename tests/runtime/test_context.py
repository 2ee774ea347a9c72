"""Issue 15, the pure parts: window schedules, blending weights, the windowed call, FreeNoise's frame order."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from t2vrt.errors import InputError
from t2vrt.runtime.context import (
    ContextPlan,
    blend_weights,
    check_context,
    context_plan,
    free_noise_order,
    unet_calls_per_evaluation,
    window_schedule,
    windowed,
)

CASES = [(256, 16, 4), (24, 16, 4), (17, 16, 16), (40, 8, 3), (9, 8, 1), (8, 8, 4), (5, 8, 2), (33, 16, 5)]


@pytest.mark.parametrize("mode", ["clamped", "cyclic"])
@pytest.mark.parametrize("f,w,s", CASES)
def test_windows_cover_every_frame_and_match_the_formula(f, w, s, mode):
    windows = window_schedule(f, w, s, mode)
    assert len(windows) == unet_calls_per_evaluation(f, w, s, mode)
    assert set(np.concatenate(windows).tolist()) == set(range(f))
    assert all(len(idx) == min(f, w) and len(set(idx.tolist())) == len(idx) for idx in windows)
    if mode == "clamped":  # in order, inside the video, the last one ending at its last frame
        assert all((np.diff(idx) == 1).all() for idx in windows) and windows[-1][-1] == f - 1
        assert all(b[0] - a[0] <= s for a, b in zip(windows, windows[1:]))


def test_formula_examples():
    # 256 frames, W=16, stride 4: windows at 0, 4, ..., 236 and 240 -> 61 calls; cyclic: 64
    assert unet_calls_per_evaluation(256, 16, 4) == 61
    assert unet_calls_per_evaluation(256, 16, 4, "cyclic") == 64
    assert unet_calls_per_evaluation(16, 16, 4) == 1


@pytest.mark.parametrize("weighting", ["taper", "uniform"])
@pytest.mark.parametrize("mode", ["clamped", "cyclic"])
@pytest.mark.parametrize("f,w,s", CASES)
def test_weights_sum_to_one_per_frame(f, w, s, mode, weighting):
    windows = window_schedule(f, w, s, mode)
    weights = blend_weights(windows, f, weighting)
    total = np.zeros(f)
    for idx, wt in zip(windows, weights):
        assert (wt > 0).all()
        np.add.at(total, idx, wt)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


def test_taper_fades_at_the_edges_and_uniform_does_not():
    w = blend_weights([np.arange(16), np.arange(8, 24)], 24, "taper")
    assert w[0][0] == 1.0 and w[0][8] > w[0][12] > w[0][15] > 0  # the first window fades out over the overlap
    u = blend_weights([np.arange(16), np.arange(8, 24)], 24, "uniform")
    np.testing.assert_allclose(u[0][8:], 0.5)


def _spy(calls: list):
    """A model whose frames are labelled by value: x[:, :, t] == t; it records the labels it sees, returns 2x."""
    def call(xw):
        calls.append(sorted({int(v) for v in np.unique(np.asarray(xw[0, 0, :, 0, 0]))}))
        return 2 * xw
    return call


@pytest.mark.parametrize("mode", ["clamped", "cyclic"])
@pytest.mark.parametrize("f,w,s", [(256, 16, 4), (40, 8, 3), (33, 16, 5)])
def test_windowed_calls_at_most_w_frames_and_blends_to_the_full_prediction(f, w, s, mode):
    x = np.broadcast_to(np.arange(f, dtype=np.float32).reshape(1, 1, f, 1, 1), (2, 3, f, 2, 3)).copy()
    calls: list = []
    out = windowed(_spy(calls), x, ContextPlan(f, w, s, mode))
    assert len(calls) == unet_calls_per_evaluation(f, w, s, mode)
    assert all(len(c) <= w for c in calls) and set().union(*map(set, calls)) == set(range(f))
    np.testing.assert_allclose(out, 2 * x, rtol=1e-6)  # a prediction the same in every window blends to itself


def test_windowed_on_torch_tensors_matches_numpy():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((1, 2, 30, 3, 4)).astype(np.float32)
    plan = ContextPlan(30, 8, 3, "cyclic")
    model = lambda xw: xw * 0.5 + 1  # noqa: E731  (works on both kinds)
    a = windowed(model, x, plan)
    b = windowed(model, torch.from_numpy(x), plan)
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-6)


@pytest.mark.parametrize("f,w,s", [(256, 16, 4), (64, 16, 8), (48, 8, 2), (37, 12, 4)])
def test_free_noise_windows_are_permutations_of_the_first(f, w, s):
    order = free_noise_order(f, w, s, np.random.default_rng(0))
    assert (order[:w] == np.arange(w)).all() and (order < w).all()
    for idx in window_schedule(f, w, s, "clamped"):
        if idx[0] % s == 0:  # windows on the stride grid hold exactly the first window's noise, reordered
            assert Counter(order[idx].tolist()) == Counter(range(w)), idx[0]
    assert not (order[w:] == np.arange(w, f) % w).all()  # reordered, not tiled
    again = free_noise_order(f, w, s, np.random.default_rng(0))
    assert (order == again).all()  # seeded


def test_free_noise_is_the_identity_within_one_window():
    assert (free_noise_order(16, 16, 4, np.random.default_rng(1)) == np.arange(16)).all()


PROFILE = (8, 16, 24)


@pytest.mark.parametrize("args,message", [
    ((256, None, None), "num_frames=256 is outside this engine directory's range [8, 24]; re-export with `t2vrt export "
                        "MODEL -o DIR --overwrite --frames 8:16:256`, or denoise it in overlapping windows with "
                        "context_frames=16, context_stride=4 (CLI: --context-frames 16 --context-stride 4)"),
    ((256, 32, 4), "context_frames=32 is outside this engine directory's range [8, 24]; re-export with"),
    ((256, 4, 2), "context_frames=4 is outside this engine directory's range [8, 24]"),
    ((256, 16, 17), "context_stride=17 must be in [1, 16]"),
    ((256, 16, 0), "context_stride=0 must be in [1, 16]"),
    ((16, None, 4), "need context_frames"),
])
def test_bad_combinations_get_one_line(args, message):
    with pytest.raises(InputError) as e:
        check_context(PROFILE, *args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_plan_refuses_unknown_mode_and_weighting():
    with pytest.raises(InputError, match="context_mode='loop'; choose one of clamped, cyclic"):
        context_plan(PROFILE, 256, 16, 4, context_mode="loop")
    with pytest.raises(InputError, match="context_weighting='gauss'; choose one of taper, uniform"):
        context_plan(PROFILE, 8, 16, 4, context_weighting="gauss")
    assert context_plan(PROFILE, 20) is None
    assert context_plan(PROFILE, 256, 16).stride == 4


def test_seam_metric_sees_a_jump_at_a_window_edge():
    from t2vrt.runtime.context import seam_metric

    windows = window_schedule(24, 8, 8)  # edges between frames 7|8 and 15|16
    smooth = np.broadcast_to(np.linspace(0, 1, 24).reshape(24, 1, 1, 1), (24, 4, 4, 3)).copy()
    s = seam_metric(smooth, windows)
    assert s["boundary_pairs"] == 2 and s["inside_pairs"] == 21 and s["ratio"] == pytest.approx(1.0)
    jumpy = smooth.copy()
    jumpy[8:] += 0.5
    assert seam_metric(jumpy, windows)["ratio"] > 5
    assert seam_metric(smooth[:8], window_schedule(8, 8, 4)) is None  # one window: no seams


def test_free_noise_latents_from_a_seed_or_a_generator_are_reproducible():
    torch = pytest.importorskip("torch")
    from t2vrt.runtime.context import free_noise_latents
    from t2vrt.runtime.noise import Noise

    plan = ContextPlan(40, 8, 4)
    for make in (lambda: Noise(7), lambda: Noise(None, torch.Generator("cpu").manual_seed(7))):
        outs = []
        for _ in range(2):
            noise = make()
            base = noise.randn((1, 2, 40, 3, 3))
            outs.append(free_noise_latents(base, plan, noise))
            frames_of = {tuple(base[0, :, t].ravel()) for t in range(8)}
            assert all(tuple(outs[-1][0, :, t].ravel()) in frames_of for t in range(40))  # only first-window noise
        np.testing.assert_array_equal(outs[0], outs[1])
