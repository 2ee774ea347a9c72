"""Bad input: one clear line naming the problem and what is allowed, raised before any backend runs."""

from __future__ import annotations

import json

import pytest

from t2vrt import InputError, ManifestError, Pipeline
from t2vrt.cli import main
from tests.helpers import forbid_backends


@pytest.fixture(scope="module")
def pipe(tiny_engines):
    return Pipeline.load(tiny_engines)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_frames=17),
         r"num_frames=17 is outside this engine directory's range \[1, 16\]; re-export with `t2vrt export \S+/tiny "
         r"-o \S+ --overwrite --frames 1:8:17`, or denoise it in overlapping windows with context_frames=8, "
         r"context_stride=2 \(CLI: --context-frames 8 --context-stride 2\)$"),
        (dict(num_frames=0), r"num_frames=0 is outside .*\[1, 16\]"),
        (dict(height=40), r"height=40 is not a multiple of 16"),
        (dict(width=36), r"width=36 is not a multiple of 16"),
        (dict(height=256), r"height=256 is outside this engine directory's range \[32, 128\]"),
        (dict(decode_chunk_size=0),
         r"decode_chunk_size=0 is outside this engine directory's range \[1, 8\]; it must be at least 1$"),
        (dict(output_type="uint8"), r"output_type='uint8'; choose one of np, pil, pt, latent \(the result's \.uint8"),
        (dict(num_inference_steps=0), r"num_inference_steps=0 must be in \[1, 1000\]"),
        (dict(scheduler="nope"), r"unknown scheduler 'nope'; available: .*ddim"),
        (dict(negative_prompt=["a", "b"]), r"negative_prompt has 2 entries; prompt has 1"),
    ],
)
def test_bad_arguments(pipe, kwargs, message, monkeypatch):
    forbid_backends(pipe, monkeypatch)
    args = dict(num_frames=2, height=32, width=32, num_inference_steps=2, progress=False) | kwargs
    with pytest.raises(InputError,
                       match=message) if "scheduler" not in kwargs else pytest.raises(ValueError, match=message):
        pipe("a cat", **args)


def test_empty_prompt_list(pipe):
    with pytest.raises(InputError, match="prompt is empty"):
        pipe([], num_frames=2)


def test_too_many_prompts(pipe):
    with pytest.raises(InputError, match=r"batch size \(number of prompts\)=3 is outside .*\[1, 2\]"):
        pipe(["a", "b", "c"], num_frames=2)


def test_missing_directory(tmp_path):
    with pytest.raises(ManifestError, match="does not exist; create one with `t2vrt export MODEL"):
        Pipeline.load(tmp_path / "nope")


def test_not_an_engine_directory(tmp_path):
    with pytest.raises(ManifestError, match="has no manifest.json"):
        Pipeline.load(tmp_path)


def test_other_manifest_version(engine_copy):
    m = json.loads((engine_copy / "manifest.json").read_text())
    m["version"] = 99
    (engine_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="has manifest version 99; this t2vrt reads version 1"):
        Pipeline.load(engine_copy)


def test_corrupt_manifest(engine_copy):
    (engine_copy / "manifest.json").write_text('{"format": "t2vrt-engine-dir", "vers')
    with pytest.raises(ManifestError, match="is corrupt"):
        Pipeline.load(engine_copy)


def test_manifest_missing_field(engine_copy):
    m = json.loads((engine_copy / "manifest.json").read_text())
    del m["profile"]
    (engine_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="malformed field"):
        Pipeline.load(engine_copy)


def test_manifest_without_vae_scaling_factor(engine_copy):
    """No silent default: decoding with a guessed latent scale would give wrong frames without an error."""
    m = json.loads((engine_copy / "manifest.json").read_text())
    assert m["extra"]["vae_scaling_factor"] == 0.18215
    del m["extra"]["vae_scaling_factor"]
    (engine_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match=r"malformed field \('vae_scaling_factor'\); re-export the model"):
        Pipeline.load(engine_copy)


def test_cli_prints_one_line(tiny_engines, capsys, tmp_path):
    code = main(["generate", str(tiny_engines), "a cat", "--frames", "40", "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("error: num_frames=40 is outside")
    assert not (tmp_path / "x.mp4").exists()


def test_cli_missing_model(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing-model"), "-o", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tensorrt_profile_checked_before_any_engine_runs(tiny_engines, monkeypatch):
    """On TensorRT the built engine's narrower profile is enforced, naming the profile and the rebuild command."""
    from t2vrt.engines.tensorrt import records as tensorrt_records

    record = {"component": "unet", "precision": "fp16", "path": "engines/unet/x.plan",
              "profile": {"frames": [8, 16, 24], "height": [32, 64, 128], "width": [32, 64, 128], "batch": [1, 1, 2]}}
    monkeypatch.setattr(tensorrt_records, "find_engines", lambda engines, name, precision=None,
                        root="DIR": ([record] if name == "unet" else [], ""))
    pipe = Pipeline.load(tiny_engines, backend="tensorrt")
    monkeypatch.setattr(pipe, "runner", lambda name: pytest.fail("an engine ran before the check"))
    with pytest.raises(InputError,
                       match=r"frames=4 is outside the unet engine's profile \[8, 24\]; rebuild with `t2vrt build .* "
                       r"--frames 4:16:24"):
        pipe("a cat", num_frames=4, height=32, width=32)
