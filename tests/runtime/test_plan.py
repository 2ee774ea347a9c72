"""The call plan (Pipeline.plan / run) and the stage seam (Pipeline.stage and its observers)."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt import Pipeline, VideoToVideoPipeline
from t2vrt.errors import InputError
from t2vrt.runtime.stages import StageObserver

PROMPT = "a panda eating bamboo on a rock"
CALL = dict(num_frames=3, height=32, width=48, num_inference_steps=2, progress=False)


class Events(StageObserver):
    def __init__(self):
        self.events = []

    def stage_started(self, stage):
        self.events.append(("start", stage))

    def stage_ended(self, stage, seconds, error):
        assert seconds >= 0
        self.events.append(("end", stage, type(error).__name__ if error else None))


def test_call_is_run_of_plan_and_plan_decides_without_a_backend(tiny_engines):
    pipe = Pipeline.load(tiny_engines)
    seen = pipe.add_observer(Events())
    plan = pipe.plan(PROMPT, **CALL)  # no seed: the plan draws one, so running it twice repeats the video
    assert seen.events == []  # planning touched no backend
    assert (plan.num_frames, plan.height, plan.width, plan.decode_chunk) == (3, 32, 48, 3)
    assert len(plan.sampler.timesteps) == 2 and plan.start == 0 and isinstance(plan.seed, int)
    a, b = pipe.run(plan), pipe(PROMPT, seed=plan.seed, **CALL)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(pipe.run(plan).frames, a.frames)
    assert a.seed == plan.seed
    stages = [(e, s) for s in ("text_encoder", "unet", "vae_decoder") for e in ("start", "end")]
    assert [e[:2] for e in seen.events] == stages * 3
    with pytest.raises(InputError, match=r"^latents have shape \(1, 4, 3, 5, 7\); expected"):
        pipe.plan(PROMPT, latents=np.zeros((1, 4, 3, 5, 7), np.float32), **CALL)
    assert len(seen.events) == 18  # refused at planning: no stage started


def test_a_failing_stage_is_released_and_reported(tiny_engines):
    pipe = Pipeline.load(tiny_engines, low_memory=True)
    seen = pipe.add_observer(Events())

    def stop(step, timestep, latents):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        pipe(PROMPT, seed=1, callback=stop, **CALL)
    assert seen.events[-2:] == [("start", "unet"), ("end", "unet", "RuntimeError")]
    assert pipe.runner("text_encoder") is not None and pipe.close() is None  # usable after the error
    pipe.remove_observer(seen)


class Doubled(StageObserver):
    """A runner proxy: what bench's timing proxy does, with an effect the test can see."""

    def wrap_runner(self, stage, runner):
        if stage != "vae_decoder":
            return runner
        return type("Twice", (), {"infer": lambda self, feed: {k: v * 0 for k, v in runner.infer(feed).items()}})()


def test_observers_may_wrap_the_stage_runner(tiny_engines):
    pipe = Pipeline.load(tiny_engines)
    pipe.add_observer(Doubled())
    assert np.all(pipe(PROMPT, seed=2, **CALL).frames[0] == 0.5)  # image 0 -> 0.5 after the [-1, 1] -> [0, 1] map


def test_video_plan_on_a_stand_in_takes_the_real_frames(tiny_v2v_engines):
    pipe = VideoToVideoPipeline.load(tiny_v2v_engines)
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    stand_in = np.broadcast_to(np.zeros((), np.uint8), frames.shape)
    plan = pipe.plan(PROMPT, stand_in, num_inference_steps=4, strength=0.5, seed=3, progress=False)
    assert plan.start == 2 and plan.strength == 0.5
    a = pipe.run(plan.with_frames(frames))
    b = pipe(PROMPT, frames, num_inference_steps=4, strength=0.5, seed=3, progress=False)
    np.testing.assert_array_equal(a.frames, b.frames)
    with pytest.raises(InputError,
                       match=r"^frames of shape \(2, 32, 48, 3\) given to a plan made for \(3, 32, 48, 3\)"):
        plan.with_frames(frames[:2])
