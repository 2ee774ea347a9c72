"""Typed errors. Each message names the problem and what is allowed or what to do."""


class T2VError(Exception):
    """Base of every error t2vrt raises on purpose."""


class InputError(T2VError, ValueError):
    """A call's argument is outside what the model or engine allows."""


class ManifestError(T2VError):
    """The engine directory is missing, corrupt, or of another version."""


class ExportError(T2VError):
    """Export of a component failed or did not match PyTorch."""


class EngineError(T2VError):
    """An engine cannot be built or run here."""


class SchedulerError(T2VError, ValueError):
    """An unknown scheduler or an option it does not support."""


class OutputError(T2VError):
    """An output cannot be written where asked without losing what is there (or the disk is full)."""


class NumericalError(T2VError, FloatingPointError):
    """A model output or the latents became NaN or infinite (an fp16 overflow is the usual cause)."""


class BusyError(T2VError):
    """Another process is writing the same target now (it holds the target's lock)."""
