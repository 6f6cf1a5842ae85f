"""Expectation values by tensor-network contraction against the state vector.

The network (light cone, diagonal gates joining indices, the batch as one shared index)
must give the state vector's values and gradients for any gate mix, observable kind and
batch; the compiler must take it only where it pays, and never for what it cannot measure.
"""

from __future__ import annotations

import pennylane as qml
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqray.quantum import contraction
from hqray.quantum.circuits import Circuit
from hqray.quantum.compiler import _measurements_for, _traced, program_for, record_tape, run_qfunc, supported
from tests.quantum.test_compiler import RANDOM_GATES, gate_draws


def expval_circuit(n_wires: int, draws):
    """Hypothesis' gate draws (as the compiler's property test draws them), measured by
    expectation values only: a diagonal word, a non-diagonal word and a sum with a constant."""
    def qfunc(inputs, weights):
        qml.AngleEmbedding(inputs[..., :n_wires], wires=range(n_wires), rotation="Y")
        for kind, wires, sources in draws:
            name, _, _ = RANDOM_GATES[kind]
            params = [(inputs[..., s % n_wires] if s % 2 else weights[s % weights.shape[0]]) for s in sources]
            if name == "ControlledRY":
                qml.ctrl(qml.RY(params[0], wires=wires[2]), control=wires[:2], control_values=[1, 0])
            else:
                getattr(qml, name)(*params, wires=wires)
        last = n_wires - 1
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliX(last) @ qml.PauliY(0)),
                qml.expval(0.5 * qml.PauliZ(last) + 0.25 * qml.PauliX(0) - 0.75 * qml.Identity(0))]
    return qfunc


def by_network(qfunc, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The circuit run through its tensor network, whatever the cost model would choose."""
    dtype = torch.complex128 if inputs.dtype == torch.float64 else torch.complex64
    tape = record_tape(qfunc, inputs, weights)
    operations = supported(tape, n_wires)
    program = program_for(operations, n_wires, inputs.shape[0])
    network = contraction.network_for(program.gates, _measurements_for(tape.measurements, n_wires, dtype, "cpu"))
    assert network is not None
    return contraction.contract(network, program, operations, inputs.shape[0], dtype, "cpu")


@settings(max_examples=25, deadline=None)
@given(case=gate_draws(max_wires=6, max_gates=20), batch=st.integers(1, 5), seed=st.integers(0, 1000))
def test_property_the_network_equals_the_state_vector_with_gradients(case, batch, seed):
    n_wires, gates = case
    qfunc = expval_circuit(n_wires, gates)
    generator = torch.Generator().manual_seed(seed)
    inputs = (torch.rand(batch, n_wires, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
    weights = (torch.rand(4, generator=generator, dtype=torch.float64) * 6).requires_grad_(True)
    ours = by_network(qfunc, n_wires, inputs, weights)
    theirs = run_qfunc(qfunc, n_wires, inputs, weights, diff_method="backprop")
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    probe = torch.linspace(0.5, 1.5, ours.numel(), dtype=torch.float64).reshape(ours.shape)
    mine = torch.autograd.grad((ours * probe).sum(), [inputs, weights], allow_unused=True)
    expected = torch.autograd.grad((theirs * probe).sum(), [inputs, weights], allow_unused=True)
    for a, b, like in zip(mine, expected, (inputs, weights), strict=True):
        torch.testing.assert_close(torch.zeros_like(like) if a is None else a,
                                   torch.zeros_like(like) if b is None else b, atol=1e-9, rtol=0)


def test_the_light_cone_keeps_only_gates_that_reach_the_measured_wires():
    def qfunc(inputs, weights):
        qml.RY(inputs[..., 0], wires=0)
        qml.RY(inputs[..., 1], wires=1)
        qml.CNOT(wires=[2, 3])  # never reaches wire 0
        qml.CNOT(wires=[1, 0])
        qml.CNOT(wires=[1, 2])  # after the last gate on wire 0: cannot change what it measures
        qml.RX(weights[0], wires=3)
        return qml.expval(qml.PauliZ(0))
    tape = record_tape(qfunc, torch.rand(2, 2), torch.rand(1))
    program = program_for(supported(tape, 4), 4, 2)
    kept = [(program.gates[i].name, program.gates[i].wires) for i in contraction.light_cone(program.gates, [0])]
    assert kept == [("RY", (0,)), ("RY", (1,)), ("CNOT", (1, 0))]
    assert contraction.light_cone(program.gates, [3]) == [2, 5]  # CNOT(2,3), RX(3): CNOT(1,2) comes after


def test_a_plan_made_for_one_batch_runs_any_batch_and_single_precision():
    circuit = Circuit(n_qubits=5, embedding="angle", ansatz="qcnn")
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
    qfunc = circuit.qfunc()
    by_network(qfunc, 5, torch.rand(16, 5, dtype=torch.float64), weights)  # planned for 16 rows
    for rows in (1, 3, 40):
        inputs = torch.rand(rows, 5, dtype=torch.float64)
        torch.testing.assert_close(by_network(qfunc, 5, inputs, weights),
                                   run_qfunc(qfunc, 5, inputs, weights, diff_method="backprop"), atol=1e-10, rtol=0)
    single = by_network(qfunc, 5, inputs.float(), weights.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), run_qfunc(qfunc, 5, inputs, weights), atol=1e-5, rtol=0)


def test_the_compiler_contracts_a_wide_qcnn_with_the_state_vectors_results():
    wide = Circuit(n_qubits=12, embedding="angle", ansatz="qcnn")
    inputs = torch.rand(64, wide.n_qubits, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(wide.weight_shape, dtype=torch.float64, requires_grad=True)
    ours = run_qfunc(wide.qfunc(), wide.n_qubits, inputs, weights)
    traced = _traced(wide.qfunc(), wide.n_qubits, inputs, weights)
    [program] = [v for k, v in traced.memo.items() if k[0] == "program"]
    network = contraction.choose_network(program, _measurements_for(traced.measurements, 12, torch.complex128, "cpu"),
                                         inputs.shape[0])
    assert network is not None  # the tree's network: far fewer operations than 2^12 amplitudes
    kinds = {step.kind for column in network.columns for term in column for step in term.steps}
    assert kinds == {"mm", "bmm", "mul", "bmm_rows"}  # every kind of step is checked below, with gradients
    assert network.seconds(64) < contraction.state_vector_seconds(program, 64)
    assert contraction.choose_network(program, _measurements_for(traced.measurements, 12, torch.complex128, "cpu"),
                                      2) is None  # two rows: the state vector's few steps are quicker
    theirs = run_qfunc(wide.qfunc(), wide.n_qubits, inputs, weights, diff_method="backprop")
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    for a, b in zip(torch.autograd.grad(ours.sum(), [inputs, weights]),
                    torch.autograd.grad(theirs.sum(), [inputs, weights]), strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


@pytest.mark.parametrize("rows", [1, 5])
def test_the_per_row_product_and_its_gradients_leave_the_callers_gradient_alone(rows):
    """(p, q, rows) x (q, r, rows) per row, against einsum with autograd; its backward
    conjugates its own copies in place, never the gradient it is handed (with one row the
    transpose that moves the rows is a view of it)."""
    generator = torch.Generator().manual_seed(rows)
    a, b = (torch.randn(*shape, rows, dtype=torch.complex128, generator=generator) for shape in ((3, 4), (4, 2)))
    gradient = torch.randn(3, 2, rows, dtype=torch.complex128, generator=generator)
    handed = gradient.clone()
    ours = [a.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    theirs = [a.clone().requires_grad_(True), b.clone().requires_grad_(True)]
    product = contraction._RowsLastProduct.apply(*ours)
    expected = torch.einsum("pqn,qrn->prn", *theirs)
    torch.testing.assert_close(product, expected, atol=1e-12, rtol=0)
    product.backward(gradient)
    expected.backward(handed.clone())
    assert torch.equal(gradient, handed)
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("reason", ["probs", "narrow", "many terms", "too many rows"])
def test_no_network_where_it_cannot_measure_or_would_not_pay(reason):
    n = 4 if reason == "narrow" else contraction.MIN_WIRES
    rows = 2**40 if reason == "too many rows" else 3

    def qfunc(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(n), rotation="Y")
        qml.CNOT(wires=[0, 1])
        if reason == "probs":
            return qml.probs(wires=[0])
        return [qml.expval(qml.PauliZ(w)) for w in range(contraction.MAX_TERMS + 1 if reason == "many terms" else 1)]
    tape = record_tape(qfunc, torch.rand(3, n), torch.rand(1))
    program = program_for(supported(tape, n), n, 3)
    measure = _measurements_for(tape.measurements, n, torch.complex64, "cpu")
    assert contraction.choose_network(program, measure, rows) is None
    if reason == "too many rows":  # a light cone of two gates: the network wins on a batch that fits
        assert contraction.choose_network(program, measure, 1024) is not None


def test_a_narrow_qcnn_contracts_only_large_batches():
    """At 8 qubits the state vector is small: its few steps beat ~170 contractions on a small
    batch, and the network's fewer operations per row win on a large one."""
    circuit = Circuit(n_qubits=8, embedding="angle", ansatz="qcnn")
    traced = _traced(circuit.qfunc(), 8, torch.rand(4, 8), torch.rand(circuit.weight_shape))
    program = program_for(traced.operations, 8, 4)
    measure = _measurements_for(traced.measurements, 8, torch.complex64, "cpu")
    assert contraction.choose_network(program, measure, 16) is None
    assert contraction.choose_network(program, measure, 4096) is not None


def test_the_contraction_order_is_the_same_in_every_process():
    """String hashing differs per process (PYTHONHASHSEED); the planned order must not: the
    same circuit's orders ran up to 2.2x apart (see contraction._planned_path)."""
    import os
    import subprocess
    import sys

    script = ("import torch\n"
              "from hqray.quantum import contraction\n"
              "from hqray.quantum.circuits import Circuit\n"
              "from hqray.quantum.compiler import _measurements_for, program_for, record_tape, supported\n"
              "circuit = Circuit(n_qubits=8, ansatz='qcnn')\n"
              "x, w = torch.rand(4, 8), torch.rand(circuit.weight_shape)\n"
              "tape = record_tape(circuit.qfunc(), x, w)\n"
              "program = program_for(supported(tape, 8), 8, 4)\n"
              "network = contraction.network_for(program.gates, _measurements_for(tape.measurements, 8, "
              "torch.complex64, 'cpu'))\n"
              "print([[step.positions for step in term.steps] for column in network.columns "
              "for term in column])\n")
    paths = set()
    for seed in ("0", "1"):
        completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "PYTHONHASHSEED": seed})
        assert completed.returncode == 0, completed.stderr
        paths.add(completed.stdout)
    assert len(paths) == 1, paths
