"""ONNX Runtime's two packages: the extras that bring one of them, and the one lines for neither and for both."""

import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from t2vrt.engines import onnxruntime_cuda
from t2vrt.errors import EngineError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_base_install_requires_neither_and_extras_bring_one():
    """Row 7: the GPU extra never brings the CPU package that shadows its CUDA provider (optimum's split)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("onnxruntime")]
    extras = project["optional-dependencies"]
    assert [d for d in extras["cpu"] if "onnxruntime" in d] == ["onnxruntime>=1.17"]
    assert [d for d in extras["gpu"] if "onnxruntime" in d] == ["onnxruntime-gpu>=1.17"]
    others = [d for name, deps in extras.items() if name not in ("cpu", "gpu") for d in deps]
    assert not [d for d in others if d.split("[")[0].startswith("onnxruntime")]


def test_neither_installed_names_both_commands(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(EngineError, match=r"^ONNX Runtime is not installed: pip install 't2vrt\[cpu\]' \(onnxruntime, "
                                          r"CPU\) or pip install 't2vrt\[gpu\]' \(onnxruntime-gpu, NVIDIA GPUs\)$"):
        onnxruntime_cuda.import_onnxruntime()
    assert onnxruntime_cuda.ort_cuda_unusable().startswith("ONNX Runtime is not installed")


def test_both_distributions_are_seen(monkeypatch):
    """importlib.metadata finds each distribution's own record, though both install the one onnxruntime module."""
    have = {"onnxruntime", "onnxruntime-gpu"}

    def distribution(name):
        if name not in have:
            raise metadata.PackageNotFoundError(name)
        return object()

    monkeypatch.setattr(metadata, "distribution", distribution)
    assert onnxruntime_cuda.installed_distributions() == ["onnxruntime", "onnxruntime-gpu"]
    assert "the CPU package shadows onnxruntime-gpu's CUDAExecutionProvider" in onnxruntime_cuda.shadowing()
    have.discard("onnxruntime")
    assert onnxruntime_cuda.installed_distributions() == ["onnxruntime-gpu"] and onnxruntime_cuda.shadowing() == ""


def test_this_environment_has_one_of_them():
    """The test environment (make setup: the cpu extra; a GPU machine: the gpu extra) has exactly one package."""
    assert len(onnxruntime_cuda.installed_distributions()) == 1
