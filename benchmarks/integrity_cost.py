"""What the engine-directory integrity check costs at load: a first (hashing) check and a stamped one.

    python benchmarks/integrity_cost.py --gib 1 [--dir /tmp]

Writes a file of random bytes of that size, records it as a manifest would (sha256, bytes), then times
integrity.check_files twice: the first hashes it (the first load after an export or a copy), the second finds
the stamp and only stats it (every later load). Extrapolate the first to the real directory's size (2.8 GB fp16,
5.6 GB fp32 UNet + text encoder + VAE) by the MB/s printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    from t2vrt.integrity import STAMP, check_files
    from t2vrt.manifest import sha256_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    n = int(args.gib * 2**30)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        root = Path(d)
        path = root / "weights.bin"
        with open(path, "wb") as f:
            block = os.urandom(1 << 24)
            for i in range(0, n, len(block)):
                f.write(block[: n - i])
        rec = {"sha256": sha256_file(path), "bytes": n}  # also warms the page cache, as a fresh export leaves it
        (root / STAMP).unlink(missing_ok=True)
        t0 = time.perf_counter()
        assert check_files(root, [("weights.bin", rec, "")]) == []
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(100):
            assert check_files(root, [("weights.bin", rec, "")]) == []
        stamped = (time.perf_counter() - t0) / 100
    print(f"{n / 2**30:.2f} GiB: first check {first:.2f} s ({n / first / 1e6:.0f} MB/s), stamped check {stamped * 1e3:.3f} ms; "
          f"extrapolated first check: 2.8 GB {2.8e9 / (n / first):.1f} s, 5.6 GB {5.6e9 / (n / first):.1f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
