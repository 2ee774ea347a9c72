"""Backends behind one Runner protocol."""

from t2vrt.engines.base import Runner, check_feed

__all__ = ["Runner", "check_feed"]
