"""The few array operations the glue needs that NumPy and torch spell differently."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def cat(xs: Sequence[Any], axis: int = 0) -> Any:
    if is_torch(xs[0]):
        import torch

        return torch.cat(list(xs), dim=axis)
    return np.concatenate(xs, axis=axis)


def permute(x: Any, axes: Sequence[int]) -> Any:
    return x.permute(*axes) if is_torch(x) else np.transpose(x, axes)


def to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def from_numpy(a: np.ndarray, like: Any) -> Any:
    """``a`` as the array type (and device) of ``like``."""
    if is_torch(like):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)
    return a


def on_device(x: Any, device: Any) -> Any:
    """``x`` as a torch tensor on ``device`` (a runner's, where its outputs live); ``x`` itself where ``device`` is
    None (NumPy runners) or ``x`` is there already."""
    if device is None:
        return x
    import torch

    t = x if is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device)
