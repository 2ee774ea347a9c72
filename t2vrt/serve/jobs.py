"""Video jobs: a bounded, thread-safe job table, and the worker thread that renders jobs on one loaded Pipeline.

The same ``JobStore`` serves one process (standalone `t2vrt serve`) and, wrapped in one Ray actor, every replica
of a Ray Serve deployment, so any replica answers for any job. Methods take and return plain data.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from pathlib import Path

from t2vrt.errors import T2VError
from t2vrt.serve.request import VideoRequest

log = logging.getLogger(__name__)
FINAL = ("done", "failed", "cancelled")


class QueueFull(Exception):
    """The queue holds its maximum of waiting jobs (HTTP 429)."""


class Closed(Exception):
    """The service is shutting down and takes no new jobs (HTTP 503)."""


class JobStore:
    """Jobs by id; at most ``max_queued`` wait at once; the last ``keep`` finished jobs are remembered."""

    def __init__(self, max_queued: int = 16, keep: int = 1000):
        self.max_queued, self.keep = max_queued, keep
        self.jobs: OrderedDict[str, dict] = OrderedDict()
        self.queue: deque[str] = deque()
        self.closed = False
        self.cond = threading.Condition()

    def submit(self, request: dict) -> dict:
        with self.cond:
            if self.closed:
                raise Closed("the service is shutting down; retry on another instance")
            if len(self.queue) >= self.max_queued:
                raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); retry later")
            job = {"id": uuid.uuid4().hex, "status": "queued", "progress": 0.0, "request": request,
                   "created": time.time(), "started": None, "finished": None, "seconds": None, "error": None,
                   "cancel": False}
            self.jobs[job["id"]] = job
            self.queue.append(job["id"])
            self._forget_old()
            self.cond.notify()
            return dict(job)

    def take(self, worker: str, timeout: float = 0.5) -> dict | None:
        """The oldest queued job, now running on ``worker``; None after ``timeout`` s or when closed."""
        with self.cond:
            if not self.queue:
                self.cond.wait(timeout)
            if not self.queue or self.closed:
                return None
            job = self.jobs[self.queue.popleft()]
            job.update(status="running", started=time.time(), worker=worker)
            return dict(job)

    def progress(self, job_id: str, done: int, total: int) -> bool:
        """Record progress; False when the job was cancelled (the worker then stops it)."""
        with self.cond:
            job = self.jobs[job_id]
            job["progress"] = round(min(1.0, done / max(total, 1)), 4)
            return not job["cancel"]

    def finish(self, job_id: str, status: str, **fields) -> None:
        with self.cond:
            job = self.jobs[job_id]
            job.update(fields, status=status, finished=time.time())
            if status == "done":
                job["progress"] = 1.0
            self.cond.notify_all()

    def get(self, job_id: str) -> dict | None:
        with self.cond:
            job = self.jobs.get(job_id)
            return None if job is None else dict(job)

    def cancel(self, job_id: str) -> dict | None:
        """Queued: cancelled now. Running: flagged, stopped at its next step. Finished: forgotten (the caller
        removes its video). The job with ``action`` (what was done); None for an unknown id."""
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            if job["status"] == "queued":
                self.queue.remove(job_id)
                job.update(status="cancelled", finished=time.time(), error="cancelled")
                return dict(job, action="cancelled")
            if job["status"] == "running":
                job["cancel"] = True
                return dict(job, action="cancelling")
            del self.jobs[job_id]
            return dict(job, action="forgotten")

    def close(self) -> list[str]:
        """Take no new jobs and cancel the queued ones; returns the ids still running."""
        with self.cond:
            self.closed = True
            while self.queue:
                self.jobs[self.queue.popleft()].update(status="cancelled", finished=time.time(),
                                                       error="the service shut down")
            self.cond.notify_all()
            return [j["id"] for j in self.jobs.values() if j["status"] == "running"]

    def counts(self) -> dict[str, int]:
        with self.cond:
            out: dict[str, int] = {}
            for j in self.jobs.values():
                out[j["status"]] = out.get(j["status"], 0) + 1
            return out | {"max_queued": self.max_queued}

    def _forget_old(self) -> None:
        finished = [i for i, j in self.jobs.items() if j["status"] in FINAL]
        for i in finished[: max(0, len(finished) - self.keep)]:
            del self.jobs[i]


def video_path(outdir: Path, job_id: str) -> Path:
    return Path(outdir) / f"{job_id}.mp4"


class Worker(threading.Thread):
    """Renders jobs from ``store`` one at a time on ``renderer`` (a batch.Renderer: one model load)."""

    def __init__(self, store, renderer, name: str = "worker"):
        super().__init__(name=f"t2vrt-{name}", daemon=True)
        self.store, self.renderer, self.label = store, renderer, name
        self.stopping = threading.Event()
        self.current: str | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            job = self.store.take(self.label)
            if job is not None:
                self.run_job(job)

    def run_job(self, job: dict) -> None:
        from t2vrt.serve.render import Cancelled, render

        def on_step(done: int, total: int) -> None:
            if not self.store.progress(job["id"], done, total):
                raise Cancelled

        r, self.current = self.renderer, job["id"]
        try:
            out = render(r.pipe, r.clock, VideoRequest(**job["request"]), video_path(r.outdir, job["id"]), r.fps,
                         on_step)
            self.store.finish(job["id"], "done", seconds=out["seconds"], seed=out["seed"])
        except Cancelled:
            self.store.finish(job["id"], "cancelled", error="cancelled")
        except T2VError as e:
            self.store.finish(job["id"], "failed", error=str(e))
        except Exception as e:  # a backend failure: one line for the client, the traceback in the log
            log.exception("job %s failed", job["id"])
            self.store.finish(job["id"], "failed",
                              error=f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}")
        finally:
            self.current = None

    def stop(self, grace_s: float = 30.0) -> None:
        """Take no more jobs; give the running one ``grace_s`` seconds to finish, then cancel it at its next step."""
        self.stopping.set()
        self.join(grace_s + 1.0)  # + one take() timeout
        if self.is_alive() and self.current is not None:
            self.store.cancel(self.current)
        self.join(30.0)


def shutdown(store, workers: list[Worker], grace_s: float) -> None:
    """Graceful shutdown: no new jobs, queued ones cancelled, running ones given ``grace_s`` seconds to finish and
    then cancelled at their next step. Videos are written whole or not at all, so no partial file remains."""
    store.close()
    for w in workers:
        w.stop(grace_s)
