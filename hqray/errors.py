"""One exception hierarchy for hqray.

Every error a user can cause derives from :class:`HqrayError`, so callers can catch one
type. Messages name the bad value and what was expected ("expected 4 features, got 7").
"""

from __future__ import annotations

__all__ = [
    "HqrayError",
    "ConfigError",
    "DataError",
    "CircuitError",
    "CheckpointError",
    "NotFittedError",
]


class HqrayError(Exception):
    """Base class of every error raised by hqray on purpose."""


class ConfigError(HqrayError, ValueError):
    """A configuration value (option, hyper-parameter, study field) is invalid."""


class DataError(HqrayError, ValueError):
    """Input data (file, column, array) is missing, malformed or unusable."""


class CircuitError(HqrayError, ValueError):
    """A circuit specification cannot be built or executed as asked."""


class CheckpointError(HqrayError):
    """A checkpoint directory is missing, incomplete or inconsistent."""


class NotFittedError(HqrayError, AttributeError):
    """An estimator was used before ``fit``."""


def format_validation_error(error, prefix: str = "") -> str:
    """Turns a pydantic ``ValidationError`` into one line per bad field.

    Args:
        error: the ``pydantic.ValidationError``.
        prefix: text put before the field path, e.g. the file name.

    Returns:
        A message such as ``"n_qubits: Input should be greater than 0 (got 0)"``.
    """
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        message = item.get("msg", "invalid value")
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        if item.get("type") == "value_error":
            message = message.removeprefix("Value error, ")  # our validators' messages say it all
        if not location:
            # A check across fields (a model validator): its message names the fields.
            lines.append(f"{prefix}{message}")
            continue
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{prefix}{location}: {message}{shown}")
    return "; ".join(lines)
