"""What a benchmark number was measured on: the machine, the libraries, the date and the command."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

from t2vrt.host import library_versions

# /proc/cpuinfo flags that change what a benchmark measures (matrix units and their precisions), in that order
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
             "amx_int8", "amx_fp16")


def cpu_fields(text: str | None = None) -> dict:
    """The first processor's vendor, family, model, model name and the ISA_FLAGS it has, from /proc/cpuinfo."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"model_name": platform.processor() or platform.machine(), "isa": []}
    keys = {"vendor_id": "vendor", "cpu family": "family", "model": "model", "model name": "model_name"}
    out: dict = {}
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key in keys and keys[key] not in out:
            out[keys[key]] = value
        elif key in ("flags", "Features") and "isa" not in out:
            have = set(value.split())
            out["isa"] = [f for f in ISA_FLAGS if f in have]
        elif not line.strip() and out:
            break  # the first processor is enough
    out.setdefault("isa", [])
    out.setdefault("model_name", platform.processor() or platform.machine())
    return out


def cpu_model() -> str:
    """'model name (family F, model M; avx2 avx512f ...)': what the machine line says of the processor."""
    f = cpu_fields()
    where = ", ".join(x for x in (f"family {f['family']}" if "family" in f else "",
                                  f"model {f['model']}" if "model" in f else "") if x)
    isa = " ".join(f["isa"]) or "none of " + "/".join(ISA_FLAGS[:3])
    return f"{f['model_name']} ({where + '; ' if where else ''}{isa})"


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
        git = ["git", "-C", str(root)]
        res = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5)
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
        "cpu_fields": cpu_fields(),
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
