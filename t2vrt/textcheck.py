"""Prompts are Unicode strings that encode as UTF-8 (what the tokenizer, JSON and every file we write take).

Python reads bytes that are not UTF-8 on the command line as lone surrogates U+DC80..U+DCFF (PEP 383), and a JSON
body may spell a lone surrogate as "\\ud800"; either would fail deep inside the tokenizer after the model loaded.
``check_utf8`` refuses them in one line, before anything loads.
"""

from __future__ import annotations

from t2vrt.errors import InputError


def utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8 ("byte 0xff at character 2 is not UTF-8", "a lone surrogate
    U+D800 at character 2"), or None."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        code = ord(text[e.start])
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as Python's surrogateescape keeps it
            return f"byte 0x{code - 0xDC00:02x} at character {e.start + 1} is not UTF-8"
        return f"a lone surrogate U+{code:04X} at character {e.start + 1} is not a character"


def check_utf8(name: str, value: object) -> None:
    """InputError (one line) if ``value`` (a string or a list of strings) does not encode as UTF-8."""
    for i, text in enumerate([value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []):
        why = utf8_problem(text) if isinstance(text, str) else None
        if why:
            where = f"{name}[{i}]" if not isinstance(value, str) else name
            raise InputError(f"{where}: {why}; give text that encodes as UTF-8")
