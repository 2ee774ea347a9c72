"""Benchmarks: per-stage latency and peak memory of the runtime, against diffusers on the same request."""

from t2vrt.bench.cli import add_bench_parser

__all__ = ["add_bench_parser"]
