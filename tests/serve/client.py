"""Small real HTTP clients for the service tests (loopback only, every wait bounded): urllib for JSON calls, raw
sockets for the rude requests, and the official openai client."""

import json
import socket
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None, content_type="application/json"):
    """(status, parsed JSON or raw bytes, headers)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, headers = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), e.headers
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), headers
    return status, raw, headers


def wait_for(base, job_id, statuses, timeout=60.0):
    end, job = time.monotonic() + timeout, None
    while time.monotonic() < end:
        status, job, _ = call(base, "GET", f"/v1/videos/{job_id}")
        if status == 200 and job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {statuses} within {timeout} s: {job}")


def raw(base, data: bytes, wait_s=5.0, shut=False):
    """Send ``data`` on a fresh connection; what comes back within ``wait_s`` s (b"" for nothing)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while b"\r\n\r\n" not in got or len(got) < 12:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        return got


def status_of(reply: bytes) -> int | None:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None


def openai_client(base):
    from openai import OpenAI

    return OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)


def wait_until_up(base, proc=None, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and (proc is None or proc.poll() is None):
        try:
            if call(base, "GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the service at {base} did not come up within {timeout} s")
