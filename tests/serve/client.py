"""A small real HTTP client (urllib) for the service tests; loopback only, every wait bounded."""

import json
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None):
    """(status, parsed JSON or raw bytes, headers)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, headers = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), e.headers
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), headers
    return status, raw, headers


def wait_for(base, job_id, statuses, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, job, _ = call(base, "GET", f"/v1/videos/{job_id}")
        if status == 200 and job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {statuses} within {timeout} s: {job}")
