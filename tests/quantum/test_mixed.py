"""The batched density-matrix engine against PennyLane's default.mixed with the same channels."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch
from scipy import stats

from hqray.errors import CircuitError
from hqray.quantum.circuits import Circuit
from hqray.quantum.mixed import MAX_DENSITY_QUBITS, run_noisy
from hqray.quantum.noise import NoiseModel, apply_readout, readout_expval_z, with_noise

UNIFORM = NoiseModel(depolarizing=0.02, amplitude_damping=0.015, phase_damping=0.03)
# Linear entanglers only: the calibrated devices couple neighbours, not every pair.
CASES = [
    ("angle", "strongly_entangling", {}, UNIFORM, 4),
    ("iqp", "qcnn", {}, NoiseModel(depolarizing=0.05), 4),
    ("amplitude", "tree_tensor", {}, UNIFORM, 4),  # the state preparation runs as noisy gates too
    ("angle", "hardware_efficient", {"entangler": "linear"}, NoiseModel(calibration="ibm_manila"), 4),
    ("angle", "ry_cnot", {}, NoiseModel(calibration="ibm_nairobi"), 3),  # qubits 0-1-2 are coupled
]


def reference(qfunc, n_wires: int, inputs, weights, noise: NoiseModel | None) -> torch.Tensor:
    """default.mixed on ``with_noise(qfunc)`` (``qfunc`` itself for None), row by row."""
    noisy = qfunc if noise is None else with_noise(qfunc, noise)
    node = qml.QNode(noisy, qml.device("default.mixed", wires=n_wires), interface="torch")
    rows = []
    for row in inputs:
        out = node(row[None, :], weights)
        rows.append(torch.stack(list(out)).reshape(-1) if isinstance(out, (list, tuple)) else out.reshape(-1))
    return torch.stack(rows)


@pytest.mark.parametrize(("embedding", "ansatz", "options", "noise", "n"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3].calibration or 'uniform'}" for c in CASES])
def test_expectations_equal_default_mixed_with_the_same_channels(embedding, ansatz, options, noise, n):
    torch.manual_seed(1)
    circuit = Circuit(n_qubits=n, embedding=embedding, ansatz=ansatz, ansatz_options=options, n_layers=2,
                      measurement="expval_z")
    features = 2**n if embedding == "amplitude" else n
    inputs = torch.rand(5, features, dtype=torch.float64)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
    ours = run_noisy(circuit.qfunc(), n, inputs, weights, noise)
    expected = readout_expval_z(reference(circuit.qfunc(), n, inputs, weights, noise).numpy(), list(range(n)), noise)
    assert np.abs(ours.numpy() - expected).max() < 1e-6
    noiseless = run_noisy(circuit.qfunc(), n, inputs, weights, None)
    assert np.abs(ours.numpy() - noiseless.numpy()).max() > 1e-3  # the noise did something


def pauli_gates(inputs, weights):
    qml.AngleEmbedding(inputs, wires=range(3))
    qml.StronglyEntanglingLayers(weights, wires=range(3))


def pauli_circuit(inputs, weights):
    pauli_gates(inputs, weights)
    return (qml.expval(qml.PauliX(0) @ qml.PauliY(2)), qml.expval(0.5 * qml.PauliZ(1) - 2.0 * qml.PauliY(0)),
            qml.probs(wires=[2, 0]))


def test_pauli_words_sums_and_probs_with_readout_errors_equal_default_mixed():
    noise = NoiseModel(depolarizing=0.03, readout_error=0.04)
    inputs = torch.rand(4, 3, dtype=torch.float64)
    weights = torch.rand(1, 3, 3, dtype=torch.float64)
    ours = run_noisy(pauli_circuit, 3, inputs, weights, noise).numpy()
    flip = np.array([[0.96, 0.04], [0.04, 0.96]])

    def rotated(rotations, wires):
        """default.mixed's probabilities of ``wires`` after basis rotations, readout applied."""
        def qfunc(x, w):
            with_noise(lambda a, b: pauli_gates(a, b) or [], NoiseModel(depolarizing=0.03))(x, w)
            for wire, gate in rotations:  # noiseless: a change of measurement basis, as in hqray
                gate(wires=wire)
            return qml.probs(wires=wires)
        return apply_readout(reference(qfunc, 3, inputs, weights, None).numpy(),
                             np.stack([flip] * len(wires)))
    xy = rotated([(0, qml.Hadamard), (2, qml.adjoint(qml.S)), (2, qml.Hadamard)], [0, 2]) @ [1, -1, -1, 1]
    z1 = rotated([], [1]) @ [1, -1]
    y0 = rotated([(0, qml.adjoint(qml.S)), (0, qml.Hadamard)], [0]) @ [1, -1]
    assert np.abs(ours[:, 0] - xy).max() < 1e-6
    assert np.abs(ours[:, 1] - (0.5 * z1 - 2.0 * y0)).max() < 1e-6
    assert np.abs(ours[:, 2:] - rotated([], [2, 0])).max() < 1e-6


def test_gradients_equal_default_mixed_backprop():
    circuit = Circuit(n_qubits=3, embedding="angle", ansatz="strongly_entangling", n_layers=2,
                      measurement="expval_z")
    torch.manual_seed(2)
    inputs = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64, requires_grad=True)
    run_noisy(circuit.qfunc(), 3, inputs, weights, UNIFORM).sum().backward()
    ours = inputs.grad.clone(), weights.grad.clone()
    inputs.grad, weights.grad = None, None
    reference(circuit.qfunc(), 3, inputs, weights, UNIFORM).sum().backward()
    assert torch.allclose(ours[0], inputs.grad, atol=1e-6) and torch.allclose(ours[1], weights.grad, atol=1e-6)


def test_shot_counts_follow_the_exact_distribution():
    circuit = Circuit(n_qubits=3, embedding="angle", ansatz="strongly_entangling", n_layers=1, measurement="probs")
    inputs = torch.rand(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    noise = NoiseModel(depolarizing=0.05, readout_error=0.02)
    exact = run_noisy(circuit.qfunc(), 3, inputs, weights, noise).numpy()
    shots = 4000
    sampled = run_noisy(circuit.qfunc(), 3, inputs, weights, noise, shots=shots, seed=7).numpy()
    again = run_noisy(circuit.qfunc(), 3, inputs, weights, noise, shots=shots, seed=7).numpy()
    other = run_noisy(circuit.qfunc(), 3, inputs, weights, noise, shots=shots, seed=8).numpy()
    assert np.array_equal(sampled, again) and not np.array_equal(sampled, other)  # seeded, per seed
    counts = np.rint(sampled * shots)
    assert np.array_equal(counts.sum(axis=1), np.full(6, shots))
    # One chi-square test over all rows (8 outcomes each: 7 degrees of freedom per row).
    statistic = (((counts - shots * exact) ** 2) / (shots * exact)).sum()
    assert stats.chi2.sf(statistic, df=6 * 7) > 1e-3, statistic


def test_shot_noise_on_an_expectation_has_the_binomial_spread():
    def qfunc(inputs, weights):
        qml.RY(inputs[..., 0], wires=0)
        return qml.expval(qml.PauliZ(0))
    inputs = torch.full((2000, 1), 1.0, dtype=torch.float64)
    values = run_noisy(qfunc, 1, inputs, torch.zeros(0), None, shots=100, seed=0).numpy().ravel()
    p = (1 + np.cos(1.0)) / 2
    assert abs(values.mean() - np.cos(1.0)) < 4 * 2 * np.sqrt(p * (1 - p) / 100 / 2000)
    assert values.std() == pytest.approx(2 * np.sqrt(p * (1 - p) / 100), rel=0.1)


@pytest.mark.parametrize(("qfunc", "n_wires", "said"), [
    (lambda x, w: qml.state(), 1, "not the state"),
    (lambda x, w: qml.expval(qml.Hermitian(np.eye(2), wires=0)), 1, "measures Pauli words"),
    (lambda x, w: (qml.CNOT(wires=[0, 2]), qml.expval(qml.PauliZ(0)))[1], 3, "no coupler between qubits 0 and 2"),
    (lambda x, w: qml.expval(qml.PauliZ(0)), MAX_DENSITY_QUBITS + 1, "at most 14 qubits"),
])
def test_what_a_noisy_device_cannot_do_is_a_clear_error(qfunc, n_wires, said):
    noise = NoiseModel(calibration="ibm_manila", routing="none") if "coupler" in said else None
    with pytest.raises(CircuitError, match=said):
        run_noisy(qfunc, n_wires, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(0), noise)


@pytest.mark.parametrize(("embedding", "ansatz"), [("angle", "strongly_entangling"), ("iqp", "hardware_efficient")])
def test_parameter_shift_gradients_equal_the_exact_ones_noise_included(embedding, ansatz):
    circuit = Circuit(n_qubits=3, embedding=embedding, ansatz=ansatz, n_layers=2, measurement="expval_z")
    noise = NoiseModel(depolarizing=0.02, amplitude_damping=0.01, readout_error=0.03)
    generator = torch.Generator().manual_seed(5)
    inputs = torch.rand(4, 3, dtype=torch.float64, generator=generator).requires_grad_()
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64, generator=generator).requires_grad_()
    cotangent = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    gradients = {}
    for method in ("exact", "parameter-shift"):
        outputs = run_noisy(circuit.qfunc(), 3, inputs, weights, noise, diff_method=method)
        gradients[method] = torch.autograd.grad((outputs * cotangent).sum(), (inputs, weights))
    for exact, shifted in zip(gradients["exact"], gradients["parameter-shift"], strict=True):
        assert torch.allclose(exact, shifted, atol=1e-10)


def test_parameter_shift_with_shots_samples_every_shifted_circuit():
    circuit = Circuit(n_qubits=2, embedding="angle", ansatz="ry_cnot", n_layers=1, measurement="expval_z")
    inputs = torch.full((200, 2), 0.7, dtype=torch.float64)
    weights = torch.tensor([[0.4, 1.1]], dtype=torch.float64, requires_grad=True)

    def weight_gradient(shots, seed):
        outputs = run_noisy(circuit.qfunc(), 2, inputs, weights, UNIFORM, shots=shots, seed=seed,
                            diff_method="parameter-shift")
        return torch.autograd.grad(outputs.sum(), weights)[0]
    exact = weight_gradient(None, None)
    first, second = weight_gradient(500, 1), weight_gradient(500, 2)
    assert not torch.equal(first, second)  # shot noise in the shifted circuits too
    # 200 rows x 2 outputs, each derivative a difference of two 500-shot estimates / 2.
    assert torch.allclose(first, exact, atol=5 * np.sqrt(400 * 2 / 500) / 2)


def test_parameter_shift_refuses_a_trained_gate_without_a_two_term_rule():
    def qfunc(inputs, weights):
        qml.RY(inputs[..., 0], wires=0)
        qml.CRX(weights[0], wires=[0, 1])
        return qml.expval(qml.PauliZ(1))
    weights = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    with pytest.raises(CircuitError, match=r"two-term shift rule .* the circuit trains \['CRX'\]"):
        run_noisy(qfunc, 2, torch.zeros(2, 1, dtype=torch.float64), weights, None, diff_method="parameter-shift")
