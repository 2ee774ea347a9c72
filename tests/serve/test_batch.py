"""`t2vrt batch` in one process: validation before any model, results.jsonl, resume, parity with generate."""

import json

import numpy as np
import pytest

from t2vrt.runtime.media.video import read_video
from t2vrt.serve.batch import load_results, plan, run_local, summary

SMALL = {"num_frames": 3, "height": 32, "width": 48, "num_inference_steps": 2}


def write_prompts(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def prompts(tmp_path):
    return write_prompts(tmp_path / "prompts.jsonl", [
        {"prompt": "a red cube", "seed": 1, **SMALL},
        "# a comment",
        {"prompt": "a blue ball", "seed": 2, **SMALL, "output": "ball.gif"},
        "{not json",
        {"prompt": "too many frames", **SMALL, "num_frames": 99},
        {"prompt": "typo", "steps": 3},
        {"prompt": "escape", **SMALL, "output": "../x.mp4"},
        {"prompt": "same file", **SMALL, "output": "ball.gif"},
    ])


def test_bad_lines_are_reported_before_any_model_loads(tiny_engines, prompts, tmp_path, monkeypatch):
    import t2vrt.serve.batch as batch

    lines = plan(tiny_engines, prompts, tmp_path / "out")
    errors = {item.line: item.error for item in lines if item.error}
    assert sorted(errors) == [4, 5, 6, 7, 8]
    assert "not valid JSON" in errors[4]
    assert "num_frames=99" in errors[5] and "re-export" in errors[5]
    assert "unknown key 'steps'" in errors[6] and "num_inference_steps" in errors[6]
    assert "relative path" in errors[7]
    assert "also line 3's" in errors[8]
    monkeypatch.setattr(batch, "Renderer", None)  # all lines invalid: no model may load
    res = run_local(tiny_engines, [i for i in lines if i.error], tmp_path / "out")
    assert {r["status"] for r in res.records.values()} == {"invalid"}


def by_line(records: dict) -> dict:
    return {r["line"]: r for r in records.values()}


def test_batch_writes_results_resumes_and_matches_generate(tiny_engines, prompts, tmp_path):
    from t2vrt.cli import main

    out = tmp_path / "out"
    lines = plan(tiny_engines, prompts, out)
    results = run_local(tiny_engines, lines, out)
    assert summary(results, lines) == {"ok": 2, "invalid": 5}
    records = by_line(load_results(out))
    first = records[1]
    assert first["status"] == "ok" and first["seed"] == 1 and first["output"] == "00001-a-red-cube.mp4"
    assert set(first["seconds"]) == {"encode_prompt", "denoise", "decode", "write", "total"}
    assert (out / "ball.gif").is_file() and not list(out.glob(".*partial*"))

    ref = tmp_path / "ref.mp4"
    assert main(["generate", str(tiny_engines), "a red cube", "--seed", "1", "--frames", "3", "--height", "32",
                 "--width", "48", "--steps", "2", "-o", str(ref)]) == 0
    np.testing.assert_array_equal(read_video(out / first["output"]), read_video(ref))

    mtime = (out / first["output"]).stat().st_mtime_ns
    again = plan(tiny_engines, prompts, out)
    assert [i.line for i in again if i.skip] == [1, 3]
    results = run_local(tiny_engines, again, out)
    assert summary(results, again) == {"skipped": 2, "invalid": 5}
    assert by_line(results.records)[1] == first and (out / first["output"]).stat().st_mtime_ns == mtime


def test_existing_file_not_made_by_the_batch_is_not_overwritten(tiny_engines, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.mp4").write_bytes(b"keep me")
    p = write_prompts(tmp_path / "p.jsonl", [{"prompt": "x", **SMALL, "output": "mine.mp4"}])
    (item,) = plan(tiny_engines, p, out)
    assert item.error is None and "already exists" in item.exists and "--overwrite" in item.exists
    assert run_local(tiny_engines, [item], out).outcome[item.key] == "exists"
    assert (out / "mine.mp4").read_bytes() == b"keep me"


@pytest.mark.parametrize("nodes, workers, gpus, given, env, threads", [
    ([2], 1, 0, None, None, 2),          # one worker on a 2-core node: every core, as ONNX Runtime's default
    ([2], 2, 0, None, None, 1),          # two share it: one thread each
    ([2], 3, 0, None, None, 1),          # at least one
    ([8, 8], 3, 0, None, None, 4),       # spread over two nodes: at most two workers on one
    ([16, 8], 2, 0, None, None, 8),      # the smallest node decides
    ([2], 2, 0, 4, None, 4),             # the caller's own count
    ([2], 2, 0, None, "3", None),        # $T2VRT_THREADS: the runners read it
    ([2], 2, 1.0, None, None, None),     # GPU workers: the backend's default
])
def test_ray_workers_share_a_nodes_cores(monkeypatch, nodes, workers, gpus, given, env, threads):
    from t2vrt.engines.backends import LoadOptions
    from t2vrt.serve.ray_batch import worker_load_options

    cluster = [{"Alive": True, "Resources": {"CPU": float(n)}} for n in nodes]
    cluster += [{"Alive": False, "Resources": {"CPU": 1.0}}, {"Alive": True, "Resources": {"GPU": 1.0}}]
    ray = type("Ray", (), {"nodes": staticmethod(lambda: cluster)})
    if env is None:
        monkeypatch.delenv("T2VRT_THREADS", raising=False)
    else:
        monkeypatch.setenv("T2VRT_THREADS", env)
    options = worker_load_options(ray, LoadOptions(backend="onnxruntime", threads=given), workers, gpus, "fp32")
    assert (options.threads, options.backend, options.precision) == (threads, "onnxruntime", "fp32")
