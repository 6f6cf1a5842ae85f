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
    "DataTypeError",
    "NotFittedError",  # noqa: F822  (defined on first use by __getattr__ below)
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


class DataTypeError(DataError, TypeError):
    """Input data of a kind that cannot be used as numbers (strings, objects, sparse matrices).

    A ``TypeError`` too, as scikit-learn raises for the same inputs.
    """


def __getattr__(name: str):
    # NotFittedError derives from scikit-learn's, so sklearn's tools (check_is_fitted callers,
    # check_estimator) recognise it; importing scikit-learn costs about a second, so the class
    # is made on first use and the command line's start-up stays fast.
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError

        class NotFittedError(HqrayError, SklearnNotFittedError):
            """An estimator was used before ``fit`` (also scikit-learn's ``NotFittedError``)."""

        NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"  # picklable
        globals()["NotFittedError"] = NotFittedError
        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
