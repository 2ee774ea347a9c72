"""CLIP tokenization with the `tokenizers` library alone, token for token as diffusers' CLIPTokenizer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from t2vrt.errors import ManifestError

log = logging.getLogger(__name__)


class ClipTokenizer:
    """Pads with the model's pad token and truncates to ``max_length`` keeping the end-of-text token."""

    def __init__(self, root: Path, entry: dict):
        from tokenizers import Tokenizer

        path = Path(root) / entry["path"]
        if not path.is_file():
            raise ManifestError(f"tokenizer file {path} is missing; re-export the model")
        self.max_length = int(entry["max_length"])
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises its own Exception type for bad JSON
            from t2vrt.manifest import recorded_model

            raise ManifestError(f"tokenizer {path} cannot be read ({str(e)[:120]}); re-export the model "
                                f"(`t2vrt export {recorded_model(root)} -o {root} --overwrite`)") from None
        self.tok.enable_truncation(self.max_length)
        self.tok.enable_padding(length=self.max_length, pad_id=int(entry["pad_id"]), pad_token=entry["pad_token"])
        self._plain = Tokenizer.from_file(str(path))  # untruncated, to warn like diffusers does

    def __call__(self, texts: list[str]) -> np.ndarray:
        ids = np.array([e.ids for e in self.tok.encode_batch(texts)], dtype=np.int64)
        for text in texts:
            n = len(self._plain.encode(text).ids)
            if n > self.max_length:
                log.warning("prompt truncated to %d tokens (it has %d): %.60s...", self.max_length, n, text)
        return ids
