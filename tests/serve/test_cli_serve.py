"""`t2vrt serve` as a process: flags give the request defaults, SIGTERM lets the running job finish and exits 0."""

import signal
import socket
import subprocess
import sys
import time

from tests.serve.client import call, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_process_finishes_the_running_job_on_sigterm(tiny_engines, tmp_path):
    port, out = free_port(), tmp_path / "videos"
    cmd = [sys.executable, "-m", "t2vrt.cli", "serve", str(tiny_engines), "--port", str(port), "-o", str(out),
           "--frames", "8", "--height", "32", "--width", "32", "--steps", "30", "--grace", "120"]
    log = tmp_path / "serve.log"  # a file, not a pipe nobody reads: a full pipe would block the server's writes
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and proc.poll() is None:
            try:
                if call(base, "GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        status, job, _ = call(base, "POST", "/v1/videos", {"prompt": "a slow one"})
        assert status == 202
        wait_for(base, job["id"], ("running", "done"), timeout=30)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=180)  # generous: a loaded machine renders slowly
        except subprocess.TimeoutExpired:
            code = "still running after 180 s"
        assert code == 0, f"t2vrt serve after SIGTERM: {code}; its log ends:\n{log.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [p.name for p in out.iterdir()] == [f"{job['id']}.mp4"]  # finished within the grace, nothing partial
