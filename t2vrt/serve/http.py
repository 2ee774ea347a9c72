"""`t2vrt serve` in one process: the job API on the standard library's ThreadingHTTPServer, one model load,
one worker thread. SIGINT / SIGTERM shut it down gracefully (see jobs.shutdown)."""

from __future__ import annotations

import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from t2vrt.errors import InputError
from t2vrt.serve.api import MAX_BODY, VideoAPI, error
from t2vrt.serve.jobs import JobStore, Worker, shutdown
from t2vrt.serve.request import RequestChecker, VideoRequest

log = logging.getLogger(__name__)


def make_handler(api: VideoAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            reply = error(413, f"request body over {MAX_BODY} bytes") if n > MAX_BODY else \
                api.handle(self.command, self.path.split("?", 1)[0], self.rfile.read(n) if n else b"")
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, fmt, *args) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


def wait_for_signal(done: threading.Event) -> None:
    """Block until ``done`` is set by a signal handler, waking every half second.

    A process-directed SIGTERM can be delivered to any thread that does not block it, ONNX Runtime's and torch's
    worker threads included; only the main thread runs Python's handlers, and one blocked in an untimed wait is not
    woken when the signal lands elsewhere. Seen once as a `t2vrt serve` that ignored SIGTERM for 180 s."""
    while not done.wait(0.5):
        pass


class Service:
    """The standalone service: HTTP server thread + worker thread over one JobStore and one Pipeline."""

    def __init__(self, engine_dir: str | Path, outdir: str | Path, host: str = "127.0.0.1", port: int = 8000,
                 max_queued: int = 16, fps: float = 8.0, options=None, precision: str | None = None,
                 defaults: VideoRequest = VideoRequest()):
        from t2vrt.serve.batch import Renderer, check_outdir

        check_outdir(Path(outdir))
        self.store = JobStore(max_queued)
        self.api = VideoAPI(self.store, RequestChecker(engine_dir), outdir, defaults)
        try:  # the address before the model: a port in use fails in a second, not after a load
            self.server = ThreadingHTTPServer((host, port), make_handler(self.api))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or "
                             "--host") from None
        self.worker = Worker(self.store, Renderer(engine_dir, outdir, fps, options, precision))
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def start(self) -> Service:
        self.worker.start()
        threading.Thread(target=self.server.serve_forever, name="t2vrt-http", daemon=True).start()
        log.info("serving videos at %s/v1/videos", self.url)
        return self

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop taking requests, cancel queued jobs, let the running one finish within ``grace_s``."""
        shutdown(self.store, [self.worker], grace_s)
        self.server.shutdown()
        self.server.server_close()

    def serve_until_signal(self, grace_s: float = 30.0) -> None:
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        wait_for_signal(done)
        log.info("shutting down: %d s for running jobs", grace_s)
        self.stop(grace_s)
