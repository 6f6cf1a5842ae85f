"""ValidatedModel: pydantic models whose validation errors are hqray errors."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ValidationError

from hqray.errors import ConfigError, HqrayError, format_validation_error

__all__ = ["ValidatedModel", "nested_message"]


def nested_message(error: HqrayError, *labels: str) -> str:
    """The message of an error from a nested model, without that model's label (the outer
    model adds its own): ``"Circuit unknown circuit 'x'"`` -> ``"unknown circuit 'x'"``.

    >>> nested_message(ConfigError("Circuit unknown circuit 'x'"), "Circuit")
    "unknown circuit 'x'"
    """
    text = str(error)
    for label in labels:
        text = text.removeprefix(f"{label} ")
    return text


class ValidatedModel(BaseModel):
    """Raises ``error_type`` (an HqrayError) naming each bad field instead of a ValidationError.

    Subclasses set ``error_type`` and ``error_label`` (default: the class name), e.g.
    ``CircuitSpec n_qubits: Input should be greater than or equal to 1 (got 0)``.
    """

    error_type: ClassVar[type[HqrayError]] = ConfigError
    error_label: ClassVar[str | None] = None

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as error:
            label = self.error_label or type(self).__name__
            raise self.error_type(f"{label} " + format_validation_error(error)) from None
