"""The exceptions taep raises: one family, as in the C++ library (include/taep/error.hpp)."""

from __future__ import annotations

__all__ = ["Error", "ConfigError", "BackendUnavailable", "CudaError", "NonFiniteResult",
           "TrainingDiverged"]


class Error(RuntimeError):
    """Base of everything taep raises for its own reasons (taep::Error)."""


class ConfigError(Error, ValueError):
    """Bad input: a config field, an argument or a file (taep::ConfigError).

    ``field`` names what was wrong, as a dotted config key ("schedule.steps"), an argument name
    ("count") or a file path; ``message`` says what is allowed and what was given. ``str(e)`` is
    ``"<field>: <message>"``, the line the ``taep`` command prints after ``taep: error:``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self):  # picklable with its two arguments (multiprocessing)
        return (type(self), (self.field, self.message))


class BackendUnavailable(Error):
    """The CUDA backend was asked for where it cannot run: built without CUDA, or no usable device."""


class CudaError(Error):
    """A CUDA runtime or library call failed."""


class NonFiniteResult(Error):
    """Every path (or sample) of a run came out non-finite, so it has no statistics
    (taep::NonFiniteResult). Set run.allow_nonfinite to get the result with null statistics."""


class TrainingDiverged(Error):
    """Training produced a non-finite loss, gradient or weight (taep::TrainingDiverged).

    ``step`` is the end of the first log window where it showed, ``loss`` that window's mean loss.
    """

    def __init__(self, message: str, step: int = 0, loss: float = float("nan")) -> None:
        super().__init__(message)
        self.step = step
        self.loss = loss

    def __reduce__(self):
        return (type(self), (str(self), self.step, self.loss))


# Shown and pickled as taep.ConfigError etc., where users meet them (the package re-exports them).
for _cls in (Error, ConfigError, BackendUnavailable, CudaError, NonFiniteResult, TrainingDiverged):
    _cls.__module__ = "taep"
del _cls
