"""One shape function per exported component.

Every shape in t2vrt comes from here: the ONNX dynamic axes, the sample inputs
for tracing and validation, the TensorRT min/opt/max profiles, the runtime's
range checks and its buffer shapes. A dimension is an int, a symbol ("b"), or a
symbol times a factor (("h", 8) for the VAE's 8x upsampled height).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Union

Dim = Union[int, str, tuple[str, int]]


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
        return {i: (d if isinstance(d, str) else f"{d[1]}{d[0]}") for i, d in enumerate(self.dims) if not isinstance(d, int)}

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "dims": [list(d) if isinstance(d, tuple) else d for d in self.dims]}

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
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

    def symbols(self) -> set[str]:
        return {d if isinstance(d, str) else d[0] for t in self.inputs for d in t.dims if not isinstance(d, int)}

    def to_json(self) -> dict:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, name: str, d: dict) -> "ComponentSpec":
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
            + ((TensorSpec("hidden_states", dtype, ("b", m.text_layers + 1, m.max_length, m.text_hidden)),) if m.text_layers else ()),
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
    # VAE frames per call; opt 4 (issue 8): the real VAE's activations grow ~128 MiB a frame at 256x256 in fp16, and
    # per-frame time is within 20% of 8 frames' (benchmarks/RESULTS.md)
    decode_chunk: tuple[int, int, int] = (1, 4, 16)

    def to_json(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "Profile":
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
