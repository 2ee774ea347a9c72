"""ONNX Runtime's attention fusion for the CPU: a second fp32 UNet graph, for the onnxruntime backend on the CPU only.

``onnxruntime.transformers.optimizer`` (model type ``unet``) replaces each attention's head-split Transposes, score
MatMuls and Softmax with one ``com.microsoft`` Attention (self-attention, packed QKV) or MultiHeadAttention
(cross-attention) operator. Measured on the small preset's UNet step at 16 frames 256x256 (benchmarks/RESULTS.md):
1.04-1.08x, matching PyTorch at 1.3e-6; the other fusions it offers were no faster on the CPU (layer norms, GELU)
or have no CPU kernel (GroupNorm, BiasSplitGelu), so only attention is fused. The fused graph holds operators that
TensorRT does not parse, so it is kept beside the portable one (``components.unet.onnx_fused``), validated against
PyTorch like every graph, and the portable graph stays what fp16, ``t2vrt build`` and CUDA read.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
MODEL_TYPES = {"unet": "unet"}  # components worth fusing on the CPU (the text encoder and VAE were not)
CPU_FUSIONS = {"enable_attention": True}  # FusionOptions attributes set; every other fusion off


def fusion_options(model_type: str, on: dict):
    """FusionOptions with every ``enable_*`` fusion off except those in ``on``."""
    from onnxruntime.transformers.fusion_options import FusionOptions

    o = FusionOptions(model_type)
    for k, v in vars(o).items():
        if isinstance(v, bool) and k.startswith("enable_") and k != "enable_shape_inference":
            setattr(o, k, False)
    o.use_multi_head_attention = False
    for k, v in on.items():
        setattr(o, k, v)
    return o


class _OneElement(np.ndarray):
    """A 1-element array that int() accepts, as NumPy < 2.4 did."""

    def __int__(self):
        return int(self.reshape(-1)[0])


def patch_numpy2() -> None:
    """onnxruntime.transformers' UNet attention fusion calls int() on a 1-element array, which NumPy >= 2.4 refuses
    ("only 0-dimensional arrays can be converted to Python scalars"): hand it arrays that int() accepts. The package
    imports its modules under two names (``fusion_attention_unet`` too), so every copy of the class is patched."""
    import onnxruntime.transformers.optimizer  # noqa: F401  (imports the fusion modules)

    classes = {m.FusionAttentionUnet for n, m in list(sys.modules.items()) if n.endswith("fusion_attention_unet")}
    for cls in classes:
        if cls.__dict__.get("_t2vrt_patched"):
            continue
        original = cls.get_num_heads

        def get_num_heads(self, reshape_q, is_torch2=False, _original=original):
            get = self.model.get_constant_value

            def one_element(name):
                v = get(name)
                return v.view(_OneElement) if isinstance(v, np.ndarray) and v.size == 1 else v

            self.model.get_constant_value = one_element
            try:
                return _original(self, reshape_q, is_torch2)
            finally:
                del self.model.get_constant_value  # the class's method again

        cls.get_num_heads, cls._t2vrt_patched = get_num_heads, True


@contextlib.contextmanager
def quiet():
    """The optimizer's own "fusion" progress bar (stderr) and per-fusion INFO lines (module-named loggers) kept out
    of the caller's output."""
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def run_optimizer(src: Path, model_type: str, on: dict, use_gpu: bool = False, **kwargs):
    """``onnxruntime.transformers.optimizer.optimize_model`` on ``src`` with only the fusions in ``on``; the
    OnnxModel."""
    from onnxruntime.transformers.optimizer import optimize_model

    patch_numpy2()
    with quiet():
        return optimize_model(str(src), model_type=model_type, num_heads=0, hidden_size=0, opt_level=0,
                              use_gpu=use_gpu, optimization_options=fusion_options(model_type, on), **kwargs)


def save_fused(m, src: Path, dst: Path) -> dict[str, int]:
    """Write the optimizer's model ``m`` to ``dst`` (weights in one external file when ``src`` has one: over 2 GB,
    protobuf cannot hold them inline); the count of each fused (``com.microsoft``) operator it holds."""
    external = src.with_name(src.name + ".data").exists()
    m.save_model_to_file(str(dst), use_external_data_format=external)
    ops: dict[str, int] = {}
    for n in m.model.graph.node:
        if n.domain == "com.microsoft":
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return ops


def optimize(src: Path, dst: Path, model_type: str, on: dict) -> dict[str, int]:
    """Write the fused graph; return the count of each fused operator it holds."""
    return save_fused(run_optimizer(src, model_type, on), src, dst)


def wanted(component: str, choice: bool | None, external_data: bool) -> bool:
    """Whether to write a fused CPU graph: ``choice`` True/False as given; None (auto) for a fusable component whose
    fp32 weights fit inline (under 1 GiB, a model a CPU is a target for), not for the real-size UNet (5.6 GB more)."""
    if component not in MODEL_TYPES:
        return False
    return choice if choice is not None else not external_data


def fuse_for_cpu(component: str, src: Path, dst: Path) -> dict[str, int]:
    """Write ``dst``, the CPU-fused graph of ``src``; the fused operators' counts ({} and no file if none matched)."""
    ops = optimize(src, dst, MODEL_TYPES[component], CPU_FUSIONS)
    if not ops:
        dst.unlink(missing_ok=True)  # written by this call a moment ago
        log.info("%s: ONNX Runtime's attention fusion matched nothing; the portable graph serves the CPU", component)
    return ops


MEMORY_FACTOR = 5.5  # the optimizer's peak RSS over the graph's size: 880 MB for the small preset's 152 MB UNet


def memory_shortfall(src: Path) -> str:
    """Why the optimizer would not fit in this machine's available memory ("" when it fits or nobody can tell):
    it holds the whole graph, weights included, several times over (measured: 5.1x on the small preset's UNet)."""
    from t2vrt.host import available_memory_bytes

    size = sum(p.stat().st_size for p in (src, src.with_name(src.name + ".data")) if p.exists())
    free, need = available_memory_bytes(), int(MEMORY_FACTOR * size)
    if free is None or need <= free:
        return ""
    return (f"ONNX Runtime's optimizer needs about {need / 2**30:.1f} GiB for this {size / 2**30:.1f} GiB graph and "
            f"{free / 2**30:.1f} GiB is available")


def fused_entry(component: str, spec, root: Path, src_rel: Path, refs: list, record) -> dict | None:
    """Fuse the fp32 graph at ``root / src_rel`` for the CPU, validate it against PyTorch's ``refs`` (when given) and
    return its manifest record (``record(root, rel)``: the file record), or None where nothing fused or it does not
    validate (then the portable graph serves the CPU, and the reason is logged)."""
    from t2vrt.errors import ExportError
    from t2vrt.export.validate import compare

    rel = src_rel.with_name("model_ort_cpu.onnx")
    dst = root / rel
    too_big = memory_shortfall(root / src_rel)
    if too_big:
        log.warning("%s: the CPU-fused graph is not written: %s; the portable graph serves the CPU", component, too_big)
        return None
    try:
        ops = fuse_for_cpu(component, root / src_rel, dst)
    except Exception as e:  # the optimizer is a convenience: any failure of it leaves the portable graph in charge
        log.warning("%s: ONNX Runtime's attention fusion failed (%s: %s); the portable graph serves the CPU",
                    component, type(e).__name__, str(e).splitlines()[0][:160] if str(e) else "")
        dst.unlink(missing_ok=True)
        return None
    if not ops:
        return None
    entry = {**record(root, rel), "fused_ops": ops, "provider": "CPUExecutionProvider"}
    if refs:
        try:
            entry["validation"] = compare(spec, dst, refs, "fp32")
        except ExportError as e:
            log.warning("%s: the attention-fused graph does not match PyTorch (%s); it is not kept", component, e)
            for p in (dst, dst.with_name(dst.name + ".data")):
                p.unlink(missing_ok=True)
            return None
    log.info("%s: ONNX Runtime CPU graph with %s", component, ", ".join(f"{n} {k}" for k, n in ops.items()))
    return entry
