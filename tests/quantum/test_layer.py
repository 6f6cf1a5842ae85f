"""QuantumLayer equals a direct PennyLane QNode and trains."""

from __future__ import annotations

import pennylane as qml
import torch

from hqray.quantum import CircuitSpec, QuantumLayer


def test_layer_equals_direct_qnode():
    spec = CircuitSpec(n_qubits=4, n_layers=2, ansatz="strongly_entangling")
    layer = QuantumLayer(spec)
    device = qml.device("default.qubit", wires=4)

    @qml.qnode(device, interface="torch")
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(4), rotation="Y")
        qml.StronglyEntanglingLayers(weights, wires=range(4))
        return [qml.expval(qml.PauliZ(w)) for w in range(4)]

    inputs = torch.rand(6, 4) * 3
    expected = torch.stack(circuit(inputs.double(), layer.weights.detach().double()), dim=-1)
    assert torch.allclose(layer(inputs).double(), expected, atol=1e-5)


def test_initial_weights_are_near_zero():
    layer = QuantumLayer(CircuitSpec(n_qubits=6, n_layers=4))
    assert 0.02 < float(layer.weights.detach().std()) < 0.08


def test_gradients_reach_the_weights_and_inputs():
    layer = QuantumLayer(CircuitSpec(n_qubits=3, n_layers=2))
    inputs = (torch.rand(4, 3) * 3).requires_grad_(True)
    layer(inputs).sum().backward()
    assert layer.weights.grad is not None and layer.weights.grad.abs().sum() > 0
    assert inputs.grad.abs().sum() > 0


def test_bfloat16_inputs_run_in_float32():
    layer = QuantumLayer(CircuitSpec(n_qubits=2, n_layers=1))
    inputs = torch.rand(3, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = layer(inputs.bfloat16())
    assert outputs.dtype == torch.float32
    assert torch.allclose(outputs, layer(inputs), atol=1e-2)


def test_a_double_precision_layer_keeps_float64_weights_and_exact_gradients():
    spec = CircuitSpec(n_qubits=3, n_layers=2, precision="double")
    layer = QuantumLayer(spec)
    assert layer.weights.dtype == torch.float64
    assert QuantumLayer(CircuitSpec(n_qubits=3, n_layers=2)).weights.dtype == torch.float32
    inputs = torch.rand(4, 3, dtype=torch.float64)
    layer(inputs).sum().backward()
    weights = layer.weights.detach().clone().requires_grad_(True)
    device = qml.device("default.qubit", wires=3)

    @qml.qnode(device, interface="torch", diff_method="backprop")
    def circuit(x, w):
        qml.AngleEmbedding(x, wires=range(3), rotation="Y")
        qml.StronglyEntanglingLayers(w, wires=range(3))
        return [qml.expval(qml.PauliZ(i)) for i in range(3)]

    torch.stack(circuit(inputs, weights)).sum().backward()
    torch.testing.assert_close(layer.weights.grad, weights.grad, atol=1e-12, rtol=0)


def test_nan_or_infinite_weights_are_an_error_naming_where():
    import pytest

    from hqray.errors import CircuitError

    layer = QuantumLayer(CircuitSpec(n_qubits=2, n_layers=1))
    with torch.no_grad():
        layer.weights[0, 1, 2] = float("nan")
    with pytest.raises(CircuitError, match=r"weights contain NaN/inf \(first positions: \[\(0, 1, 2\)\]\)"):
        layer(torch.zeros(3, 2))
