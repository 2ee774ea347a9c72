"""Argument checks at the boundary, before any backend runs: types, finiteness, ranges, the manifest's profile.

``check_call(pipe, locals())`` is the first line of each pipeline's ``__call__``: it checks every argument it knows
by parameter name (not position), so a change of the call's parameter order cannot misroute a check.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from t2vrt.errors import InputError, ManifestError
from t2vrt.manifest import Manifest, check_field

WHERE = "this engine directory's range"
SEED_RANGE = (-(2**63), 2**64)  # what torch.Generator.manual_seed accepts (negative seeds wrap modulo 2**64)
# DDIM (Song et al. 2020, eq. 12): sqrt(1 - alpha_prev - sigma_t^2) is real while
# eta <= sqrt(min_t (1 - a_t) / (1 - a_t / a_prev)), which is >= 1 for every schedule: exactly 1 when the final alpha
# is 1 (set_alpha_to_one), 1.011 / 1.023 for ModelScope's scaled-linear betas at 25 / 50 steps without it. So [0, 1]
# is the range every schedule supports (diffusers' docs say the same).
ETA_RANGE = (0.0, 1.0)


def check_request(m: Manifest, batch: int, num_frames: int, height: int, width: int, root: str = "DIR") -> None:
    """Raise InputError naming the first argument outside what the manifest declares."""
    p, mult = m.profile, m.model.size_multiple
    if batch < 1:
        raise InputError("prompt is empty: give a string or a non-empty list of strings")
    check_field("batch", batch, p.batch, WHERE, root=root, name="batch size (number of prompts)")
    check_field("frames", num_frames, p.frames, WHERE, root=root, name="num_frames")
    for name, v, rng in (("height", height, p.height), ("width", width, p.width)):
        if v % mult:
            raise InputError(f"{name}={v} is not a multiple of {mult} (this model needs multiples of {mult}); try "
                             f"{max(mult, round(v / mult) * mult)}")
        check_field(name, v, rng, WHERE, root=root)


def check_decode_chunk(m: Manifest, chunk: int, root: str = "DIR") -> None:
    """The VAE frames per call inside the profile's decode_chunk range."""
    check_field("decode_chunk", chunk, m.profile.decode_chunk, WHERE, root=root, name="decode_chunk_size")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name}={value} must be {'>= 0' if allow_zero else '> 0'}")


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None, none_ok: bool = False,
              why: str = "") -> None:
    """A real integer (Python or NumPy; bool, float and str refused) in [lo, hi]."""
    if value is None and none_ok:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name}={value!r} must be an integer, not {type(value).__name__}{why}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise InputError(f"{name}={value} must be {bounds}{why}")


def check_real(name: str, value: Any, lo: float | None = None, hi: float | None = None, none_ok: bool = False,
               why: str = "") -> None:
    """A finite real number (int or float, Python or NumPy; bool and str refused) in [lo, hi]."""
    if value is None and none_ok:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name}={value!r} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise InputError(f"{name}={value} must be a finite number{why}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}]"
        raise InputError(f"{name}={value:g} must be {bounds}{why}")


def check_prompts(name: str, value: Any, none_ok: bool = False) -> None:
    from t2vrt.textcheck import check_utf8

    if value is None and none_ok:
        return
    if isinstance(value, str):
        return check_utf8(name, value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise InputError(f"{name} must be a string or a list of strings; got {type(value).__name__}")
    check_utf8(name, value)


def check_finite_array(name: str, value: Any, hint: str = "give finite starting latents (or omit them)") -> None:
    from t2vrt.runtime.arrays import to_numpy

    if value is not None and not np.isfinite(to_numpy(value)).all():
        raise InputError(f"{name} contain NaN or infinite values; {hint}")


def check_bool(name: str, value: Any, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name}={value!r} must be True or False, not {type(value).__name__}")


def _check_sizes(args: dict) -> None:
    for name in ("height", "width"):
        if name in args:
            check_int(name, args[name], lo=1, none_ok=True, why="; omit it (None) for the model's native size")


def _check_steps(args: dict, train_steps: int) -> None:
    if "num_inference_steps" in args:
        check_int("num_inference_steps", args["num_inference_steps"], lo=1, hi=train_steps,
                  why=f" (1 to the model's {train_steps} training timesteps)")
    if "eta" in args:
        check_real("eta", args["eta"], *ETA_RANGE,
                   why=" (DDIM: 0 deterministic, 1 as DDPM; above 1 the step's variance exceeds "
                   "1 - alpha_prev and its square root is complex)")


def _check_counts(args: dict) -> None:
    """Integer arguments whose range is checked later (the profile's, or the text encoder's layers), and flags."""
    if "num_frames" in args:  # its range is the profile's, checked next with a re-export hint
        check_int("num_frames", args["num_frames"])
    for name in ("num_videos_per_prompt", "context_frames", "context_stride"):
        if name in args:
            check_int(name, args[name], lo=1, none_ok=True)
    # callback_steps and clip_skip: callbacks.StepCallbacks and prompts.check_clip_skip, also before any backend runs
    if "decode_chunk_size" in args:
        check_int("decode_chunk_size", args["decode_chunk_size"], none_ok=True)  # range: the profile's, checked next
    for name in ("return_dict", "free_noise"):
        if name in args:
            check_bool(name, args[name])
    if "progress" in args:
        check_bool("progress", args["progress"], none_ok=True)


def _check_arrays(args: dict) -> None:
    check_finite_array("latents", args.get("latents"))
    for name in ("prompt_embeds", "negative_prompt_embeds"):
        check_finite_array(name, args.get(name), "give finite embeddings (or a prompt instead)")


def check_call(pipe, args: dict) -> None:
    """Check a pipeline call's arguments (``locals()`` of ``__call__``) by name, before any backend runs."""
    from t2vrt.runtime.output import check_output_type

    check_prompts("prompt", args.get("prompt"), none_ok="prompt_embeds" in args)  # read_prompts: one of the two
    if "negative_prompt" in args:
        check_prompts("negative_prompt", args["negative_prompt"], none_ok=True)
    _check_counts(args)
    _check_sizes(args)
    _check_steps(args, int(pipe.scheduler_config.get("num_train_timesteps", 1000)))
    for name in ("guidance_scale", "strength"):
        if name in args:
            check_real(name, args[name])
    if "seed" in args:
        check_int("seed", args["seed"], SEED_RANGE[0], SEED_RANGE[1] - 1, none_ok=True,
                  why=" (torch.Generator's seed range)")
    _check_arrays(args)
    output_type = args.get("output_type", "np")
    check_output_type(output_type)  # "np", "pil", "pt" or "latent", as diffusers
    if output_type != "latent" and "vae_decoder" not in pipe.manifest.components:
        raise ManifestError(f"engine directory {str(pipe.root)!r} has no vae_decoder, so it can only return latents "
                            "(output_type='latent'); re-export with --components text_encoder unet vae_decoder")
