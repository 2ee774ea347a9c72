"""`t2vrt batch --ray`: the same batch on a Ray cluster with Ray Data.

One actor per worker holds one Pipeline, loaded once (``map_batches`` with a callable class, one task per video).
A worker that dies (killed, out of memory, node lost) is restarted and its task retried up to ``retries`` times;
after that the line is reported "failed" in results.jsonl and the rest go on. Videos are written to OUTDIR by the
workers as they finish (on a multi-node cluster OUTDIR must be a path every node mounts), and results.jsonl is
updated by the driver as each record arrives. Imports Ray: only with the ``ray`` extra.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from t2vrt.engines.backends import LoadOptions
from t2vrt.errors import InputError
from t2vrt.jsonio import loads
from t2vrt.serve.batch import Line, Renderer, Results, line_records, to_render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local cluster on this machine
    workers: int | None = None  # None: one per GPU; 1 without GPUs (ONNX Runtime already uses every core)
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs, else 0
    retries: int = 2  # retries of a video whose worker died (the worker itself is always restarted)


def worker_load_options(ray, options, workers: int, gpus: float, precision: str | None = None) -> LoadOptions:
    """How each of ``workers`` CPU workers (or Serve replicas) loads its pipeline: with no thread count given
    (``options.threads``, $T2VRT_THREADS), its share of a node's cores, the workers spread evenly over the nodes
    (one worker on a 2-core node: 2 threads, as ONNX Runtime's default; two: 1 each). Each would otherwise take a
    thread per core and spin against the others (two workers on two cores rendered 1.7x the videos a minute with
    one thread each: benchmarks/RESULTS.md). GPU workers keep the backend's default."""
    from t2vrt.host import env_threads

    options = LoadOptions.of(options, precision=precision)
    if gpus or options.threads is not None or env_threads() is not None:
        return options
    cores = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0)]
    if not cores:
        return options
    per_node = -(-workers // len(cores))  # ceil
    return replace(options, threads=max(1, int(min(cores)) // per_node))


class RenderActor:
    """Ray Data's callable class: built once per actor, called with batches of one task (a JSON string)."""

    def __init__(self, engine_dir: str, outdir: str, fps: float, options, precision: str | None):
        self.render = Renderer(engine_dir, outdir, fps, options, precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [json.dumps(self.render(loads(str(task), "a task"))) for task in batch["task"]]
        return {"record": np.array(records, dtype=object)}


def connect(address: str | None):
    """ray.init once: the cluster at ``address``, else a local one (an existing connection is reused)."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the ray extra: pip install 't2vrt[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def resources(ray, opts: RayOptions) -> tuple[int, float]:
    """(workers, GPUs per worker) from the options and what the cluster has; InputError when it cannot fit one."""
    if opts.retries < 0:
        raise InputError(f"--retries {opts.retries} must be >= 0 (the retries of a video whose worker died)")
    have = ray.cluster_resources()
    gpus, cpus = have.get("GPU", 0.0), have.get("CPU", 0.0)
    per = opts.gpus_per_worker if opts.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if per > gpus:
        raise InputError(f"--gpus-per-worker {per:g} but the cluster has {gpus:g} GPUs; give 0 to run on CPUs")
    fit = int(gpus // per) if per else int(cpus)
    workers = opts.workers or (max(1, fit) if per else 1)
    if opts.workers is not None and (opts.workers < 1 or opts.workers > max(1, fit)):
        raise InputError(f"--workers {opts.workers} but the cluster fits {fit} (GPUs {gpus:g}, CPUs {cpus:g}); give 1 "
                         f"to {max(1, fit)}")
    return workers, per


def run_ray(engine_dir: str | Path, lines: list[Line], outdir: str | Path, fps: float = 8.0, options=None,
            precision: str | None = None, opts: RayOptions = RayOptions(),
            on_record: Callable[[dict], None] | None = None) -> Results:
    """Render the lines to do on Ray; the records match run_local's (plus the worker that rendered each)."""
    from tqdm.auto import tqdm

    results = Results(Path(outdir))
    line_records(lines, results)
    todo = {item.key: item for item in to_render(lines)}
    if not todo:
        results.compact()
        return results
    ray = connect(opts.address)
    workers, gpus = resources(ray, opts)
    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = -1  # a line whose retries ran out is dropped here and reported below, not fatal
    ctx.enable_progress_bars = False
    tasks = [{"task": json.dumps(item.task())} for item in todo.values()]
    pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)  # a video goes to an idle worker
    with warnings.catch_warnings():  # max_restarts / max_task_retries have no named parameter in Ray 2.60
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ray.data.from_items(tasks, override_num_blocks=len(tasks)).map_batches(
            RenderActor, batch_size=1, batch_format="numpy", compute=pool, num_cpus=1, num_gpus=gpus,
            fn_constructor_kwargs=dict(engine_dir=_abs(engine_dir), outdir=_abs(outdir), fps=fps,
                                       options=worker_load_options(ray, options, workers, gpus, precision),
                                       precision=None),
            max_restarts=-1, max_task_retries=opts.retries,  # a dead worker always restarts; its video is retried
        )
    log.info("batch on Ray: %d videos, %d workers, %g GPUs each", len(todo), workers, gpus)
    error = None
    with tqdm(total=len(todo), desc="batch (ray)", unit="video") as bar:
        try:
            # Whole blocks (one video each) as they finish; no prefetch, which would hold each record back until
            # the next video is done.
            for batch in ds.iter_batches(batch_size=None, prefetch_batches=0, batch_format="numpy"):
                for text in batch["record"]:
                    record = loads(str(text), "a record")
                    todo.pop(record["key"], None)
                    results.add(record)
                    bar.update()
                    if on_record:
                        on_record(record)
        except Exception as e:  # the pipeline as a whole failed (e.g. no worker could load the engines)
            error = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    why = error or (f"its worker died while rendering it, {opts.retries + 1} time(s) (--retries {opts.retries}); "
                    "run the batch again to retry it")
    for item in todo.values():
        results.add({"key": item.key, "prompts": item.prompts, "line": item.line, "status": "failed",
                     "prompt": item.request.prompt, "output": item.output, "seed": item.request.seed, "error": why})
    results.compact()
    return results


def _abs(path: str | Path) -> str:
    """Workers do not share the driver's working directory: send absolute paths."""
    return str(Path(path).resolve())
