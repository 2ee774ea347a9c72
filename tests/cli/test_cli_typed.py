"""The CLI as people type it: defaults shown as typed, help that fits its command, --add, upscale --json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2vrt.cli import build_parser, main
from tests.helpers import copy_engines


def _help(command: str, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: no wrapped words to match across
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices[command].format_help()


def test_help_shows_defaults_as_typed(monkeypatch):
    export = _help("export", monkeypatch)
    assert "VAE frames per call (default: 1:4:16)" in export and "graph precisions (default: fp32)" in export
    assert "(default: text_encoder unet vae_decoder)" in export
    for command in ("export", "build", "generate", "upscale", "batch", "serve", "bench", "inspect", "verify", "demo"):
        text = _help(command, monkeypatch)
        assert "(default: (" not in text and "(default: [" not in text, command
        assert "debug logging (default" not in text, command  # a flag has no default to show


def test_help_copied_between_commands_fits_each(monkeypatch):
    serve, batch, upscale = (_help(c, monkeypatch) for c in ("serve", "batch", "upscale"))
    assert "line" not in serve and "seed of requests without one" in serve and "a request's own keys win" in serve
    assert "seed of lines without one" in batch
    assert "--frames" not in upscale and "denoise the video's frames in overlapping windows" in upscale
    assert "--json" in upscale


def _add(model, engines, *extra) -> int:
    return main(["export", str(model), "-o", str(engines), "--components", "vae_encoder", "--add", *extra])


def test_add_exports_one_component_into_an_existing_directory(tiny_model, tiny_export, tmp_path, capsys):
    from t2vrt.runtime.video2video import VideoToVideoPipeline
    from tests.runtime.test_video2video import moving_pattern

    engines = copy_engines(tiny_export, tmp_path / "t2v", drop=("vae_encoder",))
    before = {p: p.read_bytes() for p in (engines / "onnx").rglob("*") if p.is_file()}
    manifest = json.loads((engines / "manifest.json").read_text())
    assert _add(tiny_model, engines, "--json") == 0
    assert json.loads(capsys.readouterr().out)["added"] == ["vae_encoder"]
    after = json.loads((engines / "manifest.json").read_text())
    assert sorted(after["components"]) == sorted([*manifest["components"], "vae_encoder"])
    assert {k: v for k, v in after["components"].items() if k != "vae_encoder"} == manifest["components"]
    assert sorted(after["components"]["vae_encoder"]["onnx"]) == ["fp16", "fp32"]  # the directory's precisions
    assert after["profile"] == manifest["profile"] and after["source"] == manifest["source"]
    assert all(p.read_bytes() == data for p, data in before.items())  # the others untouched
    assert [p.name for p in tmp_path.iterdir()] == ["t2v"]  # nothing left beside it
    # the added encoder is the full export's: the same video-to-video frames
    kw = dict(video=list(moving_pattern(3, 32, 48)), strength=0.6, seed=1, num_inference_steps=2, progress=False)
    added = VideoToVideoPipeline.load(engines)("a panda", **kw).images
    np.testing.assert_allclose(added, VideoToVideoPipeline.load(tiny_export)("a panda", **kw).images, atol=1e-5)


def test_add_refuses_another_model_a_present_component_and_overwrite(tiny_model, tiny_export, tmp_path, capsys):
    import shutil

    engines = copy_engines(tiny_export, tmp_path / "t2v", drop=("vae_encoder",))
    other = shutil.copytree(tiny_model, tmp_path / "other-model")
    manifest = (engines / "manifest.json").read_bytes()
    cases = [
        (lambda: _add(other, engines), f"was exported from '{tiny_model}', not '{other}'; --add takes the same model"),
        (lambda: main(["export", str(tiny_model), "-o", str(engines), "--components", "unet", "--add"]),
         "already has unet; --add exports only components it lacks"),
        (lambda: _add(tiny_model, engines, "--overwrite"), "--add keeps the directory and adds to it; it does not go "
                                                           "with --overwrite"),
        (lambda: _add(tiny_model, engines, "--frames", "1:8:16", "--precision", "fp16"),
         "--add exports at the directory's own profile and precisions; leave out --frames, --precision"),
        (lambda: _add(tiny_model, tmp_path / "none"),
         f"--add adds to an existing engine directory; {tmp_path / 'none'} is none: export it with `t2vrt export "
         f"{tiny_model} -o "),
    ]
    for run, message in cases:
        code = run()
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert (engines / "manifest.json").read_bytes() == manifest and not (engines / "onnx" / "vae_encoder").exists()


@pytest.mark.parametrize("flag", ["--json"])
def test_upscale_prints_json(tiny_v2v_engines, tmp_path, capsys, flag):
    import imageio.v3 as iio

    from tests.runtime.test_video2video import moving_pattern

    src = tmp_path / "in.gif"
    iio.imwrite(src, moving_pattern(2, 32, 32), loop=0)
    out = tmp_path / "up.gif"
    code = main(["upscale", str(tiny_v2v_engines), str(src), "a cat", "--steps", "2", "-o", str(out), flag, "-q"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["output"] == str(out) and out.is_file()
    assert (record["frames"], record["height"], record["width"], record["seed"]) == (2, 32, 32, 0)
