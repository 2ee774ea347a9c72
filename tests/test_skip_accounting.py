"""CI's skip accounting: a skip off the allow-list fails a strict run; allowed ones and non-strict runs pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.skip_accounting import unexpected

ROOT = Path(__file__).resolve().parents[1]


def _report(nodeid: str, why: str):
    return SimpleNamespace(nodeid=nodeid, longrepr=(nodeid.split("::")[0], 1, f"Skipped: {why}"))


def test_only_the_allow_list_passes():
    reports = [
        _report("tests/runtime/test_a.py::test_cuda", "needs a CUDA GPU"),
        _report("tests/engines/test_b.py::test_cpu_only", "a GPU is visible: 'current' is valid here"),
        _report("tests/engines/test_gpu_runners.py::test_x", "neither tensorrt nor tensorrt_rtx is installed"),
        _report("tests/reliability/test_c.py::test_full", "cannot mount a tmpfs here (1): the disk-full tests need"),
        _report("tests/runtime/test_d.py::test_fma", "torch uses no FMA here"),
    ]
    assert unexpected(reports) == [
        "tests/reliability/test_c.py::test_full: cannot mount a tmpfs here (1): the disk-full tests need",
        "tests/runtime/test_d.py::test_fma: torch uses no FMA here",
    ]


def _run(tmp_path: Path, reason: str, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(
        "from tests.skip_accounting import pytest_runtest_logreport, pytest_sessionfinish  # noqa: F401\n")
    (tmp_path / "test_one.py").write_text(
        f"import pytest\n\ndef test_ok():\n    pass\n\ndef test_skipped():\n    pytest.skip({reason!r})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "T2VRT_STRICT_SKIPS": "1" if strict else "0", "CI": ""}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
               "--rootdir", str(tmp_path), str(tmp_path)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_a_strict_run_fails_on_an_unexpected_skip_only(tmp_path):
    bad = _run(tmp_path, "optional thing is not installed", strict=True)
    assert bad.returncode == 1, bad.stdout
    assert "1 skips not on the CI allow-list" in bad.stdout and "optional thing is not installed" in bad.stdout
    assert _run(tmp_path, "optional thing is not installed", strict=False).returncode == 0
    allowed = _run(tmp_path, "needs a CUDA GPU", strict=True)
    assert allowed.returncode == 0, allowed.stdout
