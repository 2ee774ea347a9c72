"""`t2vrt serve` as a process: jobs outlive it (a restart keeps a finished job and its video, a job running at a
crash is failed "interrupted" with no partial file), one SIGTERM lets the running job go on and takes no new job, a
second stops it at once, and the log names the job it cancelled."""

import signal
import subprocess
import sys
import time

import pytest

from t2vrt.serve.jobs import JobStore
from tests.serve.client import call, openai_client, wait_for, wait_until_up

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
SMALL = {"num_frames": 3, "num_inference_steps": 2}
SLOW = {"num_frames": 16, "size": "64x64", "num_inference_steps": 400}


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, engines, out, log, *flags):
        self.port, self.log = free_port(), log
        cmd = [sys.executable, "-m", "t2vrt.cli", "serve", str(engines), "--port", str(self.port), "-o", str(out),
               "--frames", "3", "--height", "32", "--width", "48", *flags]
        with open(log, "a") as sink:  # a file, not a pipe nobody reads: a full pipe would block the server's writes
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until_up(self.base, self.proc)

    def post(self, body):
        status, job, _ = call(self.base, "POST", "/v1/videos", body)
        assert status == 200, job
        return job["id"]

    def wait(self, timeout=120):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"still running after {timeout} s"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_jobs_outlive_the_process_and_signals_stop_it(tiny_engines, tmp_path):
    out, log = tmp_path / "videos", tmp_path / "serve.log"
    first = Server(tiny_engines, out, log)
    try:
        done = openai_client(first.base).videos.create_and_poll(prompt="kept", extra_body=SMALL, poll_interval_ms=50)
        assert done.status == "completed"
        interrupted = first.post({"prompt": "interrupted", **SLOW})
        wait_for(first.base, interrupted, ("in_progress",), timeout=30)
        partial = out / f".{interrupted}.partial-1-2.mp4"  # what a crash in the middle of the write leaves
        partial.write_bytes(b"half")
    finally:
        first.kill()  # a crash: no shutdown at all

    second = Server(tiny_engines, out, log, "--grace", "120")
    try:
        client = openai_client(second.base)
        assert client.videos.retrieve(done.id).status == "completed"  # kept across the restart
        assert len(client.videos.download_content(done.id).content) > 100
        failed = client.videos.retrieve(interrupted)
        assert (failed.status, failed.error.code) == ("failed", "interrupted") and not partial.exists()

        slow = second.post({"prompt": "slow", **SLOW, "num_inference_steps": 100})  # 1 % a step
        wait_for(second.base, slow, ("in_progress",), timeout=30)
        second.proc.send_signal(signal.SIGTERM)  # the first signal: the running job goes on (120 s of grace)...
        before, end, job = call(second.base, "GET", f"/v1/videos/{slow}")[1]["progress"], time.monotonic() + 20, {}
        while time.monotonic() < end and job.get("progress", -1) <= before:
            time.sleep(0.2)
            job = call(second.base, "GET", f"/v1/videos/{slow}")[1]
        assert job["status"] == "in_progress" and job["progress"] > before
        assert call(second.base, "POST", "/v1/videos", {"prompt": "late"})[0] == 503  # ...and no new job starts
        second.proc.send_signal(signal.SIGTERM)  # the second: at once
        assert second.wait(60) == 0, log.read_text()[-3000:]
    finally:
        second.kill()
    text = log.read_text()
    assert f"job {slow}: cancelling (a second signal)" in text and f"job {slow}: cancelled" in text
    store = JobStore(out)  # what the next start-up reads
    assert (store.get(slow)["status"], store.get(slow)["error_code"]) == ("failed", "cancelled")
    store.release()
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if not n.startswith("jobs.sqlite")] == [f"{done.id}.jpg", f"{done.id}.mp4"]


def test_bad_defaults_are_one_line_before_the_model_loads(tiny_engines, capsys):
    from t2vrt.cli import main

    assert main(["serve", str(tiny_engines), "--port", "0", "--frames", "99"]) == 2
    err = capsys.readouterr().err.strip()
    assert "num_frames=99" in err and len(err.splitlines()) == 1 and "Traceback" not in err
