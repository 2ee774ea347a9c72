"""Files that are not what they claim: FIFOs, deep JSON, unreadable files, outputs that cannot be created."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest

from t2vrt.cli import main
from t2vrt.errors import ManifestError, OutputError
from t2vrt.jsonio import JSONError, loads, read_json
from t2vrt.manifest import load_manifest

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def alarm():
    """Fail instead of hanging: a command that blocks on a FIFO gets SIGALRM after 30 s."""

    def ring(*_):
        raise TimeoutError("blocked (a FIFO opened for reading?)")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("command", ["verify", "inspect", "generate"])
def test_fifo_scheduler_config_is_one_line_not_a_hang(engine_copy, tmp_path, capsys, alarm, command):
    _fifo(engine_copy / "scheduler_config.json")
    args = [command, str(engine_copy)] + (["a cat", "-o", str(tmp_path / "v.mp4")] if command == "generate" else [])
    assert main(args) == 2
    out = capsys.readouterr()
    what = "scheduler_config.json (the scheduler config) is a FIFO (named pipe), not a regular file"
    assert what in out.err + out.out


def test_fifo_graph_is_refused_at_load(engine_copy, alarm):
    from t2vrt import Pipeline

    data = engine_copy / "onnx" / "unet" / "model.onnx"
    _fifo(data)
    with pytest.raises(ManifestError, match=r"model\.onnx \(the fp32 ONNX graph of unet\) is a FIFO"):
        Pipeline.load(engine_copy)


def test_deeply_nested_manifest_and_scheduler_config(engine_copy):
    (engine_copy / "scheduler_config.json").write_text(DEEP)
    from t2vrt.integrity import verify

    problems, _, _ = verify(engine_copy)
    assert problems == [f"scheduler config {engine_copy / 'scheduler_config.json'} is too deeply nested (more than "
                        "64 levels); re-export the model (`t2vrt export MODEL -o DIR --overwrite`)"]
    (engine_copy / "manifest.json").write_text('{"format": ' + DEEP + "}")
    with pytest.raises(ManifestError, match=r"manifest\.json is corrupt \(.* is too deeply nested"):
        load_manifest(engine_copy)


def test_the_json_reader_caps():
    with pytest.raises(JSONError, match="too deeply nested"):
        loads(DEEP)
    assert loads('{"a": "[[[[[[", "b": [1, {"c": "\\\\\\"]"}]}') == {"a": "[[[[[[", "b": [1, {"c": '\\"]'}]}
    with pytest.raises(JSONError, match="too large"):
        loads("1" * 100, max_bytes=10)
    with pytest.raises(JSONError, match="is a character device, not a regular file"):
        read_json("/dev/zero")  # never opened: it would never end


def _deny(path: Path, monkeypatch) -> None:
    """Make ``path`` unreadable: mode 000; as root (who reads everything) a stand-in copying what the kernel answers
    a user without read permission: os.access(R_OK) False and open() EACCES, for that path alone."""
    os.chmod(path, 0)
    if os.geteuid() != 0:
        return
    real_access, real_open = os.access, os.open

    def access(p, mode, *a, **k):
        return False if Path(p) == path and mode & os.R_OK else real_access(p, mode, *a, **k)

    def opener(p, flags, *a, **k):
        if Path(p) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, flags, *a, **k)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "open", opener)


@pytest.mark.parametrize("which", ["manifest.json", "onnx/unet/model.onnx"])
def test_unreadable_files_are_one_line_everywhere(engine_copy, tmp_path, which, monkeypatch, capsys):
    prompts, out = tmp_path / "p.jsonl", tmp_path / "out"
    prompts.write_text(json.dumps({"prompt": "a cat", "num_frames": 2, "height": 32, "width": 32}) + "\n")
    _deny(engine_copy / which, monkeypatch)
    commands = [["verify", str(engine_copy)], ["inspect", str(engine_copy)],
                ["generate", str(engine_copy), "a cat", "-o", str(out / "v.mp4"), "--steps", "1"],
                ["batch", str(engine_copy), str(prompts), "-o", str(out), "--steps", "1"]]
    for args in commands:
        code = main(args)
        cap = capsys.readouterr()
        text = cap.err + cap.out
        assert f"cannot read {engine_copy / which}" in text and "permission denied" in text, (args, text[-800:])
        assert code in (1, 2) and "Traceback" not in text, args
    os.chmod(engine_copy / which, 0o644)


def test_an_output_that_cannot_be_created_says_why_before_rendering(tiny_engines, capsys, monkeypatch):
    from t2vrt import Pipeline

    monkeypatch.setattr(Pipeline, "load", lambda *a, **k: pytest.fail("the model loaded before the output check"))
    if Path("/sys").is_dir():
        assert main(["generate", str(tiny_engines), "a cat", "-o", "/sys/x.mp4"]) == 2
        err = capsys.readouterr().err
        assert "cannot create files in '/sys'" in err and "no space" not in err


def test_read_only_filesystem_and_permission_are_named(tmp_path, monkeypatch):
    from t2vrt.runtime.media import paths

    for code, words in ((errno.EROFS, "read-only filesystem"), (errno.EACCES, "permission denied")):
        def refuse(path, flags, mode=0o777, code=code):  # the kernel's answer on such a mount (stand-in for os.open)
            raise OSError(code, os.strerror(code), str(path))

        monkeypatch.setattr(paths.os, "open", refuse)
        with pytest.raises(OutputError, match=rf"cannot write .*v\.mp4': cannot create files in .* \({words}\)"):
            paths.check_output(tmp_path / "v.mp4")
        monkeypatch.undo()
