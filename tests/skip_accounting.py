"""CI accounts for every skip: with T2VRT_STRICT_SKIPS=1 (set by .ci/run) or CI=true, a skip whose reason is not on
the allow-list fails the run, so a dropped optional dependency, a non-root runner (the disk-full tests mount a tmpfs)
or a CPU without FMA cannot pass silently. tests/conftest.py imports the two hooks.

The allow-list (a test that may be skipped in CI must skip with one of these):
- the reason starts with "needs a CUDA GPU" (GPU tests on a CPU runner);
- the reason starts with "a GPU is visible" (CPU-only checks on a GPU runner);
- the reason starts with "this CPU has no AVX512_BF16 or AMX" (OpenVINO bf16, which such a CPU refuses: hardware,
  like the GPU; a CPU without FMA is not excused, every x86-64 CI runner has it);
- the skip comes from a GPU-only module (``GPU_ONLY_MODULES``), e.g. its optional CUDA imports.
"""

from __future__ import annotations

import os

ALLOWED_REASONS = ("needs a CUDA GPU", "a GPU is visible", "this CPU has no AVX512_BF16 or AMX")
GPU_ONLY_MODULES = ("tests/engines/test_gpu_runners.py", "tests/selftest/test_selftest_gpu.py")
_skips: list = []


def strict() -> bool:
    return os.environ.get("T2VRT_STRICT_SKIPS") == "1" or os.environ.get("CI", "").lower() == "true"


def reason(report) -> str:
    """The skip reason pytest reports: longrepr is (path, line, "Skipped: REASON")."""
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def unexpected(reports) -> list[str]:
    """``nodeid: reason`` of each skip not on the allow-list."""
    out = []
    for r in reports:
        why = reason(r)
        if why.startswith(ALLOWED_REASONS) or r.nodeid.split("::")[0] in GPU_ONLY_MODULES:
            continue
        out.append(f"{r.nodeid}: {why}")
    return out


def pytest_runtest_logreport(report):
    """Every skip (on the xdist controller too: the workers' reports are replayed there); xfails are not skips."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append(report)


def pytest_sessionfinish(session, exitstatus):
    if not strict() or hasattr(session.config, "workerinput"):  # the controller alone decides
        return
    bad = unexpected(_skips)
    if not bad:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_sep("=", f"{len(bad)} skips not on the CI allow-list (tests/skip_accounting.py)", red=True)
        for line in bad:
            tr.write_line(line)
    session.exitstatus = 1
