"""The Heisenberg-picture path of noisy circuits equals the rows' density matrices, gradients included."""

from __future__ import annotations

import pennylane as qml
import pytest
import torch

import hqray.quantum.heisenberg as heisenberg
from hqray.quantum.compiler import record_tape
from hqray.quantum.mixed import _gates, _matrix, run_noisy
from hqray.quantum.noise import NoiseModel

NOISES = {"none": None, "uniform": NoiseModel(depolarizing=0.02, amplitude_damping=0.01, readout_error=0.03),
          "ibm_nairobi": NoiseModel(calibration="ibm_nairobi")}
MEASUREMENTS = {
    "z_each": lambda n: [qml.expval(qml.PauliZ(w)) for w in range(n)],
    "words_and_probs": lambda n: [qml.expval(qml.PauliX(0) @ qml.PauliY(2)), qml.probs(wires=[1, 0])],
    "hamiltonian": lambda n: qml.expval(qml.Hamiltonian([0.5, -1.0], [qml.PauliZ(0) @ qml.PauliZ(1), qml.PauliX(2)])),
}


def _circuit(n_wires: int, measure, embedding: str = "angle"):
    def qfunc(inputs, weights):
        if embedding == "angle":
            qml.AngleEmbedding(inputs, wires=range(n_wires), rotation="Y")
            qml.RX(0.3, wires=1)  # a shared one-qubit gate among the data gates
        else:  # two-qubit data gates: not a product state after the data
            qml.IQPEmbedding(inputs, wires=range(n_wires))
        qml.StronglyEntanglingLayers(weights, wires=range(n_wires))
        return measure(n_wires)
    return qfunc


def _both_paths(qfunc, n_wires, inputs, weights, noise, **options):
    """(Heisenberg, density matrices): outputs and gradients of inputs and weights."""
    results = []
    for limit in (heisenberg.MAX_WORDS_PER_ROW, -1.0):  # -1: no circuit qualifies, rows' density matrices
        saved, heisenberg.MAX_WORDS_PER_ROW = heisenberg.MAX_WORDS_PER_ROW, limit
        try:
            outputs = run_noisy(qfunc, n_wires, inputs, weights, noise, **options)
            results.append((outputs.detach(), *torch.autograd.grad(outputs.sum(), (inputs, weights))))
        finally:
            heisenberg.MAX_WORDS_PER_ROW = saved
    return results


@pytest.mark.parametrize("noise", list(NOISES), ids=str)
@pytest.mark.parametrize("measure", list(MEASUREMENTS), ids=str)
def test_outputs_and_gradients_equal_the_density_matrices(noise, measure):
    torch.manual_seed(0)
    inputs = torch.rand(40, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    fast, reference = _both_paths(_circuit(4, MEASUREMENTS[measure]), 4, inputs, weights, NOISES[noise])
    for ours, theirs in zip(fast, reference, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("noise", ["uniform", "ibm_nairobi"])
def test_parameter_shift_with_shots_equals_the_density_matrices_draw_for_draw(noise):
    """Same seed, same distributions: the same counts; shift-rule gradients of the same values."""
    torch.manual_seed(1)
    inputs = torch.rand(24, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(1, 3, 3, dtype=torch.float64, requires_grad=True)
    fast, reference = _both_paths(_circuit(3, MEASUREMENTS["z_each"]), 3, inputs, weights, NOISES[noise],
                                  shots=500, seed=4, diff_method="parameter-shift")
    for ours, theirs in zip(fast, reference, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)


def test_only_data_then_shared_circuits_with_few_words_take_the_path():
    inputs, weights = torch.rand(64, 3, dtype=torch.float64), torch.rand(1, 3, 3, dtype=torch.float64)
    like = torch.zeros((), dtype=torch.complex128)

    def answer(qfunc, rows=64):
        tape = record_tape(qfunc, inputs[:rows], weights)
        gates = _gates(tape.operations)
        matrices = [_matrix(op, like) for op in gates]
        return heisenberg.run_heisenberg(gates, matrices, [m.ndim == 3 for m in matrices], tape.measurements, 3,
                                         rows, NOISES["uniform"], like)

    assert answer(_circuit(3, MEASUREMENTS["z_each"])) is not None
    assert answer(_circuit(3, MEASUREMENTS["z_each"], embedding="iqp")) is None  # entangling data gates
    assert answer(_circuit(3, MEASUREMENTS["z_each"]), rows=8) is None  # 3 words for 8 rows: rows are cheaper
    assert answer(_circuit(3, lambda n: qml.probs(wires=range(n)))) is not None  # 7 sub-words of 3 wires
    assert answer(_circuit(3, lambda n: qml.expval(qml.Hermitian(torch.eye(2), wires=0)))) is None
