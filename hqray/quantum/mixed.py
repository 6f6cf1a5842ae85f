"""Batched density-matrix simulation of any circuit under a noise model, with exact shot noise.

A circuit (any PennyLane quantum function, recorded as a tape) is decomposed into one- and
two-qubit gates, as a device runs it, and each gate is followed by the channels its
:class:`~hqray.quantum.noise.NoiseModel` implies. The batch's density matrices
``(B, 2^n, 2^n)`` are held as a ``(B, 2, ..., 2)`` tensor of ``2n`` axes (rows, then
columns) and every step is one superoperator on its wires' row and column axes:

- a one-qubit gate and the channels after it are fused into one ``4 x 4`` superoperator
  (``sum_k K_k U (.) U^dag K_k^dag``), and consecutive one-qubit steps on a wire into one;
- a two-qubit gate is one ``16 x 16`` superoperator ``U (x) conj(U)``, its channels ``4 x 4``
  ones per wire;
- data-dependent gates carry a batch of superoperators, one per row.

Measurements are what hardware reports: probabilities in the computational basis after the
readout's confusion matrices, and Pauli-word expectation values from the distribution
measured in the word's eigenbasis (X and Y factors rotated to Z), so readout errors act on
them as on a device. With ``shots``, each measurement's outcome counts are drawn from its
exact distribution, one multinomial per row (seeded): shot noise as a device's, without
simulating shots one by one. Outputs are differentiable (torch autograd through the
superoperators); with shots, the gradient is the exact noisy expectation's, the value the
sampled estimate.

**Example**

>>> import pennylane as qml, torch
>>> from hqray.quantum.noise import NoiseModel
>>> def circuit(inputs, weights):
...     qml.RY(inputs[..., 0], wires=0)
...     qml.CNOT(wires=[0, 1])
...     return qml.expval(qml.PauliZ(1))
>>> noise = NoiseModel(depolarizing=0.1)  # after each gate, on each of its wires: <Z> shrinks by 1 - 4p/3
>>> out = run_noisy(circuit, 2, torch.zeros(2, 1, dtype=torch.float64), torch.zeros(0), noise)
>>> [round(v, 6) for v in out.squeeze(1).tolist()], round((1 - 0.4 / 3) ** 2, 6)
([0.751111, 0.751111], 0.751111)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

from hqray.errors import CircuitError
from hqray.quantum.noise import NoiseModel, _gates
from hqray.quantum.superoperators import DensityStep, kron_conj, noisy_program

__all__ = ["run_noisy", "run_noisy_tape", "DensityStep", "MAX_DENSITY_QUBITS"]

MAX_DENSITY_QUBITS = 14  # 4^14 amplitudes (4 GB in complex128) per row: beyond, trajectories are the tool
# Rows of density matrices held at once: chunks keep each step's temporaries under this.
CHUNK_BYTES = 256 * 2**20
_PAULI_ROTATIONS = {"PauliX": "H", "PauliY": "Y->Z", "PauliZ": None, "Identity": None}


def _matrix(op, like: torch.Tensor) -> torch.Tensor:
    """The gate's matrix (``(B, d, d)`` when its parameters are batched), differentiable."""
    rotation = _ROTATIONS.get(op.name)
    if rotation is not None:
        return rotation(*[p if torch.is_tensor(p) else torch.tensor(float(p), dtype=torch.float64, device=like.device)
                          for p in op.data]).to(like.dtype)
    if op.name in _FIXED:  # no parameters: one matrix per gate kind
        return _fixed_matrix(op.name, like.dtype, str(like.device))
    return torch.as_tensor(qml.matrix(op, wire_order=op.wires), device=like.device).to(like.dtype)


def _rotation(pauli: str):
    """``exp(-i theta P / 2)`` for a one-qubit Pauli P, batched over theta (PennyLane's RX/RY/RZ)."""
    def matrix(theta: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(theta / 2).to(torch.complex128), torch.sin(theta / 2).to(torch.complex128)
        zero = torch.zeros_like(c)
        if pauli == "X":
            rows = [[c, -1j * s], [-1j * s, c]]
        elif pauli == "Y":
            rows = [[c, -s], [s, c]]
        else:
            rows = [[c - 1j * s, zero], [zero, c + 1j * s]]
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
    return matrix


def _rot(phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """PennyLane's Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)."""
    return _rotation("Z")(omega) @ _rotation("Y")(theta) @ _rotation("Z")(phi)


_ROTATIONS = {"RX": _rotation("X"), "RY": _rotation("Y"), "RZ": _rotation("Z"), "Rot": _rot}
_FIXED = {"CNOT", "CZ", "SWAP", "Hadamard", "PauliX", "PauliY", "PauliZ", "S", "T"}


@lru_cache(maxsize=64)
def _fixed_matrix(name: str, dtype: torch.dtype, device: str) -> torch.Tensor:
    gate = getattr(qml, name)
    return torch.as_tensor(qml.matrix(gate(wires=range(gate.num_wires))), device=device).to(dtype)


def _steps(gates: Sequence, matrices: Sequence[torch.Tensor], noise: NoiseModel | None,
           like: torch.Tensor) -> list[DensityStep]:
    """Device gates with their (possibly batched) matrices, and their channels, as fused steps
    (the structure compiled once: :func:`~hqray.quantum.superoperators.noisy_program`)."""
    program = noisy_program(gates, noise, like)
    return program.steps(program.superoperators(matrices))


def _apply_step(rho: torch.Tensor, step: DensityStep, n_wires: int) -> torch.Tensor:
    """``rho`` (B, 2, ..., 2: rows then columns) after one superoperator on its wires."""
    k = len(step.wires)
    if k == 1:  # a view (B, left, 2, middle, 2, right): no copy before the product
        wire, batch = step.wires[0], rho.shape[0]
        view = rho.reshape(batch, 2**wire, 2, 2 ** (n_wires - 1), 2, 2 ** (n_wires - 1 - wire))
        superoperator = step.superoperator.reshape(*step.superoperator.shape[:-2], 2, 2, 2, 2)
        equation = "pqrs,blrmsn->blpmqn" if superoperator.ndim == 4 else "bpqrs,blrmsn->blpmqn"
        return torch.einsum(equation, superoperator, view).reshape(rho.shape)
    axes = [1 + w for w in step.wires] + [1 + n_wires + w for w in step.wires]
    if step.superoperator.ndim == 2:  # one for all rows: the step's axes first, one matrix product
        moved = rho.movedim(axes, list(range(2 * k)))
        flat = step.superoperator @ moved.reshape(4**k, -1)
        return flat.reshape(moved.shape).movedim(list(range(2 * k)), axes)
    moved = rho.movedim(axes, list(range(1, 1 + 2 * k)))
    shape = moved.shape
    flat = step.superoperator @ moved.reshape(shape[0], 4**k, -1)
    return flat.reshape(shape).movedim(list(range(1, 1 + 2 * k)), axes)


def _initial(batch: int, n_wires: int, dtype, device) -> torch.Tensor:
    """|0><0| on every row. State preparations run as the gates they decompose into, noisy
    like any other gates, as a device would run them."""
    rho = torch.zeros((batch, 4**n_wires), dtype=dtype, device=device)
    rho[:, 0] = 1
    return rho.reshape(batch, *[2] * (2 * n_wires))


class DensityMatrices:
    """The batch's density matrices, measured in a basis: the diagonal after basis rotations."""

    def __init__(self, rho: torch.Tensor, n_wires: int):
        self.rho, self.n_wires = rho, n_wires
        self.batch, self.real_dtype, self.device = rho.shape[0], rho.real.dtype, rho.device

    def probabilities(self, rotations: dict[int, str]) -> torch.Tensor:
        """Computational-basis probabilities ``(B, 2^n)`` after rotating ``{wire: rotation}``."""
        rho, n = self.rho, self.n_wires
        for wire, rotation in rotations.items():
            matrix = torch.as_tensor(ROTATIONS[rotation], device=rho.device).to(rho.dtype)
            rho = _apply_step(rho, DensityStep((wire,), kron_conj(matrix)), n)
        return torch.diagonal(rho.reshape(rho.shape[0], 2**n, 2**n), dim1=1, dim2=2).real


def _basis_distribution(state, wires: list[int], rotations: dict[int, str], n_wires: int,
                        confusion: np.ndarray | None) -> torch.Tensor:
    """Outcome probabilities ``(B, 2^len(wires))`` of measuring ``wires`` (X/Y rotated to Z), readout
    included; ``state`` is anything with ``probabilities(rotations)`` (density matrices, trajectories)."""
    if hasattr(state, "marginal"):  # states that know marginals without the full distribution
        marginal = state.marginal(wires, rotations)
        return _with_readout(marginal, wires, confusion)
    full = state.probabilities(rotations)
    batch = full.shape[0]
    probabilities = full.reshape(batch, *[2] * n_wires)
    others = [1 + w for w in range(n_wires) if w not in wires]
    marginal = probabilities.sum(dim=others) if others else probabilities
    order = sorted(wires)
    marginal = marginal.permute(0, *[1 + order.index(w) for w in wires])
    return _with_readout(marginal.reshape(batch, -1), wires, confusion)


def _with_readout(marginal: torch.Tensor, wires: list[int], confusion: np.ndarray | None) -> torch.Tensor:
    """``(B, 2^m)`` outcome probabilities of ``wires`` after each wire's readout confusion."""
    if confusion is None:
        return marginal
    batch = marginal.shape[0]
    marginal = marginal.reshape(batch, *[2] * len(wires))
    for axis, wire in enumerate(wires):  # measured = M @ prepared, per wire
        matrix = torch.as_tensor(confusion[wire], dtype=marginal.dtype, device=marginal.device)
        marginal = torch.movedim(torch.tensordot(marginal, matrix, dims=([1 + axis], [1])), -1, 1 + axis)
    return marginal.reshape(batch, -1)


ROTATIONS = {  # basis changes that map an X / Y eigenbasis measurement to a Z one
    "H": np.array([[1, 1], [1, -1]]) / np.sqrt(2),
    "Y->Z": np.array([[1, -1j], [1, 1j]]) / np.sqrt(2),  # H S^dag
}


def _pauli_word(observable) -> dict[int, str] | None:
    """``{wire: Pauli name}`` of a Pauli word (a product of X, Y, Z, I), else None."""
    word = observable.pauli_rep
    if word is None or len(word) != 1:
        return None
    (term, coefficient), = word.items()
    if abs(complex(coefficient) - 1) > 1e-12:
        return None
    names = {"X": "PauliX", "Y": "PauliY", "Z": "PauliZ", "I": "Identity"}
    return {int(w): names[p] for w, p in term.items()}


class _Sampler:
    """Draws one multinomial per row from a distribution (``None`` shots: the exact distribution)."""

    def __init__(self, shots: int | None, seed: int | None):
        self.shots = shots
        self.rng = np.random.default_rng(seed)

    def __call__(self, distribution: torch.Tensor) -> torch.Tensor:
        if self.shots is None:
            return distribution
        p = distribution.detach().cpu().double().clamp(min=0).numpy()
        p = p / p.sum(axis=1, keepdims=True)
        counts = self.rng.multinomial(self.shots, p)
        sampled = torch.as_tensor(counts / self.shots, dtype=distribution.dtype, device=distribution.device)
        # The estimate's value with the exact distribution's gradient: every output is linear in
        # the distribution, so gradients are those of the exact noisy expectation.
        return sampled + (distribution - distribution.detach()) if distribution.requires_grad else sampled


def _expval(observable, rho, n_wires: int, confusion, sample: _Sampler) -> torch.Tensor:
    from hqray.quantum.compiler import _is_sum

    if _is_sum(observable):
        coefficients, terms = observable.terms()
        return sum(float(c) * _expval(t, rho, n_wires, confusion, sample) for c, t in zip(coefficients, terms,
                                                                                            strict=True))
    word = _pauli_word(observable)
    if word is None:
        raise CircuitError(f"a noisy device measures Pauli words (products of X, Y, Z) and their sums; "
                           f"{observable!r} is not one (decompose it into Pauli words)")
    measured = [w for w, name in word.items() if name != "Identity"]
    if not measured:
        return torch.ones(rho.batch, dtype=rho.real_dtype, device=rho.device)
    rotations = {w: ("H" if word[w] == "PauliX" else "Y->Z") for w in measured if word[w] != "PauliZ"}
    if sample.shots is None and confusion is None and hasattr(rho, "word"):  # nothing to draw or confuse
        return rho.word(measured, rotations)
    distribution = sample(_basis_distribution(rho, measured, rotations, n_wires, confusion))
    return distribution @ _parity_signs(len(measured), distribution.dtype, str(distribution.device))


@lru_cache(maxsize=64)
def _parity_signs(m: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """``(-1)^(bits of x)`` for each outcome ``x`` of ``m`` wires: a Pauli word's eigenvalues."""
    return torch.tensor([(-1) ** bin(index).count("1") for index in range(2**m)], dtype=dtype, device=device)


def _measure(measurements: Sequence, rho, n_wires: int, confusion, sample: _Sampler) -> torch.Tensor:
    """Every measurement of ``rho`` (anything with ``probabilities(rotations)``), sampled by ``sample``."""
    from hqray.quantum.compiler import _measurement_kind

    outputs = []
    for measurement in measurements:
        kind = _measurement_kind(measurement)
        if kind == "expval":
            outputs.append(_expval(measurement.obs, rho, n_wires, confusion, sample)[:, None])
        elif kind == "probs":
            wires = [int(w) for w in measurement.wires] or list(range(n_wires))
            outputs.append(sample(_basis_distribution(rho, wires, {}, n_wires, confusion)))
        else:
            raise CircuitError(f"measurement {measurement!r}: a noisy device reports expval of Pauli words "
                               "and probs, not the state")
    if not outputs:
        raise CircuitError("the circuit measures nothing; return qml.expval or qml.probs")
    return torch.cat(outputs, dim=1)


def run_noisy_tape(tape: qml.tape.QuantumScript, n_wires: int, batch: int, noise: NoiseModel | None,
                   shots: int | None = None, seed: int | None = None, dtype: torch.dtype = torch.complex128,
                   device: torch.device | str = "cpu", diff_method: str = "exact",
                   gates: Sequence | None = None, matrices: Sequence | None = None) -> torch.Tensor:
    """Runs a recorded (broadcast) tape on ``batch`` density matrices; returns ``(batch, outputs)``.

    ``gates`` (the tape's device gates) and ``matrices`` (theirs, None for parameter-free
    gates) may come from the caller, as a traced circuit has them without decomposing.

    ``diff_method="exact"`` differentiates the density matrices (torch autograd);
    ``"parameter-shift"`` runs the circuit and, for every trainable gate parameter, its two
    shifted versions, all rows of all of them as one batch (one job, as hardware takes it),
    each sampled with the spec's shots, and differentiates by the two-term shift rule.
    """
    from hqray.quantum.compiler import _check_wires
    from hqray.quantum.heisenberg import run_heisenberg

    if n_wires > MAX_DENSITY_QUBITS:
        raise CircuitError(f"{n_wires} qubits: a density matrix holds 4^n amplitudes per row; at most "
                           f"{MAX_DENSITY_QUBITS} qubits run this way")
    if diff_method not in ("exact", "parameter-shift"):
        raise CircuitError(f"diff_method {diff_method!r}: expected 'exact' or 'parameter-shift'")
    _check_wires(tape, n_wires)
    like = torch.zeros((), dtype=dtype, device=device)
    confusion = noise.readout_matrices(n_wires) if noise is not None and _has_readout_error(noise) else None
    sampler = _Sampler(shots, seed)
    gates = _gates(tape.operations) if gates is None else gates  # device gates, when the caller has them
    if diff_method == "parameter-shift" and torch.is_grad_enabled():
        return _parameter_shift(gates, tape.measurements, n_wires, batch, noise, confusion, sampler, like)
    matrices = [_matrix(op, like) for op in gates] if matrices is None else matrices
    by_row = [matrix is not None and matrix.ndim == 3 for matrix in matrices]
    state = run_heisenberg(gates, matrices, by_row, tape.measurements, n_wires, batch, noise, like)
    if state is None:  # not a data-then-shared-gates circuit: the rows' density matrices
        rho = _initial(batch, n_wires, dtype, device)
        for step in _steps(gates, matrices, noise, like):
            rho = _apply_step(rho, step, n_wires)
        state = DensityMatrices(rho, n_wires)
    return _measure(tape.measurements, state, n_wires, confusion, sampler)


# Gates whose every parameter enters as exp(-i theta P / 2) with P a Pauli word (up to a global
# phase): d<O>/d theta = (<O>(theta + pi/2) - <O>(theta - pi/2)) / 2, exactly, noise included.
TWO_TERM_GATES = {"RX", "RY", "RZ", "PhaseShift", "U1", "Rot", "U2", "U3", "IsingXX", "IsingYY", "IsingZZ",
                  "MultiRZ", "PauliRot"}


def _parameter_shift(gates: Sequence, measurements: Sequence, n_wires: int, batch: int, noise, confusion,
                     sampler: _Sampler, like: torch.Tensor) -> torch.Tensor:
    trainable = [(k, i) for k, op in enumerate(gates) for i, p in enumerate(op.data)
                 if torch.is_tensor(p) and p.requires_grad]
    unshiftable = sorted({gates[k].name for k, _ in trainable if gates[k].name not in TWO_TERM_GATES})
    if unshiftable:
        raise CircuitError(f"parameter-shift needs gates with a two-term shift rule ({sorted(TWO_TERM_GATES)}); "
                           f"the circuit trains {unshiftable}")
    from hqray.quantum.heisenberg import run_heisenberg

    variants = 1 + 2 * len(trainable)
    with torch.no_grad():
        matrices, per_row = zip(*[_variant_matrices(op, k, trainable, variants, like) for k, op in enumerate(gates)],
                                strict=True)
        state = run_heisenberg(gates, list(matrices), list(per_row), measurements, n_wires, batch, noise, like,
                               variants=variants)
        if state is None:  # the rows' density matrices, every variant's rows one batch
            rows = [m if by_row or m.ndim == 2 else m.repeat_interleave(batch, dim=0)
                    for m, by_row in zip(matrices, per_row, strict=True)]
            rho = _initial(batch * variants, n_wires, like.dtype, like.device)
            for step in _steps(gates, rows, noise, like):
                rho = _apply_step(rho, step, n_wires)
            state = DensityMatrices(rho, n_wires)
        outputs = _measure(measurements, state, n_wires, confusion, sampler).reshape(variants, batch, -1)
    derivatives = [(outputs[1 + 2 * j] - outputs[2 + 2 * j]) / 2 for j in range(len(trainable))]
    params = [gates[k].data[i] for k, i in trainable]
    return _ShiftGradient.apply(derivatives, outputs[0], *params)


def _variant_matrices(op, index: int, trainable: list[tuple[int, int]], variants: int,
                      like: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The op's matrix in every variant, and whether it differs by row.

    A gate on data (a ``(B, d, d)`` matrix) gives ``(variants * B, d, d)``, variant-major; a
    shared gate that a variant shifts gives ``(variants, d, d)``; any other its one matrix.
    """
    base = _matrix(op, like)
    shifts = [(j, i) for j, (k, i) in enumerate(trainable) if k == index]
    by_row = base.ndim == 3
    if not shifts:
        return (base.repeat(variants, 1, 1) if by_row else base), by_row
    per_variant = [base] * variants
    for j, i in shifts:
        for sign, slot in ((1, 1 + 2 * j), (-1, 2 + 2 * j)):
            data = [p.detach() if torch.is_tensor(p) else p for p in op.data]
            data[i] = data[i] + sign * math.pi / 2
            per_variant[slot] = _matrix(qml.ops.functions.bind_new_parameters(op, data), like)
    return (torch.cat(per_variant) if by_row else torch.stack(per_variant)), by_row


class _ShiftGradient(torch.autograd.Function):
    """The sampled value forward; backward, each gate parameter's shift-rule derivative,
    which torch carries on to the inputs and weights the parameter came from."""

    @staticmethod
    def forward(ctx, derivatives, value, *params):
        ctx.derivatives, ctx.shapes = derivatives, [(p.shape, p.dtype) for p in params]
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        grads = []
        for derivative, (shape, dtype) in zip(ctx.derivatives, ctx.shapes, strict=True):
            per_row = (grad * derivative).sum(dim=-1)
            grads.append((per_row if per_row.shape == shape else per_row.sum().reshape(shape)).to(dtype))
        return (None, None, *grads)


def _has_readout_error(noise: NoiseModel) -> bool:
    matrices = noise.readout_matrices(1 if noise.device() is None else len(noise.device().qubits))
    return bool(np.any(matrices[:, 1, 0] > 0) or np.any(matrices[:, 0, 1] > 0))


def run_noisy(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor,
              noise: NoiseModel | None, shots: int | None = None, seed: int | None = None,
              diff_method: str = "exact") -> torch.Tensor:
    """``qfunc(inputs, weights)`` under ``noise`` on every row of ``inputs``: ``(B, outputs)``.

    Rows run in chunks so that each step's density matrices stay under :data:`CHUNK_BYTES`;
    with ``shots``, each chunk draws from its own stream of the seeded generator. A
    ``qfunc`` with a ``hqray_static_key`` attribute (a registered circuit's) is recorded once
    per argument shape (:mod:`hqray.quantum.tracing`) unless parameter-shift gradients are
    wanted; any other is recorded per call.
    """
    from hqray.quantum import heisenberg
    from hqray.quantum.compiler import record_tape

    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be (batch, features), got shape {tuple(inputs.shape)}")
    dtype = torch.complex64 if inputs.dtype == torch.float32 else torch.complex128
    like = torch.zeros((), dtype=dtype)
    shifting = diff_method == "parameter-shift" and torch.is_grad_enabled()
    traced = _traced(qfunc, inputs, weights) if not shifting else None
    if traced is not None:
        tape, gates = traced.script, traced.operations
        by_row = [gate.batched for gate in traced.gates]
    else:
        tape = record_tape(qfunc, inputs, weights)
        gates = _gates(tape.operations)
        by_row = [op.batch_size is not None for op in gates]  # broadcast over the rows
    if heisenberg.applies(gates, by_row, tape.measurements, n_wires, inputs.shape[0]):
        chunk = inputs.shape[0]  # product states per row: the Heisenberg path bounds its own memory
    else:
        per_row = 4**n_wires * like.element_size() * 2  # a step reads one density matrix, writes one
        if shifting:  # every row runs 1 + 2P times
            per_row *= 1 + 2 * sum(1 for op in gates for p in op.data if torch.is_tensor(p) and p.requires_grad)
        chunk = max(1, CHUNK_BYTES // per_row)
    chunks = (inputs.shape[0] + chunk - 1) // chunk
    seeds = np.random.SeedSequence(seed).spawn(chunks)
    outputs = []
    for index, start in enumerate(range(0, inputs.shape[0], chunk)):
        rows = inputs[start:start + chunk]
        stream = None if shots is None else int(seeds[index].generate_state(1)[0])
        if traced is not None:
            matrices = traced.matrices(rows, weights, dtype)
        else:
            matrices = None
            if chunks > 1:  # the tape recorded above holds every row
                tape = record_tape(qfunc, rows, weights)
                gates = _gates(tape.operations)
        outputs.append(run_noisy_tape(tape, n_wires, rows.shape[0], noise, shots, stream, dtype, inputs.device,
                                      diff_method, gates=gates, matrices=matrices))
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]


def _traced(qfunc: Callable, inputs: torch.Tensor, weights: torch.Tensor):
    """The circuit's :class:`~hqray.quantum.tracing.Trace` (with a ``script`` of its device gates
    and measurements), or None: not a static circuit, or one tracing cannot take."""
    from hqray.quantum.tracing import trace

    key = getattr(qfunc, "hqray_static_key", None)
    return None if key is None else trace(qfunc, key, inputs.shape[1], tuple(weights.shape), _gates)
