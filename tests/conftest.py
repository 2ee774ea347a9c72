"""Session fixtures: one tiny random-weight model in the diffusers layout, exported ONCE per test run.

The export holds fp32 and fp16 graphs of every component, the VAE encoder included, so text-to-video,
video-to-video, fp16 and TensorRT-build tests share it. A test that changes an engine directory works on a copy
(``engine_copy``). A test that exports the UNet again (other options, fault injection), runs an export in a
subprocess or builds TensorRT engines is marked ``slow`` (`make test-fast` leaves those out); a text-encoder-only
export takes a second or two and is not. Under CI (.ci/run), a skip not on tests/skip_accounting.py's allow-list
fails the run.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import TINY_COMPONENTS, TINY_PRECISIONS, TINY_PROFILE, copy_engines
from tests.skip_accounting import pytest_runtest_logreport, pytest_sessionfinish  # noqa: F401 (CI's skip hooks)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from t2vrt.export.random_model import build_model

    return build_model(tmp_path_factory.mktemp("models") / "tiny", "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory):
    """The one export of the session: fp32 + fp16, text encoder, UNet, VAE decoder and encoder. Read-only."""
    from t2vrt.components import Profile
    from t2vrt.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("engines") / "tiny"
    options = ExportOptions(components=TINY_COMPONENTS, precisions=TINY_PRECISIONS, profile=Profile(**TINY_PROFILE))
    return export_model(str(tiny_model), out, options)


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
