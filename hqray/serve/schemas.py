"""HTTP schemas and validation of prediction requests (before any circuit runs)."""

from __future__ import annotations

import itertools
import json
import math
import operator
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hqray.errors import HqrayError

__all__ = ["decode_json", "RequestError", "PredictRequest", "parse_instances", "error_body"]


class RequestError(HqrayError):
    """An error answered over HTTP (a client's 4xx, or the 504 of a prediction too slow):
    status, stable code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: Any = None) -> dict:
    """The one error schema: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


class PredictRequest(BaseModel):
    """``{"instances": [[f1, f2, ...], ...]}`` or ``{"instances": [{"name": value, ...}, ...]}``."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(min_length=1)


def decode_json(body: bytes) -> Any:
    """The decoded body; every kind of malformed JSON is a 400 in the error schema.

    Besides syntax errors: an integer of more digits than Python converts (ValueError),
    and nesting deeper than the decoder's recursion limit (RecursionError).

    >>> try:
    ...     decode_json(b"[" * 100_000)
    ... except RequestError as error:
    ...     print(error.status, error.code)
    400 malformed_json
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(400, "malformed_json", "body is nested too deeply to decode") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise RequestError(400, "malformed_json", f"body is not valid JSON: {str(error)[:200]}") from None


def _shown(value: Any) -> str:
    """``repr`` of a bad value, cut short: a 400-digit integer is named, not echoed whole."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(422, "invalid_value", f"{where}: expected a finite number, got {_shown(value)}")
    try:
        number = float(value)  # an int beyond float64's range raises OverflowError
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise RequestError(422, "invalid_value", f"{where}: expected a finite number, got {_shown(value)}")
    return number


def parse_instances(payload: Any, feature_names: list[str], max_rows: int) -> np.ndarray:
    """Validates a decoded JSON body; returns a ``(rows, features)`` float64 array.

    Well-formed bodies are converted in bulk (numpy and C-level iteration: no Python loop
    per value); any body the bulk path cannot vouch for goes through the exact check, value
    by value, which names the first bad value.

    Example::

        >>> parse_instances({"instances": [{"b": 2, "a": 1}]}, ["a", "b"], max_rows=10)
        array([[1., 2.]])
        >>> try:
        ...     parse_instances({"instances": [[1, "x"]]}, ["a", "b"], max_rows=10)
        ... except RequestError as error:
        ...     print(error.status, error.message)
        422 instances[0][1]: expected a finite number, got 'x'

    Raises:
        RequestError: 422 for schema, type, width and name errors; 413 for too many rows.
    """
    try:
        request = PredictRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = "unknown field" if first.get("type") == "extra_forbidden" else first.get("msg", "invalid")
        raise RequestError(422, "invalid_request",
                           f"{location}: {message}; expected {{\"instances\": [[...], ...]}}",
                           [{"loc": list(e.get("loc", ())), "msg": e.get("msg")}
                            for e in error.errors()[:10]]) from None
    rows = request.instances
    if len(rows) > max_rows:
        raise RequestError(413, "too_many_rows", f"{len(rows)} rows in one request; the limit is {max_rows}")
    matrix = _bulk_matrix(rows, feature_names)
    return matrix if matrix is not None else _exact_matrix(rows, feature_names)


_NUMBER_TYPES = frozenset({int, float})  # exactly: bool, a subclass of int, is not a number here


def _bulk_matrix(rows: list, feature_names: list[str]) -> np.ndarray | None:
    """The matrix of a well-formed body, or None when anything is off (the exact path then
    finds and names it). Every check is C-level: ``map``, ``set``, numpy."""
    n_features = len(feature_names)
    kinds = set(map(type, rows))
    if kinds == {dict}:
        if set(map(frozenset, rows)) != {frozenset(feature_names)}:
            return None
        rows = list(map(operator.itemgetter(*feature_names), rows))
        if n_features == 1:  # itemgetter of one name gives the value itself, not a 1-tuple
            rows = list(zip(rows))
    elif kinds != {list}:
        return None
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES:
        return None
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, OverflowError):  # ragged rows; an int beyond float64
        return None
    if matrix.shape != (len(rows), n_features) or not np.isfinite(matrix).all():
        return None
    return matrix


def _exact_matrix(rows: list, feature_names: list[str]) -> np.ndarray:
    """Checks value by value and raises on the first bad one (the specification the bulk
    path follows; it runs only for bodies the bulk path rejected)."""
    n_features = len(feature_names)
    matrix = np.empty((len(rows), n_features), dtype=np.float64)
    kinds = {type(row) for row in rows}
    if kinds == {list}:
        for index, row in enumerate(rows):
            if len(row) != n_features:
                raise RequestError(422, "wrong_width", f"instances[{index}]: expected {n_features} features, "
                                   f"got {len(row)}", {"expected": n_features, "got": len(row)})
            for column, value in enumerate(row):
                matrix[index, column] = _number(value, f"instances[{index}][{column}]")
    elif kinds == {dict}:
        expected = set(feature_names)
        for index, row in enumerate(rows):
            if set(row) != expected:
                raise RequestError(422, "wrong_features", f"instances[{index}]: feature names do not match",
                                   {"missing": sorted(expected - set(row)), "unknown": sorted(set(row) - expected)})
            for column, name in enumerate(feature_names):
                matrix[index, column] = _number(row[name], f"instances[{index}][{name!r}]")
    else:
        raise RequestError(422, "invalid_request", "instances must all be lists of numbers or all be objects "
                           f"mapping feature names to numbers; got {sorted(k.__name__ for k in kinds)}")
    return matrix
