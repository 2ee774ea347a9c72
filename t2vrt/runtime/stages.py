"""The stage seam: a pipeline runs each component inside ``with pipe.stage(name) as runner:``, and observers hear
when each stage starts and ends (bench's timings and memory peaks, the service's per-stage seconds).

A stage is named after the component it runs: "text_encoder", "unet" (the whole denoising loop), "vae_decoder",
"vae_encoder". ``stage_started`` is called before the runner is opened (so a low-memory load counts in the stage)
and ``stage_ended`` after it is released, also when the stage raised.
"""

from __future__ import annotations

from typing import Any


class StageObserver:
    """Subclass and override what you need; register with ``Pipeline.add_observer``. Observers are called on the
    thread that runs the call; one observer on a pipeline that serves concurrent calls sees their stages interleaved.
    """

    def stage_started(self, stage: str) -> None:
        """Stage ``stage`` starts (its runner is not opened yet)."""

    def stage_ended(self, stage: str, seconds: float, error: BaseException | None) -> None:
        """Stage ``stage`` ended after ``seconds`` (runner released in low-memory mode); ``error`` if it raised."""

    def wrap_runner(self, stage: str, runner: Any) -> Any:
        """The runner the stage will use: ``runner`` itself, or a proxy with the same ``infer`` (e.g. timed)."""
        return runner


class StageSeconds(StageObserver):
    """Seconds per stage of the last call(s), under names of the caller's choice (``names``: stage -> name; stages
    not named are not kept). Repeated stages add up; ``clear()`` between calls."""

    def __init__(self, names: dict[str, str]):
        self.names, self.seconds = dict(names), {}

    def clear(self) -> None:
        self.seconds.clear()

    def stage_ended(self, stage: str, seconds: float, error: BaseException | None) -> None:
        name = self.names.get(stage)
        if name is not None:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 4)
