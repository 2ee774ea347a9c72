"""The selftest's results: one row per (backend, check), a table for people and one JSON object for programs."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASS, FAIL, SKIP = "pass", "fail", "skip"  # skip: not applicable here (one size bucket, no GPU)
NOT_RUN = "not run"  # the time budget was spent before it started: not passed either


@dataclass
class Check:
    """One check of one backend: its result, the numbers a person reads in the table (``summary``) and everything
    a program reads (``details``: the comparator's errors and tolerances, timings)."""

    backend: str
    name: str
    result: str
    summary: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


@dataclass
class BackendReport:
    name: str
    available: bool
    mode: str = "run"
    reason: str = ""
    install: str = ""
    precisions: tuple[str, ...] = ()
    notes: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        """True when every check passed or did not apply here (a check the budget left out is no pass); None for an
        unavailable backend."""
        return None if not self.available else all(c.result in (PASS, SKIP) for c in self.checks)


class Budget:
    """The wall-clock budget of one selftest: a check that would start after it is spent is not run."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self) -> bool:
        return self.elapsed >= self.seconds


def _finite(o):
    """JSON has no inf or NaN: they are written as strings."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def to_json(backends: list[BackendReport], extra: dict) -> dict:
    """The whole run: ``passed`` (every available backend passed), each backend with its checks, and ``extra``
    (engine directory, reference, tolerances, versions, seconds)."""
    from t2vrt.selftest.compare import TOLERANCES

    out = {"passed": all(b.passed is not False for b in backends), "tolerances": TOLERANCES, **extra,
           "backends": [{**{k: v for k, v in asdict(b).items() if k != "checks"}, "passed": b.passed,
                         "checks": [asdict(c) for c in b.checks]} for b in backends]}
    return _finite(out)


def write_json(path: str | Path, record: dict) -> None:
    """Written to a temporary file beside ``path`` and renamed into place."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def table(backends: list[BackendReport]) -> str:
    """backend | check | result | numbers, one line per check; an unavailable backend in one line with the reason
    and the install command."""
    rows = [("backend", "check", "result", "numbers")]
    for b in backends:
        if not b.available:
            fix = f"; {b.install}" if b.install and b.install not in b.reason else ""
            rows.append((b.name, "available", "no", b.reason + fix))
        for c in b.checks:
            rows.append((c.backend, c.name, c.result.upper() if c.result == FAIL else c.result, c.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(line.rstrip() for line in lines)
