"""The one JSON reader: every JSON t2vrt reads (manifest, scheduler config, stamps, batch lines and records, service
bodies) goes through it, with a size cap and a nesting cap, so a hostile file is one line, never a RecursionError,
an unbounded read, or a hang on a FIFO.

``loads(text)`` parses a string or bytes; ``read_json(path)`` reads only a regular file (a FIFO, socket or device is
refused from its ``stat``, never opened; a file it cannot read is "cannot read X: permission denied"). Errors are
``JSONError`` (a ValueError) carrying one line; callers wrap it in their own typed error (ManifestError,
InputError) with the fix.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 64 << 20  # a manifest of a model with many size buckets is ~100 kB; tokenizer files are not read here
MAX_DEPTH = 64  # what t2vrt writes nests 6 deep; the standard library's parser recurses once per level


class JSONError(ValueError):
    """A JSON text or file that cannot be read: one line naming why."""


def _depth_ok(obj: Any, max_depth: int) -> bool:
    """Whether a parsed value nests at most ``max_depth`` containers deep (an explicit stack: no recursion)."""
    level, depth = [obj] if type(obj) in (dict, list) else [], 1
    while level:  # one level of containers at a time
        if depth > max_depth:
            return False
        level = [v for c in level for v in (c.values() if type(c) is dict else c) if type(v) in (dict, list)]
        depth += 1
    return True


def loads(text: str | bytes, what: str = "JSON", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text``; JSONError (one line) when it is too large, too deeply nested, not UTF-8 or not JSON."""
    if len(text) > max_bytes:
        raise JSONError(f"{what} is too large ({len(text)} bytes; at most {max_bytes})")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONError(f"{what} is not UTF-8 (byte 0x{text[e.start]:02x} at offset {e.start})") from None
    deep = JSONError(f"{what} is too deeply nested (more than {max_depth} levels)")
    try:
        value = json.loads(text)  # the C parser guards its recursion: a 100,000-deep text is a RecursionError
    except json.JSONDecodeError as e:
        raise JSONError(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise deep from None
    if not _depth_ok(value, max_depth):
        raise deep
    return value


def check_regular(path: str | Path, what: str | None = None) -> os.stat_result:
    """``stat`` of ``path`` (symlinks followed) if it is a regular file; JSONError naming what it is otherwise.
    Never opens the file, so a FIFO cannot block the caller."""
    name = what or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise JSONError(cannot_read(path, e)) from None
    if not stat.S_ISREG(st.st_mode):
        kind = file_kind(st.st_mode)
        raise JSONError(f"{name} is a {kind}, not a regular file; t2vrt reads only regular files")
    return st


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def cannot_read(path: str | Path, e: OSError) -> str:
    """The one line for an OSError while reading ``path``: "cannot read X: permission denied"."""
    why = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EISDIR: "it is a directory",
           errno.ELOOP: "too many levels of symbolic links", errno.EIO: "input/output error"}.get(
        e.errno, (e.strerror or type(e).__name__).lower())
    return f"cannot read {path}: {why}"


def read_bytes(path: str | Path, max_bytes: int = MAX_BYTES, what: str | None = None) -> bytes:
    """A regular file's bytes (at most ``max_bytes``); JSONError (one line) for anything else. FileNotFoundError
    passes through, so callers can say how to make the missing file."""
    st = check_regular(path, what)
    if st.st_size > max_bytes:
        raise JSONError(f"{what or path} is too large ({st.st_size} bytes; at most {max_bytes})")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in after the stat: no block
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise JSONError(cannot_read(path, e)) from None
    if len(data) > max_bytes:
        raise JSONError(f"{what or path} is too large (more than {max_bytes} bytes)")
    return data


def read_json(path: str | Path, what: str | None = None, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse the JSON file ``path`` through the caps; JSONError (one line) or FileNotFoundError."""
    return loads(read_bytes(path, max_bytes, what), what or str(path), max_bytes, max_depth)
