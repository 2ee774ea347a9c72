"""Option groups declared once and shared by the commands, and the help formatter they all use."""

from __future__ import annotations

import argparse

from t2vrt.components import Profile, parse_range
from t2vrt.engines.backends import PRECISIONS, LoadOptions, backend_names
from t2vrt.errors import InputError

BACKENDS = backend_names()  # the one list of backend names (t2vrt.engines.backends.REGISTRY), "auto" first


def as_typed(value) -> str:
    """A default as it is typed on the command line: (1, 4, 16) -> 1:4:16, ['fp32'] -> fp32 (nargs lists are
    space-separated words)."""
    if isinstance(value, tuple):
        return ":".join(str(v) for v in value)
    if isinstance(value, list):
        return " ".join(as_typed(v) for v in value)
    return str(value)


class HELP(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults as they are typed, except None (whose meaning the help text says) and flags' values."""

    def _get_help_string(self, action):
        no_value = action.nargs == 0 or action.default is argparse.SUPPRESS
        if action.default is None or isinstance(action.default, bool) or no_value or "%(default)" in action.help:
            return action.help
        return f"{action.help} (default: {as_typed(action.default).replace('%', '%%')})"


def range_arg(text: str) -> tuple[int, int, int]:
    """argparse type of a MIN:OPT:MAX option (or a single N for N:N:N): components.parse_range."""
    try:
        return parse_range(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_profile_args(p: argparse.ArgumentParser) -> None:
    """`export`'s ranges: what the engine directory will serve."""
    d = Profile()
    native = "omitted: from the model's native size N = sample_size x VAE scale (N/2:N:4N, e.g. 128:256:1024)"
    p.add_argument("--frames", type=range_arg, default=None, metavar="MIN:OPT:MAX",
                   help="frame counts served; omitted: 8:16:64")
    p.add_argument("--height", type=range_arg, default=None, metavar="MIN:OPT:MAX", help=f"heights in pixels; {native}")
    p.add_argument("--width", type=range_arg, default=None, metavar="MIN:OPT:MAX", help=f"widths in pixels; {native}")
    p.add_argument("--batch", type=int, default=d.batch[2], help="most prompts per call")
    p.add_argument("--decode-chunk", type=range_arg, default=d.decode_chunk, metavar="MIN:OPT:MAX",
                   help="VAE frames per call")


def profile_from(args) -> dict:
    """The Profile fields given on the command line; the export derives the others from the model."""
    given = dict(batch=(1, 1, args.batch), frames=args.frames, height=args.height, width=args.width,
                 decode_chunk=args.decode_chunk)
    return {k: v for k, v in given.items() if v is not None}


def add_video_args(p: argparse.ArgumentParser, output: str, size: str, fps: float | None, fps_help: str) -> None:
    """The written video of `generate` and `upscale`: its path, size (``size`` says what an omitted one is) and fps."""
    p.add_argument("-o", "--output", default=output, help="output .mp4, .gif, or folder of png frames")
    p.add_argument("--height", type=int, default=None, help=f"height in pixels; omitted: {size}")
    p.add_argument("--width", type=int, default=None, help=f"width in pixels; omitted: {size}")
    p.add_argument("--fps", type=float, default=fps, help=fps_help)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a png-frame folder an earlier run wrote (a file is replaced only once the new one is "
                   "complete)")


NEGATIVE_HELP = "what to steer away from; omitted: the empty prompt, as diffusers"
BACKEND_HELP = "auto: TensorRT where engines are built for this GPU, else ONNX Runtime (the log says why)"
PRECISION_HELP = ("omitted: fp32 on the CPU (diffusers-exact), the best built engine (fp16 first) on tensorrt; "
                  "bf16: openvino on a CPU with AVX512_BF16 or AMX")


def add_run_args(p: argparse.ArgumentParser, guidance: float, steps_help: str = "inference steps") -> None:
    """The sampling and backend options of `generate` and `upscale`."""
    from t2vrt.runtime.schedulers import SCHEDULERS

    p.add_argument("--negative-prompt", default=None, help=NEGATIVE_HELP)
    p.add_argument("--steps", type=int, default=50,
                   help=f"{steps_help} (diffusers' and Pipeline's default; 25 often suffices)")
    p.add_argument("--guidance", type=float, default=guidance, help="classifier-free guidance scale (<= 1 disables it)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    p.add_argument("--seed", type=int, default=0,
                   help="seed (same noise as diffusers with torch.Generator('cpu').manual_seed)")
    p.add_argument("--scheduler", default=None, choices=sorted(SCHEDULERS), help="sampler; omitted: the model's own")
    p.add_argument("--decode-chunk", type=int, default=None, help="VAE frames per call; omitted: the profile's opt")
    add_load_args(p)


def add_load_args(p) -> None:
    """How the model loads (LoadOptions): --backend, --precision, --low-memory, --providers, --threads; shared by
    generate, upscale, batch and serve (``p``: a parser or an argument group)."""
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--precision", default=None, choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--low-memory", action="store_true",
                   help="load each component only while it runs (slower, lower peak)")
    p.add_argument("--providers", nargs="+", default=None, metavar="EP",
                   help="ONNX Runtime execution providers in order, e.g. CUDAExecutionProvider CPUExecutionProvider; "
                        "omitted: CUDA where available, else CPU")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime intra-op threads per session; omitted: $T2VRT_THREADS, else ONNX Runtime's "
                        "choice (one per core)")


def load_options(args) -> LoadOptions:
    """LoadOptions from add_load_args' options."""
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads} must be at least 1 (omit it for ONNX Runtime's choice)")
    return LoadOptions(backend=args.backend, precision=args.precision, low_memory=args.low_memory,
                       providers=args.providers, threads=args.threads)


def quiet_bars(pipe, args):
    """The pipeline ``pipe`` with its progress bars off under -q; returned for chaining."""
    pipe.set_progress_bar_config(disable=getattr(args, "verbosity", 0) < 0)
    return pipe


def add_context_args(p: argparse.ArgumentParser, free_noise: bool = True) -> None:
    """`generate`'s and `upscale`'s long-video options: denoise in overlapping windows (runtime/context.py)."""
    from t2vrt.runtime.context import MODES, WEIGHTINGS

    frames = "--frames" if free_noise else "the video's frames"
    g = p.add_argument_group("long videos", f"denoise {frames} in overlapping windows of W frames, so a video may "
                             "be longer than the engine's frame range")
    g.add_argument("--context-frames", type=int, default=None, metavar="W",
                   help="window length in frames (within the engine's frame range)")
    g.add_argument("--context-stride", type=int, default=None, metavar="S",
                   help="frames between window starts, 1..W; omitted: W // 4")
    g.add_argument("--context-mode", default="clamped", choices=MODES,
                   help="cyclic: the last windows wrap to the first frames (a looping video)")
    g.add_argument("--context-weighting", default="taper", choices=WEIGHTINGS, help="how overlapping windows blend")
    if free_noise:  # text-to-video only: video-to-video starts from the input video, not from pure noise
        g.add_argument("--free-noise", action="store_true",
                       help="FreeNoise: later windows reuse the first window's noise, reordered (more coherent, less "
                       "varied)")


def context_kwargs(args) -> dict:
    """The pipelines' context_* keyword arguments from add_context_args' options (--free-noise apart)."""
    return dict(context_frames=args.context_frames, context_stride=args.context_stride, context_mode=args.context_mode,
                context_weighting=args.context_weighting)
