"""What a benchmark number was measured on: the machine, the libraries, the date and the command."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from t2vrt.host import library_versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            return f"{p.name} ({p.total_memory / 2**30:.0f} GiB)"
    except ImportError:
        pass
    return None


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return (res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; psutil's count elsewhere (None without it)."""
    try:
        cores, package = set(), None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key == "physical id":
                package = value
            elif key == "core id":
                cores.add((package, value))
        if cores:
            return len(cores)
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def machine() -> dict:
    """CPU model, cores, RAM, GPU, thread counts and library versions."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical_cores(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": gpu_name(),
        "git": git_commit(),
        "versions": library_versions(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def describe(info: dict) -> str:
    """One paragraph for people, printed beside the numbers."""
    v = ", ".join(f"{k} {x}" for k, x in info["versions"].items())
    gpu = info["gpu"] or "no GPU"
    return (f"{info['date']}  {info['cpu']}, {info['cores_logical']} logical / {info['cores_physical']} physical "
            "cores, "
            f"{info['ram_gib']} GiB RAM, {gpu}, torch threads {info.get('torch_threads')}\n{v}  (git {info['git']})")
