"""`t2vrt serve` in one process: the FastAPI app on uvicorn, one model load, one worker thread, jobs in SQLite in
the output folder.

Request limits are uvicorn's settings (connections and requests at once, the idle keep-alive timeout, the largest
request head) plus the app's body caps (app.Limits). The first SIGINT / SIGTERM shuts down gracefully (no new jobs,
queued ones cancelled, the running one given ``grace_s``); a second one stops at once (the running job cancelled at
its next step, nothing partial left).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from t2vrt.errors import InputError
from t2vrt.serve.api import SERVE_DEFAULTS
from t2vrt.serve.app import Limits, create_app
from t2vrt.serve.jobs import JobStore, Worker
from t2vrt.serve.request import RequestChecker, VideoRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """uvicorn's own settings (on its h11 protocol, whose head-size limit is one of them)."""

    max_connections: int = 64  # limit_concurrency: connections and requests at once; more get 503
    keep_alive_s: float = 5  # timeout_keep_alive: an idle connection is closed after this (a new one too, below)
    max_head: int = 16 * 1024  # h11_max_incomplete_event_size: a larger request line + headers gets 400


def served_model(engine_dir: str | Path, name: str | None = None, defaults: VideoRequest = SERVE_DEFAULTS,
                 fps: float = 8.0, keep_s: float = 24 * 3600.0):
    """The Served description of an engine directory; its model name defaults to the directory's name."""
    from t2vrt.serve.api import Served

    check = RequestChecker(engine_dir)
    check.root = "the served model"  # what a client's error names, instead of a server path
    return Served(name or Path(engine_dir).resolve().name, check, defaults, fps, keep_s)


def wait_for_signal(done: threading.Event) -> None:
    """Block until ``done`` is set by a signal handler, waking every half second.

    A process-directed SIGTERM can be delivered to any thread that does not block it, ONNX Runtime's and torch's
    worker threads included; only the main thread runs Python's handlers, and one blocked in an untimed wait is not
    woken when the signal lands elsewhere. Seen once as a `t2vrt serve` that ignored SIGTERM for 180 s."""
    while not done.wait(0.5):
        pass


def h11_with_idle_timeout():
    """uvicorn's h11 protocol, its keep-alive timeout started on a new connection too: uvicorn starts it only after
    a first response, so a socket that never sends anything was held for ever, and enough of them would fill
    limit_concurrency (every later request a 503)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11WithIdleTimeout(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                self.timeout_keep_alive_handler)

    return H11WithIdleTimeout


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: a port in use fails in a second."""
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host") from None
    sock.setblocking(False)
    return sock


class Service:
    """The standalone service: uvicorn in a thread, one worker thread, one JobStore, one Pipeline."""

    def __init__(self, engine_dir: str | Path, outdir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                 max_queued: int = 16, fps: float = 8.0, options=None, precision: str | None = None,
                 defaults: VideoRequest = SERVE_DEFAULTS, keep_hours: float = 24.0, model_name: str | None = None,
                 limits: Limits | None = None, server_limits: ServerLimits | None = None):
        import uvicorn

        from t2vrt.serve.batch import Renderer, check_outdir

        check_outdir(Path(outdir))
        served = served_model(engine_dir, model_name, defaults, fps, keep_hours * 3600)
        self.sock = listen(host, port)
        self.store = JobStore(outdir, max_queued, keep_hours * 3600)
        self.app = create_app(self.store, served, outdir, limits or Limits())
        server_limits = server_limits or ServerLimits()
        config = uvicorn.Config(self.app, http=h11_with_idle_timeout(), log_config=None, access_log=False,
                                lifespan="off", limit_concurrency=server_limits.max_connections,
                                timeout_keep_alive=server_limits.keep_alive_s,
                                h11_max_incomplete_event_size=server_limits.max_head, timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.worker = Worker(self.store, Renderer(engine_dir, outdir, fps, options, precision))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="t2vrt-http",
                                       daemon=True)

    def start(self) -> Service:
        self.worker.start()
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < end:
            time.sleep(0.02)
        log.info("serving videos at %s/v1/videos (the page at %s/)", self.url, self.url)
        return self

    def stop(self, grace_s: float = 30.0, hurry: threading.Event | None = None) -> None:
        """Stop taking jobs, cancel queued ones, let the running one finish within ``grace_s`` (or until ``hurry``
        is set), then cancel it; then stop the HTTP server."""
        self.store.close()
        self.worker.stop(grace_s, hurry)
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.store.release()

    def serve_until_signal(self, grace_s: float = 30.0) -> None:
        done, hurry = threading.Event(), threading.Event()

        def on_signal(*_):
            if done.is_set():
                hurry.set()  # the second signal: stop at once
            done.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        self.start()
        wait_for_signal(done)
        log.info("shutting down: %g s for the running job (a second Ctrl-C / SIGTERM stops it at once)", grace_s)
        self.stop(grace_s, hurry)
