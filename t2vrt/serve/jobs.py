"""Video jobs: the job table in SQLite inside the output folder, and the worker thread that renders jobs on one
loaded Pipeline.

The table outlives the process: a restart keeps finished jobs and their files until ``expires_at``; jobs that were
queued or running when the process died are marked failed ("interrupted") and their partial files removed. The
same ``JobStore`` serves one process (standalone `t2vrt serve`) and, inside one Ray actor, every replica of a Ray
Serve deployment, so any replica answers for any job. Methods take and return plain data; statuses are the
protocol's (queued, in_progress, completed, failed); a cancelled job is failed with error code "cancelled".
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from t2vrt.errors import T2VError
from t2vrt.serve.render import Cancelled, render_job, thumbnail_path, video_path

log = logging.getLogger(__name__)
FINAL = ("completed", "failed")
DB = "jobs.sqlite"
COLUMNS = ("id", "status", "progress", "request", "created_at", "started_at", "completed_at", "expires_at",
           "seconds", "seed", "error_code", "error", "cancel", "worker")
SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, status TEXT NOT NULL, progress INTEGER NOT NULL,
    request TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, completed_at REAL, expires_at REAL,
    seconds TEXT, seed INTEGER, error_code TEXT, error TEXT, cancel INTEGER NOT NULL DEFAULT 0, worker TEXT)"""


class QueueFull(Exception):
    """The queue holds its maximum of waiting jobs (HTTP 429)."""


class Closed(Exception):
    """The service is shutting down and takes no new jobs (HTTP 503)."""


def job_files(outdir: Path, job_id: str) -> list[Path]:
    """Every file a job may have left: its video, thumbnail, uploaded input, and partial writes of them."""
    outdir = Path(outdir)
    return [video_path(outdir, job_id), thumbnail_path(outdir, job_id), *outdir.glob(f".{job_id}.*"),
            *outdir.glob(f".{job_id}-input*")]


def remove_files(outdir: Path, job_id: str) -> None:
    for p in job_files(outdir, job_id):
        p.unlink(missing_ok=True)


class JobStore:
    """Jobs by id in ``outdir``/jobs.sqlite; at most ``max_queued`` wait at once; finished jobs are kept
    ``keep_s`` seconds. One connection, guarded by one condition (the worker's take() waits on it)."""

    def __init__(self, outdir: str | Path, max_queued: int = 16, keep_s: float = 24 * 3600.0):
        self.outdir, self.max_queued, self.keep_s = Path(outdir), max_queued, keep_s
        self.closed, self.expired_at = False, 0.0
        self.cond = threading.Condition()
        self.lock = _hold_folder_lock(self.outdir)
        self.db = sqlite3.connect(self.outdir / DB, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.interrupted = self._recover()
        self.expire()

    def _recover(self) -> list[str]:
        """Jobs queued or running when the last process died: failed ("interrupted"), partial files removed."""
        with self.cond:
            ids = [r["id"] for r in self.db.execute("SELECT id FROM jobs WHERE status IN ('queued', 'in_progress')")]
            now = time.time()
            for i in ids:
                self.db.execute("UPDATE jobs SET status='failed', error_code='interrupted', completed_at=?, "
                                "expires_at=?, error=? WHERE id=?",
                                (now, now + self.keep_s, "the service stopped before this job finished", i))
                remove_files(self.outdir, i)
                log.warning("job %s: failed (interrupted: the service stopped while it was queued or running)", i)
            return ids

    def release(self) -> None:
        """Close the table and let another process open this output folder."""
        with self.cond:
            self.db.close()
            self.lock.__exit__(None, None, None)

    def expire(self) -> list[str]:
        """Forget finished jobs past their ``expires_at`` and remove their files (at start-up, then every minute
        from take())."""
        with self.cond:
            self.expired_at = time.monotonic()
            ids = [r["id"] for r in self.db.execute("SELECT id FROM jobs WHERE expires_at < ?", (time.time(),))]
            for i in ids:
                self.db.execute("DELETE FROM jobs WHERE id=?", (i,))
                remove_files(self.outdir, i)
                log.info("job %s: expired, its files removed", i)
            return ids

    def submit(self, request: dict) -> dict:
        with self.cond:
            if self.closed:
                raise Closed("the service is shutting down; retry on another instance")
            waiting = self.db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
            if waiting >= self.max_queued:
                raise QueueFull(f"the queue is full ({self.max_queued} jobs waiting); retry later")
            job_id = request.pop("id", None) or new_id()
            self.db.execute("INSERT INTO jobs (id, status, progress, request, created_at) "
                            "VALUES (?, 'queued', 0, ?, ?)", (job_id, json.dumps(request), time.time()))
            self.cond.notify_all()
            return self._get(job_id)

    def take(self, worker: str, timeout: float = 0.5) -> dict | None:
        """The oldest queued job, now in_progress on ``worker``; None after ``timeout`` s or when closed."""
        with self.cond:
            if time.monotonic() - self.expired_at > 60:
                self.expire()
            row = self._oldest_queued()
            if row is None and not self.closed:
                self.cond.wait(timeout)
                row = self._oldest_queued()
            if row is None or self.closed:
                return None
            self.db.execute("UPDATE jobs SET status='in_progress', started_at=?, worker=? WHERE id=?",
                            (time.time(), worker, row["id"]))
            return self._get(row["id"])

    def _oldest_queued(self):
        return self.db.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY seq LIMIT 1").fetchone()

    def progress(self, job_id: str, done: int, total: int) -> bool:
        """Record progress (integer percent); False when the job was cancelled (the worker then stops it)."""
        with self.cond:
            percent = min(99, int(100 * done / max(total, 1)))  # 100 only once the video is written
            self.db.execute("UPDATE jobs SET progress=? WHERE id=?", (percent, job_id))
            row = self.db.execute("SELECT cancel FROM jobs WHERE id=?", (job_id,)).fetchone()
            return row is not None and not row["cancel"]

    def finish(self, job_id: str, status: str, error_code: str | None = None, error: str | None = None,
               seconds: dict | None = None, seed: int | None = None) -> None:
        with self.cond:
            now = time.time()
            self.db.execute(
                "UPDATE jobs SET status=?, completed_at=?, expires_at=?, error_code=?, error=?, seconds=?, "
                "seed=COALESCE(?, seed), progress=CASE WHEN ?='completed' THEN 100 ELSE progress END WHERE id=?",
                (status, now, now + self.keep_s, error_code, error, json.dumps(seconds) if seconds else None, seed,
                 status, job_id))
            self.cond.notify_all()

    def get(self, job_id: str) -> dict | None:
        with self.cond:
            return self._get(job_id)

    def _get(self, job_id: str) -> dict | None:
        row = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, after: str | None = None, limit: int = 20, order: str = "desc") -> tuple[list[dict], bool]:
        """A page of jobs by creation order (``order`` "asc" or "desc") after the job ``after``; (jobs, has_more)."""
        op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        with self.cond:
            where, args = "", []
            if after:
                seq = self.db.execute("SELECT seq FROM jobs WHERE id=?", (after,)).fetchone()
                where, args = f"WHERE seq {op} ?", [seq["seq"] if seq else (0 if order == "asc" else 2**62)]
            rows = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs {where} ORDER BY seq {direction} LIMIT ?",
                                   (*args, limit + 1)).fetchall()
            return [_job(r) for r in rows[:limit]], len(rows) > limit

    def cancel(self, job_id: str) -> dict | None:
        """Queued: cancelled now. Running: flagged, stopped at its next step. Finished: left as it is. The job
        with ``action`` (what was done: cancelled, cancelling, finished); None for an unknown id."""
        with self.cond:
            job = self._get(job_id)
            if job is None:
                return None
            if job["status"] == "queued":
                now = time.time()
                self.db.execute("UPDATE jobs SET status='failed', error_code='cancelled', error='cancelled', "
                                "completed_at=?, expires_at=? WHERE id=?", (now, now + self.keep_s, job_id))
                self.cond.notify_all()
                return self._get(job_id) | {"action": "cancelled"}
            if job["status"] == "in_progress":
                self.db.execute("UPDATE jobs SET cancel=1 WHERE id=?", (job_id,))
                return job | {"action": "cancelling"}
            return job | {"action": "finished"}

    def wait_final(self, job_id: str, timeout: float) -> dict | None:
        """The job once it is completed or failed, or as it is after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        with self.cond:
            job = self._get(job_id)
            while job is not None and job["status"] not in FINAL and time.monotonic() < end:
                self.cond.wait(min(0.2, max(0.0, end - time.monotonic())))
                job = self._get(job_id)
            return job

    def delete(self, job_id: str) -> bool:
        """Forget a finished job and remove its files; False if it is unknown or not finished."""
        with self.cond:
            job = self._get(job_id)
            if job is None or job["status"] not in FINAL:
                return False
            self.db.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            remove_files(self.outdir, job_id)
            return True

    def close(self, cancel_running: bool = False) -> list[str]:
        """Take no new jobs and cancel the queued ones (and, with ``cancel_running``, flag the running ones);
        returns the ids still running. Every cancelled job is named in the log."""
        with self.cond:
            self.closed = True
            for r in self.db.execute("SELECT id FROM jobs WHERE status='queued'").fetchall():
                self.cancel(r["id"])
                log.warning("job %s: cancelled (the service is shutting down)", r["id"])
            running = [r["id"] for r in self.db.execute("SELECT id FROM jobs WHERE status='in_progress'")]
            if cancel_running:
                for i in running:
                    self.db.execute("UPDATE jobs SET cancel=1 WHERE id=?", (i,))
            self.cond.notify_all()
            return running

    def counts(self) -> dict[str, int]:
        with self.cond:
            rows = self.db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
            return {r["status"]: r["n"] for r in rows} | {"max_queued": self.max_queued}


def _hold_folder_lock(outdir: Path):
    """The output folder's writer lock (t2vrt.locks), held until release(): one service (or batch) per folder; a
    second service would take the first's running jobs for interrupted ones. BusyError names the holder."""
    from t2vrt.locks import folder_lock

    lock = folder_lock(outdir, f"output folder {outdir}", {"kind": "serve"})
    lock.__enter__()
    return lock


def new_id() -> str:
    return f"video_{uuid.uuid4().hex}"


def _job(row) -> dict:
    job = {k: row[k] for k in COLUMNS}
    job["request"] = json.loads(job["request"])
    job["seconds"] = json.loads(job["seconds"]) if job["seconds"] else None
    job["cancel"] = bool(job["cancel"])
    return job


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
        def on_step(done: int, total: int) -> None:
            if not self.store.progress(job["id"], done, total):
                raise Cancelled

        self.current, t0 = job["id"], time.monotonic()
        log.info("job %s: started on %s", job["id"], self.label)
        try:
            out = render_job(self.renderer, job, on_step)
            self.store.finish(job["id"], "completed", seconds=out["seconds"], seed=out["seed"])
            late = self.store.get(job["id"])["cancel"]
            log.info("job %s: completed in %.1f s%s", job["id"], time.monotonic() - t0,
                     " (its cancel came too late: the video was already written)" if late else "")
        except Cancelled:
            self.store.finish(job["id"], "failed", error_code="cancelled", error="cancelled")
            log.warning("job %s: cancelled after %.1f s, nothing written", job["id"], time.monotonic() - t0)
        except T2VError as e:
            self.store.finish(job["id"], "failed", error_code="invalid_request", error=str(e))
            log.warning("job %s: failed: %s", job["id"], e)
        except Exception as e:  # a backend failure: one line for the client, the traceback in the log
            log.exception("job %s: failed", job["id"])
            first = (str(e).splitlines() or [""])[0][:300]
            self.store.finish(job["id"], "failed", error_code="internal_error", error=f"{type(e).__name__}: {first}")
        finally:
            self.current = None

    def stop(self, grace_s: float = 30.0, hurry: threading.Event | None = None) -> None:
        """Take no more jobs; give the running one ``grace_s`` seconds to finish (less once ``hurry`` is set), then
        cancel it at its next step."""
        self.stopping.set()
        end = time.monotonic() + grace_s + 1.0  # + one take() timeout
        while self.is_alive() and time.monotonic() < end and not (hurry is not None and hurry.is_set()):
            self.join(0.2)
        current = self.current
        if self.is_alive() and current is not None:
            why = "a second signal" if hurry is not None and hurry.is_set() else f"the grace of {grace_s:g} s ran out"
            log.warning("job %s: cancelling (%s)", current, why)
            self.store.cancel(current)
        self.join(30.0)


def shutdown(store, workers: list[Worker], grace_s: float) -> None:
    """Graceful shutdown: no new jobs, queued ones cancelled, running ones given ``grace_s`` seconds to finish and
    then cancelled at their next step. Videos are written whole or not at all, so no partial file remains."""
    store.close()
    for w in workers:
        w.stop(grace_s)
