"""Quantum kernels equal PennyLane's kernel helpers and are valid Gram matrices."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest

from hqray.errors import CircuitError, DataError
from hqray.quantum import CircuitSpec, QuantumKernel
from hqray.quantum.kernels import bloch_vectors, tiles
from hqray.quantum.reference import apply_circuit, overlap_qnode


def pennylane_kernel_matrix(spec, weights, left, right):
    """qml.kernels with the inversion test: P(|0...0>) after U(y)^dagger U(x)."""
    overlap = overlap_qnode(spec, weights)

    return qml.kernels.kernel_matrix(left, right, lambda x, y: overlap(x, y)[0])


@pytest.mark.parametrize(("embedding", "ansatz", "reupload"), [
    ("angle", "strongly_entangling", True), ("angle", "basic_entangler", False), ("angle", "ry_cnot", True),
    # registered circuits beyond the hand-written ones: states from the tape compiler
    ("iqp", "strongly_entangling", False), ("angle", "hardware_efficient", True),
    ("amplitude", "basic_entangler", False),
])
def test_fidelity_kernel_equals_pennylane(embedding, ansatz, reupload):
    spec = CircuitSpec(n_qubits=3, n_layers=2, embedding=embedding, ansatz=ansatz, reupload=reupload,
                       precision="double")
    rng = np.random.default_rng(0)
    weights = rng.uniform(0, 6, spec.weight_shape)
    left, right = rng.uniform(0, 3, (7, 3)), rng.uniform(0, 3, (4, 3))
    kernel = QuantumKernel(spec, weights=weights, tile_rows=3)  # several tiles, ragged edges
    assert np.allclose(kernel.gram(left, right), pennylane_kernel_matrix(spec, weights, left, right), atol=1e-5)
    assert np.allclose(kernel.gram(left), pennylane_kernel_matrix(spec, weights, left, left), atol=1e-5)


def test_training_gram_is_symmetric_unit_diagonal_and_psd():
    spec = CircuitSpec(n_qubits=4, n_layers=2, reupload=True)
    features = np.random.default_rng(1).uniform(0, 3, (50, 4))
    gram = QuantumKernel(spec, tile_rows=16).gram(features)
    assert np.array_equal(gram, gram.T)
    assert np.allclose(np.diag(gram), 1.0)
    assert np.linalg.eigvalsh(gram).min() > -1e-5
    assert (gram >= 0).all() and (gram <= 1 + 1e-6).all()


def test_projected_kernel_uses_reduced_states():
    spec = CircuitSpec(n_qubits=3, n_layers=1, reupload=True, precision="double")
    rng = np.random.default_rng(2)
    features = rng.uniform(0, 3, (6, 3))
    kernel = QuantumKernel(spec, kind="projected", gamma=0.7)
    states = QuantumKernel(spec).states(features)
    device = qml.device("default.qubit", wires=3)

    @qml.qnode(device)
    def reduced(x):
        apply_circuit(spec, x, np.zeros(spec.weight_shape))
        return [qml.density_matrix(wires=[w]) for w in range(3)]

    rho = [reduced(x) for x in features]
    expected = np.array([[np.exp(-0.7 * sum(np.linalg.norm(a[k] - b[k]) ** 2 for k in range(3)))
                          for b in rho] for a in rho])
    assert np.allclose(kernel.gram(features), expected, atol=1e-6)
    assert bloch_vectors(states, 3).shape == (6, 9)


def test_finite_shots_estimate():
    spec = CircuitSpec(n_qubits=3, n_layers=1, reupload=True)
    features = np.random.default_rng(3).uniform(0, 3, (20, 3))
    exact = QuantumKernel(spec).gram(features)
    sampled = QuantumKernel(spec, shots=2000).gram(features)
    assert not np.allclose(sampled, exact)
    assert np.abs(sampled - exact).max() < 0.06  # 2000 shots: std <= 0.011
    assert np.array_equal(sampled, sampled.T) and np.allclose(np.diag(sampled), 1.0)


def test_tiles_cover_the_upper_triangle_once():
    covered = np.zeros((10, 10), dtype=int)
    for r0, r1, c0, c1 in tiles(10, 10, 3, symmetric=True):
        covered[r0:r1, c0:c1] += 1
    assert (np.triu(covered) == np.triu(np.ones((10, 10), dtype=int))).all()


class TestErrors:
    def test_nan(self):
        features = np.ones((3, 2))
        features[1, 0] = np.nan
        with pytest.raises(DataError, match=r"NaN/inf in rows \[1\]"):
            QuantumKernel(CircuitSpec(n_qubits=2, n_layers=1)).gram(features)

    def test_width_mismatch_between_train_and_test(self):
        kernel = QuantumKernel(CircuitSpec(n_qubits=3, n_layers=1))
        with pytest.raises(DataError, match="train and test widths differ: 3 vs 2 features"):
            kernel.gram(np.ones((2, 3)), np.ones((2, 2)))

    def test_too_wide(self):
        with pytest.raises(DataError, match="takes at most 2 features, got 5"):
            QuantumKernel(CircuitSpec(n_qubits=2, n_layers=1)).gram(np.ones((2, 5)))

    def test_noisy_feature_map(self):
        with pytest.raises(CircuitError, match="must be exact"):
            QuantumKernel(CircuitSpec(n_qubits=2, shots=10))
