"""Circuits recorded once per shape give what recording them per call gives, or are not traced."""

from __future__ import annotations

import pennylane as qml
import pytest
import torch

from hqray.quantum.circuits import Circuit
from hqray.quantum.mixed import run_noisy
from hqray.quantum.noise import NoiseModel, _gates
from hqray.quantum.tracing import trace

NOISE = NoiseModel(depolarizing=0.02, amplitude_damping=0.01, readout_error=0.02)


def _untraced(qfunc):
    """The same circuit without its static key: recorded per call."""
    def circuit(inputs, weights):
        return qfunc(inputs, weights)
    return circuit


def _outputs_and_gradients(qfunc, n_wires, inputs, weights, noise):
    x, w = inputs.clone().requires_grad_(), weights.clone().requires_grad_()
    out = run_noisy(qfunc, n_wires, x, w, noise)
    return (out.detach(), *torch.autograd.grad((out * torch.arange(1, out.shape[1] + 1)).sum(), (x, w)))


@pytest.mark.parametrize(("embedding", "ansatz", "reupload"), [
    ("angle", "strongly_entangling", False), ("angle", "hardware_efficient", True), ("angle", "basic_entangler", False),
    ("angle", "qcnn", False), ("angle", "tree_tensor", False), ("iqp", "ry_cnot", True)])
@pytest.mark.parametrize("noise", [None, NOISE], ids=["noiseless", "noisy"])
def test_a_traced_circuit_equals_the_one_recorded_per_call(embedding, ansatz, reupload, noise):
    circuit = Circuit(n_qubits=4, embedding=embedding, ansatz=ansatz, n_layers=2, reupload=reupload)
    torch.manual_seed(3)
    inputs = torch.rand(6, 4, dtype=torch.float64)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
    traced = trace(circuit.qfunc(), circuit.qfunc().hqray_static_key, 4, circuit.weight_shape, _gates)
    # The IQP embedding's phases are products of two features: not one source, so not traced.
    assert (traced is None) == (embedding == "iqp")
    ours = _outputs_and_gradients(circuit.qfunc(), 4, inputs, weights, noise)
    recorded = _outputs_and_gradients(_untraced(circuit.qfunc()), 4, inputs, weights, noise)
    for a, b in zip(ours, recorded, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_affine_inputs_weights_and_constants_are_found():
    def circuit(inputs, weights):
        qml.RY(2.0 * inputs[..., 1] - 0.5, wires=0)
        qml.RX(inputs[..., 0], wires=1)
        qml.RZ(0.25, wires=1)
        qml.CRX(weights[1], wires=[0, 1])
        return qml.expval(qml.PauliZ(1))

    traced = trace(circuit, ("affine",), 2, (2,), _gates)
    assert [gate.sources for gate in traced.gates] == [
        (("input", 1, 2.0, -0.5),), (("input", 0, 1.0, 0.0),), (("constant", 0.25, 0.0, 0.0),),
        (("weight", 1, 1.0, 0.0),)]


def test_a_circuit_whose_gates_depend_on_values_is_not_traced():
    def branching(inputs, weights):
        qml.RY(inputs[..., 0], wires=0)
        if weights[0] > 0:  # not a static circuit: its structure follows a value
            qml.CNOT(wires=[0, 1])
        qml.RX(weights[0] ** 2, wires=1)
        return qml.expval(qml.PauliZ(1))

    def squared(inputs, weights):
        qml.RX(weights[0] ** 2, wires=0)  # a parameter that is no affine function of one source
        return qml.expval(qml.PauliZ(0))

    assert trace(branching, ("branching",), 1, (1,), _gates) is None
    assert trace(squared, ("squared",), 1, (1,), _gates) is None
    # Given a static key anyway, the noisy engine records it per call and stays exact.
    squared.hqray_static_key = ("squared",)
    weights = torch.tensor([0.7], dtype=torch.float64)
    out = run_noisy(squared, 1, torch.zeros(2, 1, dtype=torch.float64), weights, None)
    torch.testing.assert_close(out[:, 0], torch.cos(weights ** 2).expand(2), atol=1e-12, rtol=0)


def test_a_trace_is_kept_per_argument_shape():
    circuit = Circuit(n_qubits=3, n_layers=1)
    qfunc = circuit.qfunc()
    one = trace(qfunc, qfunc.hqray_static_key, 3, circuit.weight_shape, _gates)
    assert trace(circuit.qfunc(), qfunc.hqray_static_key, 3, circuit.weight_shape, _gates) is one
    deeper = Circuit(n_qubits=3, n_layers=2)
    assert deeper.qfunc().hqray_static_key != qfunc.hqray_static_key
    assert len(trace(deeper.qfunc(), deeper.qfunc().hqray_static_key, 3, deeper.weight_shape, _gates).gates) > \
        len(one.gates)


@pytest.mark.parametrize(("embedding", "ansatz", "reupload"), [
    ("angle", "strongly_entangling", False), ("angle", "hardware_efficient", True), ("angle", "qcnn", False),
    ("angle", "tree_tensor", False), ("iqp", "ry_cnot", False)])
@pytest.mark.parametrize("diff_method", ["backprop", "adjoint"])
def test_the_noiseless_compiler_runs_a_traced_circuit_as_the_recorded_one(embedding, ansatz, reupload, diff_method):
    from hqray.quantum.compiler import _traced, run_qfunc

    circuit = Circuit(n_qubits=4, embedding=embedding, ansatz=ansatz, n_layers=2, reupload=reupload)
    torch.manual_seed(5)
    inputs = torch.rand(6, 4, dtype=torch.float64)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
    results = []
    for qfunc in (circuit.qfunc(), _untraced(circuit.qfunc())):
        x, w = inputs.clone().requires_grad_(), weights.clone().requires_grad_()
        out = run_qfunc(qfunc, 4, x, w, diff_method=diff_method)
        results.append((out.detach(), *torch.autograd.grad((out * torch.arange(1, out.shape[1] + 1)).sum(), (x, w))))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    traced = _traced(circuit.qfunc(), 4, inputs, weights)
    assert (traced is None) == (embedding == "iqp")  # products of features: recorded per call
    if traced is not None:  # the call above ran the program compiled from the trace
        assert any(key[0] == "program" for key in traced.memo)


def test_live_gates_read_by_index_slice_or_iteration_carry_this_calls_parameters():
    # A grouped gate's LiveGate is made when read: every way of reading must give it.
    circuit = Circuit(n_qubits=3, embedding="angle", ansatz="strongly_entangling", n_layers=1)
    qfunc = circuit.qfunc()
    inputs = torch.tensor([[0.1, 0.2, 0.3], [1.1, 1.2, 1.3]], dtype=torch.float64)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
    traced = trace(qfunc, qfunc.hqray_static_key, 3, circuit.weight_shape, _gates)
    by_index = [traced.live(inputs, weights, torch.complex128)[i] for i in range(len(traced.gates))]
    by_slice = traced.live(inputs, weights, torch.complex128)[:]
    by_iteration = list(traced.live(inputs, weights, torch.complex128))
    assert by_index[-1].name == by_slice[-1].name  # negative and positive positions agree
    for a, b, c in zip(by_index, by_slice, by_iteration, strict=True):
        assert a.name == b.name == c.name and type(a) is type(b) is type(c)
        assert type(a).__name__ == "LiveGate" or not a.num_params  # fixed gates stay as recorded
        for x, y, z in zip(a.data, b.data, c.data, strict=True):
            torch.testing.assert_close(x, y, atol=0, rtol=0)
            torch.testing.assert_close(x, z, atol=0, rtol=0)
    first = by_index[0]
    assert first.name == "RY" and first.batch_size == 2  # the angle embedding's first gate, per row
    torch.testing.assert_close(first.data[0], inputs[:, 0], atol=0, rtol=0)
