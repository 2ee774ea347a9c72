"""Throughput of `t2vrt batch`: plain in-process generate vs the local batch vs Ray Data on a local cluster.

    python -m benchmarks.batch_throughput ENGINE_DIR --videos 12 --workers 1 2 --json out.json

Each video: one prompt, its own seed, the request given by --frames/--size/--steps. "plain" is Pipeline.load once
and one call + mp4 write per video (the floor a batch can reach); the batch rows are wall-clock for the whole run,
so they include Ray's start-up and each actor's model load; "steady" is the time between the first and the last
finished video divided by the videos between them (start-up excluded). The overhead of a video beyond its render
and write is read from the records' clocks: a worker's idle gap between two videos, and the delay until the driver
has the record.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from t2vrt.bench.machine import machine
from t2vrt.bench.report import write_json


def prompts_file(folder: Path, n: int, req: dict) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"a test video number {i}", "seed": i, **req}) + "\n" for i in range(n))
    )
    return path


def timed_batch(run, engine_dir, prompts, outdir) -> dict:
    """Wall-clock of the whole run, and from the records' own clocks (one machine, one clock) what a video costs
    beyond rendering and writing it: the idle gap on a worker between two videos, and the delay from a worker
    finishing a video to the driver recording it."""
    from t2vrt.serve.batch import plan

    records, received = [], []

    def on_record(r):
        received.append(time.time())
        records.append(r)

    t0 = time.perf_counter()
    results = run(engine_dir, plan(engine_dir, prompts, outdir), outdir, on_record=on_record)
    wall = time.perf_counter() - t0
    assert all(r["status"] == "ok" for r in results.records.values()), results.records
    n = len(records)
    by_worker: dict[str, list[dict]] = {}
    for r in records:
        by_worker.setdefault(r["worker"], []).append(r)
    gaps = [
        b["started"] - a["finished"]
        for rs in by_worker.values()
        for a, b in zip(sorted(rs, key=lambda r: r["started"]), sorted(rs, key=lambda r: r["started"])[1:])
    ]
    delays = [t - r["finished"] for t, r in zip(received, records)]
    render = statistics.median(r["seconds"]["total"] for r in records[1:] or records)
    steady = (max(received) - min(received)) / (n - 1) if n > 1 else float("nan")
    return {
        "wall_s": round(wall, 2),
        "videos_per_min": round(60 * n / wall, 1),
        "steady_videos_per_min": round(60 / steady, 1),
        "workers": len(by_worker),
        "render_s_median": round(render, 3),
        "gap_between_videos_s_median": round(statistics.median(gaps), 4) if gaps else None,
        "delivery_s_median": round(statistics.median(delays), 4),
    }


def plain(engine_dir, n: int, req: dict, outdir: Path) -> dict:
    from t2vrt import Pipeline

    pipe = Pipeline.load(engine_dir)
    pipe("warm-up", seed=0, progress=False, **req)
    t0 = time.perf_counter()
    for i in range(n):
        pipe(f"a test video number {i}", seed=i, progress=False, **req).save(outdir / f"{i}.mp4")
    per = (time.perf_counter() - t0) / n
    return {"per_video_s": round(per, 3), "videos_per_min": round(60 / per, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("engines")
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    req = {"num_frames": a.frames, "height": a.size, "width": a.size, "num_inference_steps": a.steps}
    out: dict = {"request": req, "videos": a.videos, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="t2vrt-bench-") as tmp:
        tmp = Path(tmp)
        prompts = prompts_file(tmp, a.videos, req)
        (tmp / "plain").mkdir()
        out["plain"] = plain(a.engines, a.videos, req, tmp / "plain")
        from t2vrt.serve.batch import run_local

        out["local_batch"] = timed_batch(run_local, a.engines, prompts, tmp / "local")
        import ray

        from t2vrt.serve.ray_batch import RayOptions, run_ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        out["ray_init_s"] = round(time.perf_counter() - t0, 2)
        for w in a.workers:
            def run(e, lines, o, on_record, w=w):
                return run_ray(e, lines, o, opts=RayOptions(workers=w), on_record=on_record)

            out[f"ray_{w}_workers"] = timed_batch(run, a.engines, prompts, tmp / f"ray{w}")
            shutil.rmtree(tmp / f"ray{w}")
        ray.shutdown()
    print(json.dumps(out, indent=2))
    if a.json:
        write_json(out, a.json)


if __name__ == "__main__":
    main()
