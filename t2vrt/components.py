"""The exported components: their names, one shape function each, and the ranges a user may ask for.

Every shape in t2vrt comes from here: the ONNX dynamic axes, the sample inputs
for tracing and validation, the TensorRT min/opt/max profiles, the runtime's
range checks and its buffer shapes. A dimension is an int, a symbol ("b"), or a
symbol times a factor (("h", 8) for the VAE's 8x upsampled height).

This module also owns the one range check (and its message, which names the command that widens the range)
and the one MIN:OPT:MAX parser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from t2vrt.errors import InputError

Dim = int | str | tuple[str, int]
Range = tuple[int, int, int]

COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
TEXT_TO_VIDEO = ("text_encoder", "unet", "vae_decoder")  # what Pipeline runs; the default export and build
VIDEO_TO_VIDEO = TEXT_TO_VIDEO + ("vae_encoder",)

# The Profile fields each component's engine is built over, the field each shape symbol stands for, and the
# CLI option (of `t2vrt export` and `t2vrt build` alike) that sets a field's range.
PROFILE_FIELDS = {
    "text_encoder": ("batch",),
    "unet": ("batch", "frames", "height", "width"),
    "vae_decoder": ("decode_chunk", "height", "width"),
    "vae_encoder": ("decode_chunk", "height", "width"),
}
SYMBOL_FIELDS = {"b": "batch", "f": "frames", "h": "height", "w": "width", "n": "decode_chunk"}
FLAGS = {"batch": "--batch", "frames": "--frames", "height": "--height", "width": "--width",
         "decode_chunk": "--decode-chunk"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "float16", "int64"
    dims: tuple[Dim, ...]

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """Resolve symbolic dims with the given symbol sizes."""
        out = []
        for d in self.dims:
            if isinstance(d, int):
                out.append(d)
            elif isinstance(d, str):
                out.append(sizes[d])
            else:
                out.append(sizes[d[0]] * d[1])
        return tuple(out)

    def dynamic_axes(self) -> dict[int, str]:
        """ONNX dynamic axes: axis -> symbol name (scaled dims get their own name, e.g. "8h")."""
        return {i: (d if isinstance(d, str) else f"{d[1]}{d[0]}") for i,
                d in enumerate(self.dims) if not isinstance(d, int)}

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype,
                "dims": [list(d) if isinstance(d, tuple) else d for d in self.dims]}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(tuple(x) if isinstance(x, list) else x for x in d["dims"]))


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def shapes(self, sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape(sizes) for t in self.inputs + self.outputs}

    def input_shapes(self, sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape(sizes) for t in self.inputs}

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.dynamic_axes() for t in self.inputs + self.outputs if t.dynamic_axes()}

    def to_json(self) -> dict:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, name: str, d: dict) -> ComponentSpec:
        return cls(name, tuple(map(TensorSpec.from_json, d["inputs"])), tuple(map(TensorSpec.from_json, d["outputs"])))


@dataclass(frozen=True)
class ModelDims:
    """The numbers of a model's config that shapes depend on (read from the checkpoint, never assumed)."""

    latent_channels: int
    text_hidden: int
    max_length: int
    vae_scale: int  # pixels per latent pixel (8 for the real models)
    unet_downsample: int  # latent size must be a multiple of this (2 ** (len(block_out_channels) - 1))
    sample_size: int  # the UNet's native latent size
    text_layers: int = 0  # CLIP layers; 0 in manifests written before the text encoder exported its hidden states

    @property
    def size_multiple(self) -> int:
        """Height and width in pixels must be multiples of this."""
        return self.vae_scale * self.unet_downsample

    def to_json(self) -> dict:
        return asdict(self)


def component_specs(m: ModelDims, dtype: str = "float32") -> dict[str, ComponentSpec]:
    """The I/O contract of every component (DESIGN.md's table). ``dtype`` is the float I/O type."""
    c, s = m.latent_channels, m.vae_scale
    return {
        "text_encoder": ComponentSpec(
            "text_encoder",
            (TensorSpec("input_ids", "int64", ("b", m.max_length)),),
            (TensorSpec("last_hidden_state", dtype, ("b", m.max_length, m.text_hidden)),)
            # clip_skip: every hidden state (embeddings, then each layer) through the final layer norm
            + ((TensorSpec("hidden_states", dtype, ("b", m.text_layers + 1, m.max_length, m.text_hidden)),
                ) if m.text_layers else ()),
        ),
        "unet": ComponentSpec(
            "unet",
            (
                TensorSpec("sample", dtype, ("b", c, "f", "h", "w")),
                TensorSpec("timestep", "float32", (1,)),
                TensorSpec("encoder_hidden_states", dtype, ("b", m.max_length, m.text_hidden)),
            ),
            (TensorSpec("noise_pred", dtype, ("b", c, "f", "h", "w")),),
        ),
        "vae_decoder": ComponentSpec(
            "vae_decoder",
            (TensorSpec("latent", dtype, ("n", c, "h", "w")),),
            (TensorSpec("image", dtype, ("n", 3, ("h", s), ("w", s))),),
        ),
        "vae_encoder": ComponentSpec(
            "vae_encoder",
            (TensorSpec("image", dtype, ("n", 3, ("h", s), ("w", s))),),
            (TensorSpec("latent_mean", dtype, ("n", c, "h", "w")), TensorSpec("latent_std", dtype, ("n", c, "h", "w"))),
        ),
    }


@dataclass(frozen=True)
class Profile:
    """What a user may ask for: inclusive (min, opt, max) ranges in user units (pixels, frames, prompts)."""

    batch: tuple[int, int, int] = (1, 1, 2)
    frames: tuple[int, int, int] = (8, 16, 64)
    height: tuple[int, int, int] = (128, 256, 1024)
    width: tuple[int, int, int] = (128, 256, 1024)
    # VAE frames per call; opt 4: the real VAE's activations grow ~128 MiB a frame at 256x256 in fp16, and
    # per-frame time is within 20% of 8 frames' (benchmarks/RESULTS.md)
    decode_chunk: tuple[int, int, int] = (1, 4, 16)

    def to_json(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> Profile:
        return cls(**{k: tuple(v) for k, v in d.items()})

    def symbol_ranges(self, component: str, m: ModelDims) -> dict[str, tuple[int, int, int]]:
        """min/opt/max of each symbol of a component, derived from the user ranges.

        The UNet and text encoder see twice the prompt batch under classifier-free guidance.
        """
        s = m.vae_scale
        lat = lambda r: tuple(v // s for v in r)  # noqa: E731
        b = (self.batch[0], 2 * self.batch[1], 2 * self.batch[2])
        return {
            "text_encoder": {"b": b},
            "unet": {"b": b, "f": self.frames, "h": lat(self.height), "w": lat(self.width)},
            "vae_decoder": {"n": self.decode_chunk, "h": lat(self.height), "w": lat(self.width)},
            "vae_encoder": {"n": self.decode_chunk, "h": lat(self.height), "w": lat(self.width)},
        }[component]


# -- ranges: the one parser, the one check ------------------------------------------------------------------
def check_range_order(name: str, r: tuple[int, ...]) -> Range:
    """``r`` as a Range; InputError unless it is MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX."""
    if len(r) != 3 or not 1 <= r[0] <= r[1] <= r[2]:
        raise InputError(f"{name + ' ' if name else ''}range {':'.join(map(str, r))} must be MIN:OPT:MAX with 1 <= MIN "
                         "<= OPT <= MAX")
    return tuple(r)


def parse_range(text: str, name: str = "") -> Range:
    """"8:16:64" -> (8, 16, 64); "16" -> (16, 16, 16); InputError for anything else or an unordered range."""
    try:
        parts = tuple(int(v) for v in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise InputError(f"{text!r} is not MIN:OPT:MAX (e.g. 8:16:64) or one number")
    return check_range_order(name, parts)


def range_flags(**ranges: Range) -> str:
    """``--frames 8:16:64 --batch 2``: the options that ask for these Profile field ranges."""
    return " ".join(f"{FLAGS[k]} {v[2]}" if k == "batch" else f"{FLAGS[k]} {':'.join(map(str, v))}" for k,
                    v in ranges.items())


def build_command(root: str = "DIR", **ranges: Range) -> str:
    args = range_flags(**ranges)
    return f"t2vrt build {root}" + (f" {args}" if args else "")


def widen(rng: Range, value: int) -> Range:
    """The smallest range holding both ``rng`` and ``value`` (opt unchanged)."""
    return (max(1, min(rng[0], value)), rng[1], max(rng[2], value))


def check_range(name: str, value: int, rng: tuple[int, ...], where: str, command: str, note: str = "") -> None:
    """The one range check: InputError ``NAME=VALUE is outside WHERE [MIN, MAX]; rebuild/re-export with `COMMAND```.

    ``command`` is the exact command that widens the range to hold ``value`` (from export_command or
    build_command); a value below 1 can never be served, and the message says so instead."""
    lo, hi = rng[0], rng[-1]
    if lo <= value <= hi:
        return
    if value < 1:
        fix = "it must be at least 1"
    else:
        fix = f"{'rebuild' if command.startswith('t2vrt build') else 're-export'} with `{command}`"
    raise InputError(f"{name}={value}{note} is outside {where} [{lo}, {hi}]; {fix}")
