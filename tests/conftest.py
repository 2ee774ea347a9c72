"""Session fixtures: one tiny random-weight model in the diffusers layout, exported ONCE per test run (one export
shared by the pytest-xdist workers).

The export holds fp32 and fp16 graphs of every component, the VAE encoder included, so text-to-video,
video-to-video, fp16 and TensorRT-build tests share it. A test that changes an engine directory works on a copy
(``engine_copy``). A test that exports the UNet again (other options, fault injection), runs an export in a
subprocess or builds TensorRT engines is marked ``slow`` (`make test-fast` leaves those out); a text-encoder-only
export takes a second or two and is not. Under CI (.ci/run), a skip not on tests/skip_accounting.py's allow-list
fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY_COMPONENTS, TINY_PRECISIONS, TINY_PROFILE, copy_engines
from tests.skip_accounting import pytest_runtest_logreport, pytest_sessionfinish  # noqa: F401 (CI's skip hooks)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist, the cores shared among the workers: each backend's default (a thread per core, spinning while
# it waits) in every worker ran the suite at twice the CPU (RESULTS.md, "Test suite time"). Set before any test
# module imports torch (OMP_NUM_THREADS: torch's diffusers references); T2VRT_THREADS: our ONNX Runtime and OpenVINO
# sessions. Child processes (the CLI, Ray's workers) inherit both.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("OMP_NUM_THREADS", share)
    os.environ.setdefault("T2VRT_THREADS", share)

# Files go out to the pytest-xdist workers in collection order (the Makefile's --no-loadscope-reorder): first those
# that do not need the session export (one worker makes it while the other runs these instead of waiting for it),
# then the ones that need it; within each, the files that keep a worker busy longest (15 s or more in a full run:
# RESULTS.md, "Test suite time") first, so the two workers finish together on short files instead of one idling
# while the other runs a long file it drew last.
LONG_FILES = (
    "serve/test_ray.py", "engines/test_tensorrt_buckets.py", "selftest/test_selftest.py",
    "engines/test_tensorrt_build.py", "engines/test_openvino_pipeline.py", "reliability/test_concurrent_writers.py",
    "runtime/test_context_pipeline.py", "engines/test_openvino.py", "cli/test_cli.py", "export/test_faults.py",
    "runtime/test_parity.py", "export/test_external_data.py",
)
SESSION_EXPORT = {"tiny_export", "tiny_engines", "tiny_v2v_engines", "tiny_engines_without_encoder", "engine_copy"}


def pytest_collection_modifyitems(config, items):
    def file_of(item) -> str:
        return item.nodeid.split("::", 1)[0]

    rank = {f"tests/{name}": i for i, name in enumerate(LONG_FILES)}
    needs: dict[str, bool] = {}
    for item in items:
        needs[file_of(item)] = needs.get(file_of(item), False) or bool(SESSION_EXPORT & set(item.fixturenames))
    items.sort(key=lambda item: (needs[file_of(item)], rank.get(file_of(item), len(LONG_FILES))))  # stable


def shared(tmp_path_factory, name: str, make) -> Path:
    """``make(path)`` once per test run: under pytest-xdist the first worker to ask builds it in the run's common
    temporary folder while holding the project's writer lock (t2vrt.locks), and the others wait for it and reuse it
    (read-only, as every session fixture here). The tiny export is 18 s of one core; the files that need it go out
    after those that do not (pytest_collection_modifyitems), so the wait costs little."""
    from t2vrt.locks import exclusive

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # above each worker's own folder: the run's
    path, done = root / name, root / f"{name}.done"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(root / f"{name.replace('/', '-')}.lock", name, wait=lambda holder: True):
        if not done.exists():  # a worker whose make() failed left no marker: the next one tries again
            make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from t2vrt.export.random_model import build_model

    return shared(tmp_path_factory, "models/tiny", lambda path: build_model(path, "tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory):
    """The one export of the run: fp32 + fp16, text encoder, UNet, VAE decoder and encoder. Read-only."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    options = ExportOptions(components=TINY_COMPONENTS, precisions=TINY_PRECISIONS, profile=Profile(**TINY_PROFILE))
    return shared(tmp_path_factory, "engines/tiny", lambda path: export_model(str(tiny_model), path, options))


@pytest.fixture(scope="session")
def tiny_engines(tiny_export):
    """The session export, for text-to-video (read-only; copy it with ``engine_copy`` to change it)."""
    return tiny_export


@pytest.fixture(scope="session")
def tiny_v2v_engines(tiny_export):
    """The session export, for video-to-video: it has the VAE encoder (read-only)."""
    return tiny_export


@pytest.fixture(scope="session")
def tiny_engines_without_encoder(tiny_export, tmp_path_factory):
    """The session export less its VAE encoder: a text-to-video-only directory (for the "no vae_encoder" errors)."""
    return copy_engines(tiny_export, tmp_path_factory.mktemp("engines") / "no-encoder", drop=("vae_encoder",))


@pytest.fixture()
def engine_copy(tiny_export, tmp_path):
    """A private copy of the session export, for a test that changes it (``tests.helpers.copy_engines`` can drop
    components)."""
    return copy_engines(tiny_export, tmp_path / "engine-copy")


@pytest.fixture(scope="session")
def diffusers_pipe(tiny_model):
    from diffusers import TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline.from_pretrained(str(tiny_model))
    pipe.set_progress_bar_config(disable=True)
    return pipe
