"""host.py: versions, memory numbers; the bench's machine record and RSS without psutil (the `bench` extra)."""

import re
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


def test_threads_from_the_environment(monkeypatch):
    from t2vrt.engines.onnxruntime import session_options
    from t2vrt.errors import InputError
    from t2vrt.host import env_threads

    monkeypatch.delenv("T2VRT_THREADS", raising=False)
    assert env_threads() is None and session_options().intra_op_num_threads == 0  # ONNX Runtime's own choice
    monkeypatch.setenv("T2VRT_THREADS", " 3 ")
    assert env_threads() == 3 and session_options().intra_op_num_threads == 3
    assert session_options(2).intra_op_num_threads == 2  # a caller's own count comes first
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("T2VRT_THREADS", bad)
        with pytest.raises(InputError, match=rf"^T2VRT_THREADS='{re.escape(bad)}' must be a whole number of at "
                                             r"least 1 \(threads per session\); unset it for the backend's own"):
            env_threads()
