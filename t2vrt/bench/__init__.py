"""Benchmarks: per-stage latency and peak memory of the runtime, against diffusers on the same request."""
