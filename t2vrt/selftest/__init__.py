"""`t2vrt selftest`: prove an install by running every available backend on the same seeded feeds and comparing
them, with Polygraphy's comparator, against ONNX Runtime CPU fp32 (see run.py)."""

from t2vrt.selftest.run import SelftestOptions, run_selftest

__all__ = ["SelftestOptions", "run_selftest"]
