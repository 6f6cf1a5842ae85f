"""The circuits grid's cells (picked by name, with the full grid's inputs) and its call counts."""

from __future__ import annotations

import pytest
import torch

from hqray.benchmarks.circuits import MAX_REPEATS, _cells, _first_call_and_repeats
from hqray.errors import ConfigError


def test_picked_cells_get_the_same_inputs_and_weights_as_in_the_full_grid():
    full = {key: (inputs, weights) for key, _, inputs, weights in _cells(quick=False, max_qubits=None)}
    picked = _cells(quick=False, max_qubits=None, circuits=("qcnn:12", "iqp"))
    assert [key for key, *_ in picked] == [("iqp", 8, 256), ("iqp", 8, 4096), ("qcnn", 12, 256), ("qcnn", 12, 4096)]
    for key, _, inputs, weights in picked:
        assert torch.equal(inputs, full[key][0]) and torch.equal(weights, full[key][1])


def test_a_cell_the_grid_does_not_have_is_named_with_the_ones_it_has():
    with pytest.raises(ConfigError, match=r"'qcnn:13' names no cell of this grid; expected one of .*qcnn:12"):
        _cells(quick=False, max_qubits=None, circuits=("qcnn:13",))


class _Calls:
    """A method as the grid sees one: a call, and the seconds its set-up compilation took."""

    def __init__(self, compile_s: float | None):
        self.calls = 0
        if compile_s is not None:
            self.compile_s = compile_s

    def __call__(self) -> None:
        self.calls += 1


def test_a_long_compilation_in_the_set_up_does_not_cut_the_timed_calls():
    """hqray-jit compiles in its set-up (60 s for qcnn 8): the count of timed calls comes from a
    warm call, not from the compilation (which once left the cell a single timed call)."""
    compiled = _Calls(compile_s=60.0)
    first, repeats = _first_call_and_repeats(compiled, budget=8.0)
    assert (first, repeats, compiled.calls) == (60.0, MAX_REPEATS, 1)


def test_without_a_set_up_compilation_the_first_call_is_timed_apart_then_a_warm_one():
    method = _Calls(compile_s=None)
    first, repeats = _first_call_and_repeats(method, budget=8.0)
    assert method.calls == 2 and first < 8.0 and repeats == MAX_REPEATS
