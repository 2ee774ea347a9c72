"""Real processes for the concurrency and permission tests: a lock holder, and code run as an unprivileged user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}

HOLD = """
import json, sys, time
from t2vrt.locks import exclusive
path, what, info, seconds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
with exclusive(path, what, info):
    print("held", flush=True)
    time.sleep(seconds)
"""


def hold(lock: Path, info: dict, seconds: float = 60.0, what: str = "the test's target") -> subprocess.Popen:
    """A process holding the writer lock ``lock`` (t2vrt.locks, the one every writer takes) for ``seconds``;
    returned once it holds it. Kill it (kill -9 included) to release."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), what, json.dumps(info), str(seconds)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def t2vrt(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`t2vrt ARGS` in a new process."""
    return subprocess.run([sys.executable, "-m", "t2vrt", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, **kw)
