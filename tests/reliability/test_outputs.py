"""Output safety: nothing the call did not create is deleted or replaced; a failed write keeps the previous file."""

from __future__ import annotations

import numpy as np
import pytest

from t2vrt.errors import InputError, OutputError
from t2vrt.runtime.media import video as video_mod
from t2vrt.runtime.media.paths import FRAMES_MARK, check_output, write_text_atomic
from t2vrt.runtime.media.video import write_video
from tests.fs_fixtures import fill, small_fs  # noqa: F401 (a fixture)

NO_SPACE = (r"^no space left on device while writing .*; [\d.]+ MB needed, [\d.]+ MB free; "
            r"the previous file is untouched$")


def frames(f=6, h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (f, h, w, 3), dtype=np.uint8)


def test_existing_directories_are_never_replaced(tmp_path):
    engines = tmp_path / "engines"
    (engines / "onnx").mkdir(parents=True)
    (engines / "manifest.json").write_text("{}")
    for target in (engines, engines / "onnx" / "..", tmp_path):
        with pytest.raises(OutputError, match="existing directory that t2vrt did not write; it is never replaced"):
            write_video(frames(), target)
    assert (engines / "manifest.json").read_text() == "{}" and (engines / "onnx").is_dir()


def test_png_folder_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "pngs"
    write_video(frames(4), out)
    assert (out / FRAMES_MARK).is_file() and len(list(out.glob("*.png"))) == 4
    with pytest.raises(OutputError, match="pass --overwrite"):
        write_video(frames(3), out)
    write_video(frames(3), out, overwrite=True)
    assert len(list(out.glob("*.png"))) == 3 and [p.name for p in tmp_path.iterdir()] == ["pngs"]
    (out / "notes.txt").write_text("mine")  # no longer only what t2vrt wrote
    with pytest.raises(OutputError, match="did not write"):
        write_video(frames(3), out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0, -1, True, "8"])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(InputError, match=r"fps=.* must be a finite number > 0"):
        check_output(tmp_path / "v.mp4", fps)


def test_bad_paths(tmp_path):
    (tmp_path / "plain").write_text("keep")
    with pytest.raises(InputError, match="supported outputs are"):
        check_output(tmp_path / "x.avi")
    with pytest.raises(OutputError, match="is an existing file; png frames need a new folder"):
        check_output(tmp_path / "plain")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output(tmp_path / "plain" / "v.mp4")
    assert (tmp_path / "plain").read_text() == "keep"


def test_a_file_that_does_not_decode_keeps_the_previous(tmp_path, monkeypatch):
    good = write_video(frames(), tmp_path / "v.mp4")
    before = good.read_bytes()
    monkeypatch.setattr(video_mod, "_write_mp4", lambda fr, path, fps: path.write_bytes(b"\0" * 4096))
    with pytest.raises(OutputError, match=r"writing .*v\.mp4' failed \(the written mp4 does not decode"):
        write_video(frames(seed=1), good)
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


@pytest.mark.parametrize("name", ["v.mp4", "v.gif", "pngs"])
def test_full_disk_keeps_the_previous_output(small_fs, name):  # noqa: F811
    fs = small_fs(512)
    small, big = frames(2, 16, 16), frames(24, 96, 128, seed=1)  # noise: about 880 KB raw, no codec shrinks it much
    out = write_video(small, fs / name)
    before = {p.name: p.read_bytes() for p in ([out] if out.is_file() else out.iterdir())}
    fill(fs, 32 << 10)
    with pytest.raises(OutputError, match=NO_SPACE):
        write_video(big, out, overwrite=True)
    after = {p.name: p.read_bytes() for p in ([out] if out.is_file() else out.iterdir())}
    assert after == before
    assert sorted(p.name for p in fs.iterdir()) == sorted(["filler", name])


def test_json_results_written_atomically(tmp_path):
    path = write_text_atomic(tmp_path / "r.json", '{"a": 1}')
    assert path.read_text() == '{"a": 1}' and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(InputError, match="supported outputs are .json"):
        check_output(tmp_path / "r.txt", suffixes=(".json",))


def test_the_result_objects_save_is_the_checked_atomic_write(tmp_path, monkeypatch):
    """Pipeline results (runtime/output.py's Video, diffusers' contract) save through write_video: checked, verified."""
    from t2vrt.runtime.output import Video

    video = Video.build(frames(4)[None] / 255.0, None, 0)
    with pytest.raises(OutputError, match="existing directory that t2vrt did not write"):
        video.save(tmp_path)
    out = video.save(tmp_path / "v.gif")
    good = out.read_bytes()
    monkeypatch.setattr(video_mod, "_verify_gif", lambda path, f: (_ for _ in ()).throw(OutputError("bad gif")))
    with pytest.raises(OutputError, match="bad gif.*the previous file is untouched"):
        video.save(out)
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["v.gif"]
    folder = video.save(tmp_path / "pngs")
    assert sorted(p.name for p in folder.iterdir()) == [FRAMES_MARK] + [f"frame_{i:04d}.png" for i in range(4)]
    with pytest.raises(OutputError, match="holds png frames of an earlier run; pass --overwrite"):
        video.save(folder)  # an earlier run's frames, replaced only when asked
    other = Video.build(frames(3, seed=1)[None] / 255.0, None, 0)
    assert other.save(folder, overwrite=True) == folder
    assert sorted(p.name for p in folder.iterdir()) == [FRAMES_MARK] + [f"frame_{i:04d}.png" for i in range(3)]
    import imageio.v3 as iio

    np.testing.assert_array_equal(np.stack([iio.imread(folder / f"frame_{i:04d}.png") for i in range(3)]),
                                  other.uint8[0])
