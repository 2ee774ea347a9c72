"""host.py: versions, memory numbers; the bench's machine record and RSS without psutil (the `bench` extra)."""

import sys

import pytest

from t2vrt.host import library_versions, peak_rss_bytes, release_memory, rss_bytes


def test_versions_and_memory():
    v = library_versions(("numpy", "no-such-package-t2vrt"))
    assert set(v) == {"python", "numpy"} and v["numpy"][0].isdigit()
    release_memory()
    assert 10 << 20 < rss_bytes() <= peak_rss_bytes() < 1 << 40


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="without psutil the numbers come from /proc")
def test_bench_needs_no_psutil_on_linux(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    from t2vrt.bench.machine import machine
    from t2vrt.bench.measure import PeakMemory

    info = machine()
    assert info["cores_physical"] >= 1 and info["ram_gib"] > 0 and "numpy" in info["versions"]
    mem = PeakMemory()
    mem.reset()
    start = mem.current_mb()
    block = b"\x01" * (64 << 20)  # touched, so resident
    del block
    assert mem.peak_mb() - start > 60  # the peak saw the 64 MiB that are gone now
