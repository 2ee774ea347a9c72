"""`t2vrt serve --ray`: the same FastAPI app (app.py) as replicas of a Ray Serve deployment.

Each replica loads one Pipeline and runs one worker thread. The job table is one ``JobStore`` inside a Ray actor
(the board), shared by every replica: any replica accepts a job, the first idle one renders it, and any replica
answers status, download and cancel for it. Videos go to OUTDIR (on a multi-node cluster, a path every node
mounts). Imports Ray: only with the ``ray`` extra.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict
from pathlib import Path

import ray
from ray import serve

from t2vrt.serve.api import SERVE_DEFAULTS
from t2vrt.serve.batch import Renderer
from t2vrt.serve.jobs import JobStore, Worker
from t2vrt.serve.ray_batch import worker_load_options
from t2vrt.serve.request import VideoRequest

log = logging.getLogger(__name__)
APP = "t2vrt"


class JobBoard:
    """The shared JobStore (SQLite in OUTDIR), as a threaded Ray actor (a worker blocked in take() must not block
    a status call)."""

    def __init__(self, outdir: str, max_queued: int, keep_s: float):
        self.store = JobStore(outdir, max_queued, keep_s)

    def call(self, method: str, *args, **kwargs):
        return getattr(self.store, method)(*args, **kwargs)


class RemoteStore:
    """JobStore's interface over the board actor; QueueFull and Closed come back as themselves (Ray re-raises
    an actor's exception as an instance of its class)."""

    def __init__(self, board):
        self.board = board

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: ray.get(self.board.call.remote(name, *args, **kwargs))


class VideoReplica:
    """One replica: one model load, one worker thread, the FastAPI app (app.py) over the shared board, through Ray
    Serve's FastAPI ingress (the app is built in the replica, after this constructor)."""

    def __init__(self, engine_dir: str, outdir: str, board, fps: float, options, precision: str | None,
                 defaults: dict, grace_s: float, keep_s: float, model_name: str | None):
        from t2vrt.serve.service import served_model

        self.store, self.grace_s, self.outdir = RemoteStore(board), grace_s, outdir
        self.served = served_model(engine_dir, model_name, VideoRequest(**defaults), fps, keep_s)
        renderer = Renderer(engine_dir, outdir, fps, options, precision)
        self.worker = Worker(self.store, renderer, name=f"{socket.gethostname()}:{os.getpid()}")
        self.worker.start()

    def __serve_build_asgi_app__(self):
        from t2vrt.serve.app import create_app

        return create_app(self.store, self.served, self.outdir)

    def __del__(self):
        """Ray Serve calls this when the replica stops: its running job gets ``grace_s`` to finish, then is
        cancelled."""
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop(self.grace_s)


def start(engine_dir: str | Path, outdir: str | Path, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
          gpus_per_replica: float = 0.0, cpus_per_replica: float = 1.0, max_queued: int = 16, fps: float = 8.0,
          options=None, precision: str | None = None, defaults: VideoRequest = SERVE_DEFAULTS,
          grace_s: float = 30.0, keep_hours: float = 24.0, model_name: str | None = None):
    """Deploy the service on the connected Ray cluster; returns the board (close it, then ``stop``)."""
    from t2vrt.serve.batch import check_outdir

    check_outdir(Path(outdir))
    from t2vrt.serve.service import served_model

    served_model(engine_dir)  # a bad engine directory fails here, once, not in every replica
    paths = str(Path(engine_dir).resolve()), str(Path(outdir).resolve())  # replicas do not share our working directory
    board = ray.remote(JobBoard).options(max_concurrency=64, num_cpus=0).remote(paths[1], max_queued, keep_hours * 3600)
    deployment = serve.deployment(serve.ingress()(VideoReplica), name="videos").options(
        num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        graceful_shutdown_timeout_s=grace_s + 10, max_ongoing_requests=32,
    )
    options = worker_load_options(ray, options, replicas, gpus_per_replica, precision)
    app = deployment.bind(*paths, board, fps, options, None, asdict(defaults), grace_s, keep_hours * 3600, model_name)
    serve.start(http_options={"host": host, "port": port, "keep_alive_timeout_s": 5})  # as service.ServerLimits
    serve.run(app, name=APP, route_prefix="/")
    log.info("serving videos at http://%s:%d/v1/videos on %d replicas", host, port, replicas)
    return board


def hurry(board) -> None:
    """After a second signal: the running jobs are cancelled at their next step (the log names each)."""
    for job_id in ray.get(board.call.remote("close", cancel_running=True)):
        log.warning("job %s: cancelling (a second signal)", job_id)


def stop(board, grace_s: float = 30.0) -> None:
    """Graceful shutdown: no new jobs, queued ones cancelled, each replica's running job finished or cancelled."""
    ray.get(board.call.remote("close"))
    serve.delete(APP)
    ray.get(board.call.remote("release"))  # the job table closed, the output folder's lock let go
    ray.kill(board)
