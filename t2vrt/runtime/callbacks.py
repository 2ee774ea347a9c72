"""diffusers' two step-callback styles, called after each sampler step of the denoising loop.

- ``callback(step, timestep, latents)`` every ``callback_steps`` inference steps, as the text-to-video pipelines
  (``step`` counts inference steps, so a second-order sampler calls it once per two model evaluations);
- ``callback_on_step_end(pipe, i, timestep, callback_kwargs) -> dict`` after every model evaluation, as current
  diffusers pipelines: ``callback_kwargs`` holds the tensors named in ``callback_on_step_end_tensor_inputs``, and
  the ones the returned dict holds replace them (``latents``; ``prompt_embeds``, the batch the UNet sees).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from t2vrt.errors import InputError
from t2vrt.runtime.arrays import cat

CALLBACK_TENSOR_INPUTS = ("latents", "prompt_embeds", "negative_prompt_embeds")


class StepCallbacks:
    """Built once per call from the call's arguments (checked here, before any backend runs)."""

    def __init__(self, callback: Callable | None = None, callback_steps: int = 1, on_step_end: Callable | None = None,
                 tensor_inputs: Sequence[str] = ("latents",), pipe: Any = None):
        if callback is not None and not callable(callback):
            raise InputError(f"callback={callback!r} is not callable; pass a function callback(step, timestep, "
                             "latents)")
        if not isinstance(callback_steps, int) or isinstance(callback_steps, bool) or callback_steps < 1:
            raise InputError(f"callback_steps={callback_steps!r} must be a positive integer")
        if on_step_end is not None and not callable(on_step_end):
            raise InputError(f"callback_on_step_end={on_step_end!r} is not callable; "
                             "pass a function f(pipe, step, timestep, callback_kwargs) -> dict")
        tensor_inputs = list(getattr(on_step_end, "tensor_inputs", None) or tensor_inputs or ())
        unknown = [k for k in tensor_inputs if k not in CALLBACK_TENSOR_INPUTS]
        if unknown:
            raise InputError(f"callback_on_step_end_tensor_inputs has {unknown}; choose from "
                             f"{list(CALLBACK_TENSOR_INPUTS)}")
        self.callback, self.callback_steps, self.on_step_end = callback, callback_steps, on_step_end
        self.tensor_inputs, self.pipe = tensor_inputs, pipe
        self.sampler, self.start = None, 0

    def begin(self, sampler: Any, start: int = 0) -> StepCallbacks:
        """The loop runs model evaluations ``start`` to ``len(sampler.timesteps) - 1``."""
        self.sampler, self.start = sampler, start
        return self

    def __call__(self, i: int, x: Any, emb: Any, guided: bool) -> tuple[Any, Any]:
        """After the sampler step of evaluation ``i``: (latents, embeddings), replaced where callback_on_step_end
        says."""
        if self.sampler is None or (self.callback is None and self.on_step_end is None):
            return x, emb
        j, t = i - self.start, self.sampler.timesteps[i]
        if self.on_step_end is not None:
            x, emb = self._on_step_end(j, t, x, emb, guided)
        if self.callback is not None and self._legacy_due(j) and j % self.callback_steps == 0:
            self.callback(j // getattr(self.sampler, "order", 1), t, x)
        return x, emb

    def _legacy_due(self, j: int) -> bool:
        """diffusers' progress-bar condition: the last evaluation, or the end of an inference step after warm-up."""
        order = getattr(self.sampler, "order", 1)
        n = len(self.sampler.timesteps) - self.start
        warmup = n - (n + order - 1) // order * order
        return j == n - 1 or (j + 1 > warmup and (j + 1) % order == 0)

    def _on_step_end(self, j: int, t: Any, x: Any, emb: Any, guided: bool) -> tuple[Any, Any]:
        half = len(emb) // 2
        available = {"latents": x, "prompt_embeds": emb, "negative_prompt_embeds": emb[:half] if guided else None}
        out = self.on_step_end(self.pipe, j, t, {k: available[k] for k in self.tensor_inputs}) or {}
        x = out.pop("latents", x)
        emb = out.pop("prompt_embeds", emb)
        if guided and "negative_prompt_embeds" in out:
            emb = cat([out.pop("negative_prompt_embeds"), emb[half:]])
        return x, emb
