"""The circuits grid's cells: picked by name, with the full grid's inputs."""

from __future__ import annotations

import pytest
import torch

from hqray.benchmarks.circuits import _cells
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
