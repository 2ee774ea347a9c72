"""One external-data file per graph, written one tensor at a time.

torch's TorchScript exporter writes a graph over protobuf's 2 GiB limit as ``model.onnx`` plus one loose file
per weight (743 for the real-size UNet). ``gather_external_data`` moves them into ``model.onnx.data`` without
loading the weights: the graph is read without its external data, each loose file is appended (aligned, so
ONNX Runtime can memory-map it) and deleted, and only the tensors' locations are rewritten. Peak memory is
the weightless graph plus one copy buffer; peak disk is the weights plus one tensor. A graph under 2 GiB but
over ``EXTERNAL_THRESHOLD`` has its weights inside the protobuf; those are moved out the same way.
"""

from __future__ import annotations

import errno
import logging
import shutil
from collections import Counter
from pathlib import Path

from t2vrt.errors import ExportError

log = logging.getLogger(__name__)
EXTERNAL_THRESHOLD = 1 << 30  # gather weights into one .data file above 1 GiB (protobuf's limit is 2 GiB)
SIZE_THRESHOLD = 1024  # inline tensors smaller than this stay in the graph (as onnx.save_model does)
ALIGN = 4096  # offsets on page boundaries: ONNX Runtime memory-maps aligned external data
CHUNK = 64 << 20


def gather_external_data(path: Path, threshold: int | None = None) -> None:
    """Rewrite ``path`` so every weight lives in ``NAME.data`` beside it (no-op for a small self-contained graph)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, _get_initializer_tensors, uses_external_data

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    limit = EXTERNAL_THRESHOLD if threshold is None else threshold
    if not external and path.stat().st_size < limit:
        return
    data = path.with_name(path.name + ".data")
    if external and {_info(t)["location"] for t in external} == {data.name}:
        return  # already gathered
    inline = [t for t in _get_initializer_tensors(model)
              if not uses_external_data(t) and len(t.raw_data) >= SIZE_THRESHOLD]
    pending = Counter(_info(t)["location"] for t in external)
    with open(data, "wb") as out:
        for t in external:
            loc = _info(t)["location"]
            _append(out, t, lambda dst, t=t: _copy_external(t, path.parent, dst))
            pending[loc] -= 1
            if not pending[loc]:
                (path.parent / loc).unlink()  # free its disk space before the next one is copied
        for t in inline:
            _append(out, t, lambda dst, t=t: dst.write(t.raw_data))
            t.ClearField("raw_data")
    _relocate(external + inline, data.name)
    path.write_bytes(model.SerializeToString())
    log.info("%s: %d weights gathered in %s (%.1f MB)", path.name, len(external) + len(inline), data.name,
             data.stat().st_size / 1e6)


def _info(tensor) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _append(out, tensor, write) -> None:
    """Pad ``out`` to the alignment, write one tensor's bytes, and note where they went on the tensor."""
    pad = -out.tell() % ALIGN
    out.write(b"\0" * pad)
    offset = out.tell()
    write(out)
    tensor.ClearField("external_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "offset", str(offset)
    entry = tensor.external_data.add()
    entry.key, entry.value = "length", str(out.tell() - offset)


def write_tensor(out, tensor, data: bytes | memoryview, location: str) -> None:
    """Append one tensor's bytes to the open external-data file ``out`` (named ``location``) and point it there."""
    for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        tensor.ClearField(f)
    _append(out, tensor, lambda dst: dst.write(data))
    _relocate([tensor], location)


def _relocate(tensors, location: str) -> None:
    from onnx import TensorProto

    for t in tensors:
        entry = t.external_data.add()
        entry.key, entry.value = "location", location
        t.data_location = TensorProto.EXTERNAL


def _copy_external(tensor, base: Path, out) -> None:
    """Copy one tensor's bytes from its loose file; a short file (a writer that met a full disk) is an error."""
    info = _info(tensor)
    src = base / info["location"]
    offset = int(info.get("offset", 0))
    length = int(info["length"]) if "length" in info else src.stat().st_size - offset
    expected = nbytes(tensor)
    if expected is not None and length != expected or src.stat().st_size < offset + length:
        if shutil.disk_usage(base).free < max(length, expected or 0):
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        raise ExportError(f"{src.name}: external data of {tensor.name!r} is {src.stat().st_size - offset} bytes; "
                          f"expected {expected or length}")
    with open(src, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            buf = f.read(min(CHUNK, left))
            if not buf:
                raise ExportError(f"{src.name}: ended {left} bytes early while reading {tensor.name!r}")
            out.write(buf)
            left -= len(buf)


# Element sizes of the types our graphs hold (ONNX TensorProto.DataType -> bytes); others are not checked.
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}


def nbytes(tensor) -> int | None:
    """Bytes of a tensor from its dims and element type (None for a type not in _ITEMSIZE)."""
    if tensor.data_type not in _ITEMSIZE:
        return None
    n = _ITEMSIZE[tensor.data_type]
    for d in tensor.dims:
        n *= d
    return n
