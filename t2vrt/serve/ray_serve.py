"""`t2vrt serve --ray`: the same job API as replicas of a Ray Serve deployment.

Each replica loads one Pipeline and runs one worker thread. The job table is one ``JobStore`` inside a Ray actor
(the board), shared by every replica: any replica accepts a job, the first idle one renders it, and any replica
answers status, download and cancel for it. Videos go to OUTDIR (on a multi-node cluster, a path every node
mounts). Imports Ray: only with the ``ray`` extra.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import asdict
from pathlib import Path

import ray
from ray import serve

from t2vrt.serve.api import VideoAPI
from t2vrt.serve.batch import Renderer
from t2vrt.serve.jobs import JobStore, Worker
from t2vrt.serve.request import RequestChecker, VideoRequest

log = logging.getLogger(__name__)
APP = "t2vrt"


class JobBoard:
    """The shared JobStore, as a threaded Ray actor (a worker blocked in take() must not block a status call)."""

    def __init__(self, max_queued: int):
        self.store = JobStore(max_queued)

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
    """One replica: one model load, one worker thread, the job API over the shared board."""

    def __init__(self, engine_dir: str, outdir: str, board, fps: float, options, precision: str | None,
                 defaults: dict, grace_s: float):
        self.store, self.grace_s = RemoteStore(board), grace_s
        renderer = Renderer(engine_dir, outdir, fps, options, precision)
        self.worker = Worker(self.store, renderer, name=f"{socket.gethostname()}:{os.getpid()}")
        self.worker.start()
        self.api = VideoAPI(self.store, RequestChecker(engine_dir), outdir, VideoRequest(**defaults))

    async def __call__(self, request):
        from starlette.responses import Response

        body = await request.body()
        reply = await asyncio.to_thread(self.api.handle, request.method, request.url.path, body)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    def __del__(self):
        """Ray Serve calls this when the replica stops: its running job gets ``grace_s`` to finish, then is
        cancelled."""
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop(self.grace_s)


def start(engine_dir: str | Path, outdir: str | Path, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
          gpus_per_replica: float = 0.0, cpus_per_replica: float = 1.0, max_queued: int = 16, fps: float = 8.0,
          options=None, precision: str | None = None, defaults: VideoRequest = VideoRequest(),
          grace_s: float = 30.0):
    """Deploy the service on the connected Ray cluster; returns the board (close it, then ``stop``)."""
    from t2vrt.serve.batch import check_outdir

    check_outdir(Path(outdir))
    RequestChecker(engine_dir)  # a bad engine directory fails here, once, not in every replica
    board = ray.remote(JobBoard).options(max_concurrency=64, num_cpus=0).remote(max_queued)
    deployment = serve.deployment(VideoReplica, name="videos").options(
        num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        graceful_shutdown_timeout_s=grace_s + 10, max_ongoing_requests=32,
    )
    paths = str(Path(engine_dir).resolve()), str(Path(outdir).resolve())  # replicas do not share our working directory
    app = deployment.bind(*paths, board, fps, options, precision, asdict(defaults), grace_s)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=APP, route_prefix="/")
    log.info("serving videos at http://%s:%d/v1/videos on %d replicas", host, port, replicas)
    return board


def stop(board, grace_s: float = 30.0) -> None:
    """Graceful shutdown: no new jobs, queued ones cancelled, each replica's running job finished or cancelled."""
    ray.get(board.call.remote("close"))
    serve.delete(APP)
    ray.kill(board)
