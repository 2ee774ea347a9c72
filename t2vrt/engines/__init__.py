"""Backends behind one Runner protocol."""

from t2vrt.engines.base import Runner, can_release, check_feed

__all__ = ["Runner", "can_release", "check_feed"]
