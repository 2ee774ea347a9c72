"""What the CLI prints: log lines written through tqdm (so they never break a progress bar), -v/-q on every
command, and --json, one JSON object on stdout for programs instead of the sentence for people."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from functools import partialmethod
from typing import Iterator

QUIET_LIBRARIES = ("httpx", "httpcore", "urllib3", "diffusers", "transformers", "huggingface_hub", "filelock")


class TqdmHandler(logging.Handler):
    """Writes each record with tqdm.write: above any open bar, which is then redrawn intact."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never take the command down
            self.handleError(record)


def add_verbosity(p: argparse.ArgumentParser, top: bool = False) -> None:
    """-v / -q, accepted before the command and after it alike (the command's value wins when both are given)."""
    default = 0 if top else argparse.SUPPRESS
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                   help="debug logging")
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                   help="warnings and errors only, no progress bars")


@contextmanager
def console(verbosity: int) -> Iterator[None]:
    """For one command: INFO by default, DEBUG with -v, WARNING and no bars with -q; libraries' chatter and bars
    kept out. As logging.basicConfig, the handler is added only where the root logger has none (an embedding
    program's or a test runner's handlers stay in charge); level, handler and environment are restored afterwards."""
    level = {1: logging.DEBUG, -1: logging.WARNING}.get(verbosity, logging.INFO)
    root, handler = logging.getLogger(), TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved_level, saved_env = root.level, dict(os.environ)
    ours = not root.handlers
    if ours:
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    # the hub's and transformers' bars ("Loading weights", read when transformers is imported) leak escape codes
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    std, init = _tqdm_class(), None
    if verbosity < 0 and std is not None:  # bars that do not say disable= themselves start disabled
        init, std.__init__ = std.__init__, partialmethod(std.__init__, disable=True)
    try:
        yield
    finally:
        if init is not None:
            std.__init__ = init
        if ours:
            root.removeHandler(handler)
        root.setLevel(saved_level)
        os.environ.clear()
        os.environ.update(saved_env)


def _tqdm_class():
    try:
        from tqdm.std import tqdm
    except ImportError:
        return None
    return tqdm


def report(args: argparse.Namespace, sentence: str, record: dict) -> None:
    """The result of a command: ``record`` as one JSON object with --json, else ``sentence``."""
    if getattr(args, "json", False):
        print(json.dumps(record, default=str))
    else:
        print(sentence)


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as one JSON object on stdout (for programs)")
