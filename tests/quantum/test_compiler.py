"""The tape compiler and the circuit registry against PennyLane's default.qubit.

Every registered embedding x ansatz pair (with re-uploading where it applies), and a user
circuit with many gate and measurement kinds, equal default.qubit row by row in double
precision, values and gradients.
"""

from __future__ import annotations

import itertools

import numpy as np
import pennylane as qml
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqray.errors import CircuitError
from hqray.quantum.circuits import Circuit, get_circuit, list_circuits, register_circuit
from hqray.quantum.compiler import UnsupportedOperation, program_for, record_tape, run_qfunc, supported

EMBEDDINGS = [entry.name for entry in list_circuits("embedding")]
ANSATZE = [entry.name for entry in list_circuits("ansatz")]


def reference(qfunc, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """default.qubit, one QNode call per row (the slow, trusted path)."""
    node = qml.QNode(qfunc, qml.device("default.qubit", wires=n_wires), interface="torch", diff_method="backprop")
    rows = []
    for row in inputs:
        result = node(row[None, :], weights)
        values = result if isinstance(result, (list, tuple)) else [result]
        rows.append(torch.cat([torch.as_tensor(v).reshape(-1) for v in values]))
    return torch.stack(rows)


def compositions():
    for embedding, ansatz in itertools.product(EMBEDDINGS, ANSATZE):
        for reupload in (False, True):
            try:
                yield Circuit(n_qubits=4, embedding=embedding, ansatz=ansatz, n_layers=2, reupload=reupload)
            except CircuitError:  # a pair that cannot re-upload says so (tested below)
                continue


@pytest.mark.parametrize("circuit", list(compositions()), ids=lambda c: f"{c.embedding}-{c.ansatz}-{c.reupload}")
def test_every_registered_pair_equals_default_qubit_with_gradients(circuit):
    generator = torch.Generator().manual_seed(7)
    width = min(4, get_circuit(circuit.embedding).input_width(4))  # the hamiltonian embedding takes n - 1
    inputs = (torch.rand(4, width, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
    weights = (torch.rand(circuit.weight_shape, generator=generator, dtype=torch.float64) * 6).requires_grad_(True)
    ours = circuit.run(inputs, weights)
    theirs = reference(circuit.qfunc(), 4, inputs, weights)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    probe = torch.linspace(0.5, 1.5, ours.numel(), dtype=torch.float64).reshape(ours.shape)
    our_grads = torch.autograd.grad((ours * probe).sum(), [inputs, weights])
    their_grads = torch.autograd.grad((theirs * probe).sum(), [inputs, weights])
    adjoint = run_qfunc(circuit.qfunc(), 4, inputs, weights, diff_method="adjoint")
    adjoint_grads = torch.autograd.grad((adjoint * probe).sum(), [inputs, weights])
    for mine, by_adjoint, expected in zip(our_grads, adjoint_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, expected, atol=1e-9, rtol=0)
        torch.testing.assert_close(by_adjoint, expected, atol=1e-9, rtol=0)
    assert our_grads[1].abs().sum() > 0  # the weights matter: a constant circuit would pass the rest


def user_circuit(inputs, weights):
    """Gates of every kind the compiler treats differently, and several measurements."""
    qml.AngleEmbedding(inputs, wires=range(5), rotation="X")
    qml.Hadamard(wires=0)
    qml.Toffoli(wires=[0, 1, 2])
    qml.SWAP(wires=[3, 4])
    qml.MultiControlledX(wires=[0, 1, 2, 3])
    qml.CRX(weights[0], wires=[4, 0])
    qml.MultiRZ(weights[1], wires=[0, 1, 2, 3, 4])  # diagonal on five wires
    qml.IsingXX(weights[2], wires=[1, 3])
    qml.PhaseShift(inputs[..., 2] * weights[3], wires=2)  # a data-dependent diagonal gate
    qml.QubitUnitary(qml.matrix(qml.Rot(0.3, 0.4, 0.5, wires=0) @ qml.RX(0.7, wires=1)), wires=[2, 1])
    qml.S(wires=4)
    qml.T(wires=3)
    hamiltonian = qml.Hamiltonian([0.5, -1.5, 2.0], [qml.PauliX(0) @ qml.PauliY(2), qml.PauliZ(4), qml.Identity(1)])
    return [qml.expval(qml.PauliX(0) @ qml.PauliY(2) @ qml.PauliZ(4)), qml.expval(hamiltonian),
            qml.expval(qml.PauliZ(1) + 0.5 * qml.PauliX(3)), qml.probs(wires=[3, 1])]


def test_a_users_circuit_with_every_gate_kind_equals_default_qubit():
    generator = torch.Generator().manual_seed(3)
    inputs = (torch.rand(6, 5, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
    weights = (torch.rand(4, generator=generator, dtype=torch.float64) * 6).requires_grad_(True)
    ours = run_qfunc(user_circuit, 5, inputs, weights)
    theirs = reference(user_circuit, 5, inputs, weights)
    assert ours.shape == (6, 3 + 4)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    mine = torch.autograd.grad(ours.sum(), [inputs, weights])
    expected = torch.autograd.grad(theirs.sum(), [inputs, weights])
    for a, b in zip(mine, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_state_measurement_and_single_precision():
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(3))
        qml.StronglyEntanglingLayers(weights, wires=range(3))
        return qml.state()

    inputs = torch.rand(5, 3, dtype=torch.float64)
    weights = torch.rand(2, 3, 3, dtype=torch.float64)
    ours = run_qfunc(circuit, 3, inputs, weights)
    node = qml.QNode(circuit, qml.device("default.qubit", wires=3), interface="torch")
    theirs = torch.stack([node(row[None, :], weights).reshape(-1) for row in inputs])
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    single = run_qfunc(circuit, 3, inputs.float(), weights.float())
    assert single.dtype == torch.complex64
    torch.testing.assert_close(single.to(torch.complex128), theirs, atol=1e-5, rtol=0)


def test_permutation_gates_are_gathers_and_run_basis_states_exactly():
    def circuit(inputs, weights):
        qml.BasisEmbedding(inputs[0].long().tolist(), wires=range(3))
        qml.Toffoli(wires=[0, 1, 2])
        qml.SWAP(wires=[0, 2])
        return qml.probs(wires=range(3))

    inputs = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    probabilities = run_qfunc(circuit, 3, inputs, torch.zeros(1))
    assert probabilities[0].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]  # |110> -> |111> -> |111>
    tape = record_tape(circuit, inputs, torch.zeros(1))
    program = program_for(supported(tape, 3), 3, batch=1)
    assert [step.kind for step in program.steps] == ["product", "perm"]  # Toffoli and SWAP: one gather
    assert program.steps[1].index.tolist() == [0, 4, 2, 7, 1, 5, 3, 6]  # new[j] = old[index[j]]


def fusion_circuit(inputs, weights):
    """Embedding, a shared block, data-dependent phases, a permutation run, a controlled gate."""
    qml.AngleEmbedding(inputs, wires=range(4), rotation="Y")   # one product state, no passes
    qml.Hadamard(wires=3)                                       # ... still wire by wire
    qml.StronglyEntanglingLayers(weights, wires=range(4))      # shared: dense blocks
    qml.RZ(inputs[..., 0], wires=0)                             # per-row phases ...
    qml.IsingZZ(inputs[..., 1] * inputs[..., 2], wires=[1, 2])  # ... multiplied into one vector
    qml.CNOT(wires=[0, 1])
    qml.SWAP(wires=[1, 3])                                      # two gathers composed into one
    qml.CRY(inputs[..., 3], wires=[3, 0])                       # a per-row 2-wire matrix
    return [qml.expval(qml.PauliZ(w)) for w in range(4)]


@pytest.mark.parametrize("batch", [4, 100_000])
def test_gates_fuse_into_few_steps_and_the_result_is_unchanged(batch):
    generator = torch.Generator().manual_seed(5)
    inputs = (torch.rand(batch, 4, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
    weights = (torch.rand(2, 4, 3, generator=generator, dtype=torch.float64) * 6).requires_grad_(True)
    program = program_for(supported(record_tape(fusion_circuit, inputs, weights), 4), 4, batch)
    kinds = [step.kind for step in program.steps]
    assert kinds[0] == "product" and program.steps[0].batched
    assert max(len(step.wires) for step in program.steps if step.kind == "dense" and not step.batched) == 4
    assert kinds[-3:] == ["diag", "perm", "dense"] and program.steps[-3].batched and program.steps[-1].batched
    assert len(kinds) < 26 / 2  # 26 gates after decomposition
    rows = slice(0, 4)
    ours = run_qfunc(fusion_circuit, 4, inputs, weights)[rows]
    theirs = reference(fusion_circuit, 4, inputs[rows], weights)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    expected = torch.autograd.grad(theirs.sum(), [inputs, weights])
    for method in ("adjoint", "backprop"):
        mine = torch.autograd.grad(run_qfunc(fusion_circuit, 4, inputs, weights, diff_method=method)[rows].sum(),
                                   [inputs, weights])
        torch.testing.assert_close(mine[0][rows], expected[0][rows], atol=1e-9, rtol=0)
        if batch == 4:
            torch.testing.assert_close(mine[1], expected[1], atol=1e-9, rtol=0)


def test_a_structure_is_compiled_once_and_parameters_are_read_per_call():
    inputs = torch.rand(3, 4, dtype=torch.float64)
    weights = torch.rand(2, 4, 3, dtype=torch.float64)
    operations = supported(record_tape(fusion_circuit, inputs, weights), 4)
    first = program_for(operations, 4, 3)
    other = supported(record_tape(fusion_circuit, inputs + 1, weights * 2), 4)
    assert program_for(other, 4, 3) is first  # same structure: the cached program
    assert not torch.allclose(run_qfunc(fusion_circuit, 4, inputs, weights),
                              run_qfunc(fusion_circuit, 4, inputs + 1, weights * 2))


def test_circuit_errors_name_the_problem():
    with pytest.raises(CircuitError, match=r"unknown circuit 'zz'; registered: \['amplitude', 'angle'"):
        Circuit(embedding="zz")
    with pytest.raises(CircuitError, match="'angle' is an embedding, not an ansatz"):
        Circuit(ansatz="angle")
    with pytest.raises(CircuitError, match="reupload .* 'qcnn' has no layers"):
        Circuit(ansatz="qcnn", reupload=True)
    with pytest.raises(CircuitError, match="needs a power-of-2 number of qubits, got 3"):
        Circuit(n_qubits=3, ansatz="tree_tensor").run(torch.zeros(1, 3), torch.zeros(2, 2))
    with pytest.raises(CircuitError, match=r"weights have shape \(1, 4\); .* expects \(2, 4, 3\)"):
        Circuit().run(torch.zeros(1, 4), torch.zeros(1, 4))
    with pytest.raises(CircuitError, match="entangler"):
        Circuit(ansatz="hardware_efficient", ansatz_options={"entangler": "star"})
    with pytest.raises(CircuitError, match="amplitude embedding of 9 features needs at least 4 qubits"):
        Circuit(n_qubits=3, embedding="amplitude").run(torch.ones(1, 9), torch.zeros(2, 3, 3))

    def variance(inputs, weights):
        qml.RX(inputs[..., 0], wires=0)
        return qml.var(qml.PauliZ(0))

    with pytest.raises(UnsupportedOperation, match="measurement var"):
        run_qfunc(variance, 1, torch.zeros(2, 1), torch.zeros(1))

    def off_register(inputs, weights):
        qml.RX(inputs[..., 0], wires=5)
        return qml.expval(qml.PauliZ(5))

    with pytest.raises(CircuitError, match=r"uses wires \[5\]; expected integers 0..1"):
        run_qfunc(off_register, 2, torch.zeros(2, 1), torch.zeros(1))


def test_a_registered_user_ansatz_composes_with_every_embedding():
    @register_circuit("test_ladder", "ansatz", "a test's own ansatz: RX then a CZ ladder",
                      weight_shape=lambda n, layers, _: (layers, n), replace=True)
    def ladder(w, wires, options):
        for layer in range(w.shape[0]):
            for index, wire in enumerate(wires):
                qml.RX(w[layer, index], wires=wire)
            for a, b in zip(wires[:-1], wires[1:], strict=True):
                qml.CZ(wires=[a, b])

    for embedding in EMBEDDINGS:
        inputs = torch.rand(3, min(4, get_circuit(embedding).input_width(4)), dtype=torch.float64)
        circuit = Circuit(embedding=embedding, ansatz="test_ladder", n_layers=3)
        weights = torch.rand(circuit.weight_shape, dtype=torch.float64)
        np.testing.assert_allclose(circuit.run(inputs, weights).numpy(),
                                   reference(circuit.qfunc(), 4, inputs, weights).numpy(), atol=1e-10)
    with pytest.raises(CircuitError, match="already registered"):
        register_circuit("test_ladder", "ansatz", "again", weight_shape=lambda n, layers, _: (layers, n))


def test_what_the_compiler_cannot_run_falls_back_to_the_device_with_a_warning():
    from hqray.quantum import CircuitSpec, execute, plan
    from hqray.quantum.engine import FallbackWarning

    @register_circuit("test_measure_and_flip", "ansatz", "a mid-circuit measurement steering a flip",
                      weight_shape=lambda n, layers, _: (layers, n), replace=True)
    def measure_and_flip(w, wires, options):
        for index, wire in enumerate(wires):
            qml.RY(w[0, index], wires=wire)
        qml.cond(qml.measure(wires[0]), qml.PauliX)(wires[1])

    spec = CircuitSpec(n_qubits=2, ansatz="test_measure_and_flip", n_layers=1, precision="double")
    inputs = torch.rand(4, 2, dtype=torch.float64)
    weights = torch.rand(1, 2, dtype=torch.float64)
    with pytest.warns(FallbackWarning, match="MidMeasureMP .* using PennyLane's 'default.qubit'"):
        outputs = execute(spec, inputs, weights)
    assert plan(spec, 4).rejected["compiled"].startswith("operation MidMeasureMP")
    angles = inputs + weights  # RY(x) then RY(w) on each wire
    expected = torch.stack([torch.cos(angles[:, 0]), torch.cos(angles[:, 0]) * torch.cos(angles[:, 1])], dim=1)
    torch.testing.assert_close(outputs, expected, atol=1e-10, rtol=0)


def test_adjoint_gradients_equal_backprop_and_keep_no_graph_of_the_steps():
    generator = torch.Generator().manual_seed(11)
    inputs = (torch.rand(5, 5, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
    weights = (torch.rand(4, generator=generator, dtype=torch.float64) * 6).requires_grad_(True)
    adjoint = run_qfunc(user_circuit, 5, inputs, weights, diff_method="adjoint")
    backprop = run_qfunc(user_circuit, 5, inputs, weights, diff_method="backprop")
    assert type(adjoint.grad_fn).__name__ == "_AdjointBackward"  # one node, not one per step
    torch.testing.assert_close(adjoint, backprop, atol=1e-12, rtol=0)
    probe = torch.linspace(-1, 1, adjoint.numel(), dtype=torch.float64).reshape(adjoint.shape)
    expected = torch.autograd.grad((backprop * probe).sum(), [inputs, weights])
    auto = run_qfunc(user_circuit, 5, inputs, weights)  # small: the adjoint pass reads each step's kept input
    assert type(auto.grad_fn).__name__ == "_AdjointBackward" and auto.grad_fn.run.kept is not None
    for result in (adjoint, auto):
        for a, b in zip(torch.autograd.grad((result * probe).sum(), [inputs, weights]), expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert adjoint.grad_fn.run.kept is None  # asked for: states recomputed, memory independent of depth
    with pytest.raises(CircuitError, match="diff_method 'finite'"):
        run_qfunc(user_circuit, 5, inputs, weights, diff_method="finite")


# Every gate kind the compiler handles differently: (name, wires it takes, parameters).
RANDOM_GATES = [("RX", 1, 1), ("RY", 1, 1), ("RZ", 1, 1), ("Rot", 1, 3), ("PhaseShift", 1, 1), ("Hadamard", 1, 0),
                ("S", 1, 0), ("T", 1, 0), ("SX", 1, 0), ("PauliX", 1, 0), ("CNOT", 2, 0), ("CZ", 2, 0),
                ("SWAP", 2, 0), ("CRX", 2, 1), ("CRY", 2, 1), ("CRZ", 2, 1), ("IsingXX", 2, 1), ("IsingYY", 2, 1),
                ("IsingZZ", 2, 1), ("ControlledPhaseShift", 2, 1), ("CH", 2, 0), ("Toffoli", 3, 0),
                ("MultiRZ", 3, 1), ("MultiControlledX", 4, 0), ("ControlledRY", 3, 1)]


def random_gate_circuit(n_wires: int, draws: list[tuple[int, list[int], list[int]]]):
    """A quantum function from hypothesis' draws: per gate its kind, its wires and, per parameter,
    where it comes from (an input column, so per row; a weight, shared; or their product)."""
    def parameter(inputs, weights, source: int):
        column, kind = divmod(source, 3)
        x, w = inputs[..., column % inputs.shape[-1]], weights[column % weights.shape[0]]
        return (x, w, x * w)[kind]

    def qfunc(inputs, weights):
        qml.RY(inputs[..., 0], wires=0)  # every row differs (PennyLane then broadcasts its result too)
        for kind, wires, sources in draws:
            name, arity, _ = RANDOM_GATES[kind]
            params = [parameter(inputs, weights, s) for s in sources]
            if name == "ControlledRY":  # a controlled gate PennyLane builds from any base
                qml.ctrl(qml.RY(params[0], wires=wires[2]), control=wires[:2], control_values=[1, 0])
            else:
                getattr(qml, name)(*params, wires=wires)
        if n_wires == 1:
            return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliY(0)), qml.probs(wires=[0])]
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliX(n_wires - 1) @ qml.PauliY(0)),
                qml.probs(wires=[n_wires - 1, 0])]
    return qfunc


@st.composite
def gate_draws(draw, max_wires: int = 12, max_gates: int = 30):
    n_wires = draw(st.integers(1, max_wires))
    kinds = [i for i, (_, arity, _) in enumerate(RANDOM_GATES) if arity <= n_wires]
    draws = []
    for _ in range(draw(st.integers(1, max_gates))):
        kind = draw(st.sampled_from(kinds))
        _, arity, n_params = RANDOM_GATES[kind]
        wires = draw(st.permutations(range(n_wires)))[:arity]
        draws.append((kind, wires, [draw(st.integers(0, 3 * 4 - 1)) for _ in range(n_params)]))
    return n_wires, draws


@settings(max_examples=60, deadline=None)
@given(case=gate_draws(), batch=st.integers(1, 4), seed=st.integers(0, 1000), double=st.booleans(),
       method=st.sampled_from(["auto", "backprop", "adjoint"]))
def test_property_random_circuits_equal_default_qubit_with_gradients(case, batch, seed, double, method):
    n_wires, draws = case
    qfunc = random_gate_circuit(n_wires, draws)
    generator = torch.Generator().manual_seed(seed)
    dtype, tolerance = (torch.float64, 1e-6) if double else (torch.float32, 1e-4)
    inputs = (torch.rand(batch, 4, generator=generator, dtype=torch.float64) * 3).to(dtype).requires_grad_(True)
    weights = (torch.rand(4, generator=generator, dtype=torch.float64) * 6).to(dtype).requires_grad_(True)
    ours = run_qfunc(qfunc, n_wires, inputs, weights, diff_method=method)
    node = qml.QNode(qfunc, qml.device("default.qubit", wires=n_wires), interface="torch", diff_method="backprop")
    x, w = inputs.detach().double().requires_grad_(True), weights.detach().double().requires_grad_(True)
    result = node(x, w)
    theirs = torch.cat([torch.as_tensor(v).reshape(batch, -1) for v in result], dim=1)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours.double(), theirs, atol=tolerance, rtol=0)
    probe = torch.linspace(0.5, 1.5, ours.numel(), dtype=torch.float64).reshape(ours.shape)
    mine = torch.autograd.grad((ours.double() * probe).sum(), [inputs, weights], allow_unused=True)
    expected = torch.autograd.grad((theirs * probe).sum(), [x, w], allow_unused=True)
    for a, b, like in zip(mine, expected, (inputs, weights), strict=True):
        a = torch.zeros_like(like) if a is None else a
        b = torch.zeros_like(like, dtype=torch.float64) if b is None else b
        torch.testing.assert_close(a.double(), b, atol=tolerance * 10, rtol=0)


def test_python_float_parameters_keep_double_precision():
    # A constant angle given as a Python float was rounded through float32 (torch's default
    # dtype) before the double-precision matrix was built: errors of ~1e-8 in every output.
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(2))
        qml.Rot(0.1234567890123, 2.718281828459045, 1.4142135623730951, wires=0)
        qml.IsingXX(0.3333333333333333, wires=[0, 1])
        qml.RY(weights[0], wires=1)
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliX(1))]

    inputs = torch.tensor([[0.3, 1.1], [2.0, 0.7]], dtype=torch.float64)
    weights = torch.tensor([0.9], dtype=torch.float64)
    torch.testing.assert_close(run_qfunc(circuit, 2, inputs, weights), reference(circuit, 2, inputs, weights),
                               atol=1e-13, rtol=0)


@pytest.mark.parametrize("kept", range(5))
def test_a_state_is_re_laid_out_the_same_by_copy_or_gather_with_gradients(kept):
    """`_permute_state` copies when exactly the last `kept` wires stay in place (4) and gathers
    by an index otherwise (0-3): both give the axis permutation's layout, and its gradient."""
    from hqray.quantum.program import _permute_state

    n = 6
    generator = torch.Generator().manual_seed(kept)
    before = tuple(torch.randperm(n, generator=generator).tolist())
    head = list(before[: n - kept])
    while len(head) > 1 and head[-1] == before[n - kept - 1]:
        head = [head[i] for i in torch.randperm(len(head), generator=generator).tolist()]
    after = tuple(head) + before[n - kept:]
    assert after != before
    state = torch.randn(3, 2**n, dtype=torch.complex128, generator=generator, requires_grad=True)
    expected = state.reshape(3, *[2] * n).permute(0, *[1 + before.index(w) for w in after]).reshape(3, -1)
    got = _permute_state(state, before, after, n)
    assert torch.equal(got, expected)
    weights = torch.randn(2**n, dtype=torch.complex128, generator=generator)
    (grad_got,) = torch.autograd.grad((got * weights).real.sum(), state)
    (grad_expected,) = torch.autograd.grad((expected * weights).real.sum(), state)
    assert torch.equal(grad_got, grad_expected)
    assert torch.equal(_permute_state(got, after, before, n), state)


def test_a_permutation_of_amplitudes_is_differentiable_to_second_order():
    """`relabel` differentiates by gathering with the inverse permutation: checked against
    finite differences, first and second order (its backward is itself a relabel)."""
    from hqray.quantum.program import relabel

    generator = torch.Generator().manual_seed(3)
    index = torch.randperm(8, generator=generator)
    inverse = torch.argsort(index)
    state = torch.randn(2, 8, dtype=torch.complex128, generator=generator, requires_grad=True)
    assert torch.equal(relabel(state, index, inverse), state[:, index])

    def squared(x):
        return relabel(x, index, inverse) ** 2 * torch.arange(8)  # non-linear: second order is not zero

    assert torch.autograd.gradcheck(squared, (state,))
    assert torch.autograd.gradgradcheck(squared, (state,))
