"""``jit=True``: a traced circuit's pass as one compiled real-arithmetic kernel.

One user circuit that gives the compiled kernel every kind of step (product state,
permutation, batched phases, shared dense blocks holding rotations, controlled rotations and
multi-wire permutations, per-row two-wire blocks with a one-wire gate inside) and measures
a Z word and a sum: its values and both gradients equal the eager engine's and
default.qubit's in double precision. Compiling takes tens of seconds here, so the kernel is
compiled once for the module and its tests reuse it (same batch, precision and grad mode).
"""

from __future__ import annotations

import shutil

import pennylane as qml
import pytest
import torch

from hqray.errors import CircuitError
from hqray.quantum.compiler import program_for, record_tape, run_qfunc
from hqray.quantum.engine import FallbackWarning

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                reason="torch.compile's CPU code needs a C++ compiler")

N_WIRES, ROWS = 5, 7
OUTPUT_WEIGHTS = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)


def mixed(inputs, weights):
    for wire in range(N_WIRES):
        qml.RY(inputs[..., wire], wires=wire)
    qml.CNOT([0, 1]), qml.CNOT([2, 3]), qml.CNOT([4, 0])
    qml.RZ(weights[0], 0), qml.IsingZZ(weights[1], [1, 4]), qml.CRZ(0.5 * inputs[..., 1] + 0.1, [2, 3])
    qml.Rot(weights[2], weights[3], weights[4], wires=1), qml.CRX(weights[5], [1, 2])
    qml.Hadamard(3), qml.CNOT([3, 4])
    qml.IsingXX(inputs[..., 2], [0, 3]), qml.RX(weights[6], 0)
    qml.PhaseShift(weights[7], 4), qml.Toffoli([0, 1, 2]), qml.SWAP([1, 4])
    qml.CRY(weights[8], [4, 2]), qml.IsingYY(weights[9], [0, 2])
    return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(1) @ qml.PauliZ(3)),
            qml.expval(qml.PauliZ(2) + 0.5 * qml.PauliZ(4))]


mixed.hqray_static_key = ("tests.quantum.test_jit", "mixed")  # recorded once per shape, as registered circuits are


def arguments(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(ROWS, N_WIRES, generator=generator, dtype=torch.float64) * 3,
            torch.rand(10, generator=generator, dtype=torch.float64) * 6)


def outputs_and_gradients(inputs, weights, jit: bool):
    x, w = inputs.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    out = run_qfunc(mixed, N_WIRES, x, w, jit=jit)
    (out * OUTPUT_WEIGHTS).sum().backward()
    return out.detach(), x.grad, w.grad


def test_the_circuit_takes_every_kind_of_step():
    inputs, weights = arguments(0)
    program = program_for(record_tape(mixed, inputs, weights).operations, N_WIRES, ROWS)
    kinds = {(step.kind, step.batched, len(step.wires)) for step in program.steps}
    assert {("product", True, 5), ("perm", False, 5), ("diag", True, 5), ("dense", True, 2)} <= kinds, kinds
    assert any(kind == "dense" and not batched and wires == 4 for kind, batched, wires in kinds), kinds


@pytest.mark.parametrize("seed", [0, 1])  # the second call reuses the compiled kernel
def test_values_and_gradients_equal_the_eager_engine_and_default_qubit(seed):
    inputs, weights = arguments(seed)
    compiled = outputs_and_gradients(inputs, weights, jit=True)
    eager = outputs_and_gradients(inputs, weights, jit=False)
    for got, expected in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    node = qml.QNode(mixed, qml.device("default.qubit", wires=N_WIRES), interface="torch")
    torch.testing.assert_close(compiled[0], torch.stack(list(node(inputs, weights)), dim=1), atol=1e-10, rtol=0)


def test_nan_inputs_are_named_like_the_eager_engine():
    inputs, weights = arguments(2)
    inputs[3, 1] = float("nan")
    with pytest.raises(CircuitError, match=r"inputs contain NaN/inf \(first rows: \[3\]\)"):
        outputs_and_gradients(inputs, weights, jit=True)


def test_a_circuit_it_cannot_take_runs_eagerly_with_a_warning_naming_why():
    def unrecorded(inputs, weights):  # no static key: recorded per call, nothing to compile once
        qml.RY(inputs[..., 0], wires=0)
        qml.RX(weights[0], wires=0)
        return qml.expval(qml.PauliZ(0))

    inputs, weights = torch.rand(4, 1, dtype=torch.float64), torch.rand(1, dtype=torch.float64)
    with pytest.warns(FallbackWarning, match="jit needs a circuit recorded once"):
        got = run_qfunc(unrecorded, 1, inputs, weights, jit=True)
    torch.testing.assert_close(got[:, 0], torch.cos(inputs[:, 0]) * torch.cos(weights[0]))


def test_a_spec_with_jit_runs_on_the_compiled_strategy_and_equals_it_without():
    from hqray.quantum.engine import execute, plan
    from hqray.quantum.spec import CircuitSpec

    spec = CircuitSpec(n_qubits=2, ansatz="strongly_entangling", n_layers=1, precision="double", jit=True)
    assert plan(spec, batch=4).strategy == "compiled"
    inputs = torch.rand(4, 2, dtype=torch.float64)
    weights = torch.rand(spec.weight_shape, dtype=torch.float64, requires_grad=True)
    compiled = execute(spec, inputs, weights)
    compiled.sum().backward()
    eager_weights = weights.detach().clone().requires_grad_(True)
    eager = execute(spec.model_copy(update={"jit": False}), inputs, eager_weights)
    eager.sum().backward()
    torch.testing.assert_close(compiled, eager, atol=1e-10, rtol=0)
    torch.testing.assert_close(weights.grad, eager_weights.grad, atol=1e-10, rtol=0)
