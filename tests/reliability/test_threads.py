"""One Pipeline called from several threads, in each mode: every call succeeds and matches a sequential one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from t2vrt import Pipeline

CALL = dict(num_frames=2, height=32, width=32, num_inference_steps=2, progress=False)


@pytest.mark.parametrize("low_memory", [False, True])
def test_concurrent_calls(tiny_engines, low_memory):
    pipe = Pipeline.load(tiny_engines, low_memory=low_memory)
    seeds = list(range(4))  # 4 threads at once: the issue saw "runner was closed" in 2 of 8 such calls
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: pipe("a cat", seed=s, **CALL).frames, seeds))
    alone = Pipeline.load(tiny_engines)
    for s, frames in zip(seeds, results):
        np.testing.assert_array_equal(frames, alone("a cat", seed=s, **CALL).frames)
    if low_memory:
        assert pipe._runners.keys() <= {"vae_decoder"}  # only the last stage's runner may remain, none half-closed


def test_runner_opened_once_under_races(tiny_engines, monkeypatch):
    from t2vrt.runtime import pipeline as pipeline_module

    opened = []
    real = pipeline_module.open_runner
    monkeypatch.setattr(pipeline_module, "open_runner", lambda root, m, name,
                        *a: opened.append(name) or real(root, m, name, *a))
    pipe = Pipeline.load(tiny_engines)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: pipe.runner("unet"), range(16)))
    assert opened == ["unet"]
