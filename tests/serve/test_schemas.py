"""Request validation without a server: the bulk path agrees with the exact one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hqray.serve.schemas import RequestError, _bulk_matrix, _exact_matrix, parse_instances

NAMES = ["a", "b", "c"]

# What json.loads can put where a feature value goes: numbers of every kind, and the
# values a client may send by mistake.
json_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(), st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2),
)
list_rows = st.lists(json_values, min_size=2, max_size=4)
dict_rows = st.dictionaries(st.sampled_from(NAMES + ["z"]), json_values, min_size=2, max_size=4)
bodies = st.lists(st.one_of(list_rows, dict_rows), min_size=1, max_size=5)
well_formed = st.lists(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                          st.integers(-(10**6), 10**6)), min_size=3, max_size=3),
                       min_size=1, max_size=8)


def outcome(parse, rows):
    try:
        return parse(rows, NAMES)
    except RequestError as error:
        return (error.status, error.code, error.message)


@settings(max_examples=400, deadline=None)
@given(bodies)
def test_bulk_path_accepts_only_what_the_exact_path_accepts_and_gives_the_same_matrix(rows):
    exact = outcome(_exact_matrix, rows)
    bulk = _bulk_matrix(rows, NAMES)
    if bulk is not None:
        assert isinstance(exact, np.ndarray), (rows, exact)
        assert np.array_equal(bulk, exact)
    parsed = outcome(lambda rows, names: parse_instances({"instances": rows}, names, max_rows=100), rows)
    if isinstance(exact, np.ndarray):
        assert np.array_equal(parsed, exact)
    else:
        assert parsed == exact  # the same status, code and message naming the first bad value


@settings(max_examples=200, deadline=None)
@given(well_formed)
def test_well_formed_bodies_take_the_bulk_path(rows):
    bulk = _bulk_matrix(rows, NAMES)
    assert bulk is not None
    assert np.array_equal(bulk, np.asarray(rows, dtype=np.float64))
    named = [dict(zip(reversed(NAMES), reversed(row), strict=True)) for row in rows]
    assert np.array_equal(_bulk_matrix(named, NAMES), bulk)


def test_one_feature_by_name():
    assert parse_instances({"instances": [{"x": 1}, {"x": 2.5}]}, ["x"], max_rows=10).tolist() == [[1.0], [2.5]]


@pytest.mark.parametrize(("instances", "message"), [
    ([[10**400, 1, 2]], "instances[0][0]: expected a finite number, got 1000000000000000000000000000000000000..."),
    ([[1, 2, 3], [1, True, 3]], "instances[1][1]: expected a finite number, got True"),
    ([[1, 2, 3], [1, 2]], "instances[1]: expected 3 features, got 2"),
    ([[1, 2, [3]]], "instances[0][2]: expected a finite number, got [3]"),
    ([{"a": 1, "b": 2, "c": None}], "instances[0]['c']: expected a finite number, got None"),
])
def test_bad_values_are_named(instances, message):
    with pytest.raises(RequestError) as caught:
        parse_instances({"instances": instances}, NAMES, max_rows=10)
    assert caught.value.status == 422 and caught.value.message == message


def test_json_constants_nan_and_infinity_are_rejected():
    with pytest.raises(RequestError, match=r"instances\[0\]\[1\]: expected a finite number, got inf"):
        parse_instances(json.loads('{"instances": [[1, Infinity, 2]]}'), NAMES, max_rows=10)
