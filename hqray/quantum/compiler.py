"""A compiler from PennyLane tapes to batched torch state-vector programs.

Any PennyLane quantum function ``qfunc(inputs, weights)`` (``inputs`` of shape
``(B, features)``, used with PennyLane's broadcasting conventions, e.g.
``qml.RY(inputs[..., 0], wires=0)`` or ``qml.AngleEmbedding(inputs, ...)``) is recorded
as a tape on the real parameters, decomposed until every operation has a matrix (or
prepares a state), and run on a ``(B, 2, ..., 2)`` state tensor:

- a gate whose matrix is a permutation (X, CNOT, SWAP, Toffoli, multi-controlled X) is an
  index gather, no arithmetic;
- a diagonal gate (RZ, PhaseShift, CZ, MultiRZ, IsingZZ, ...) multiplies by a phase vector;
- any other gate applies its (batched) matrix to its wires only, one batched matmul;
- ``StatePrep`` / ``AmplitudeEmbedding`` set the state directly (normalised, padded).

Measurements: ``expval`` of any observable with a matrix (Pauli words, products, sums
and Hamiltonians, term by term), ``probs`` of all or some wires, and ``state``.
Gradients with respect to inputs and weights are torch autograd through these steps.

**Example**

>>> import pennylane as qml, torch
>>> def circuit(inputs, weights):
...     qml.AngleEmbedding(inputs, wires=[0, 1])
...     qml.CNOT(wires=[0, 1])
...     qml.RX(weights[0], wires=1)
...     return [qml.expval(qml.PauliZ(1)), qml.expval(qml.PauliX(0) @ qml.PauliY(1))]
>>> run_qfunc(circuit, 2, torch.zeros(3, 2), torch.zeros(1)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import pennylane as qml
import torch

from hqray.errors import CircuitError

__all__ = ["run_qfunc", "record_tape", "run_tape", "supported", "UnsupportedOperation"]

MAX_DECOMPOSITION_DEPTH = 10
STATE_PREPARATIONS = ("StatePrep", "AmplitudeEmbedding", "BasisState", "StatePrepBase")


class UnsupportedOperation(CircuitError):
    """An operation the compiler cannot run (no matrix and no decomposition), or a measurement it does not know."""


def record_tape(qfunc: Callable, inputs: torch.Tensor, weights: torch.Tensor) -> qml.tape.QuantumScript:
    """The tape ``qfunc(inputs, weights)`` records, with the real (broadcast) parameters."""
    return qml.tape.make_qscript(qfunc)(inputs, weights)


def _expanded(operations: Sequence[qml.operation.Operator], depth: int = 0) -> list[qml.operation.Operator]:
    """Operations decomposed until each has a matrix or prepares a state."""
    flat = []
    for op in operations:
        if op.name in STATE_PREPARATIONS or op.has_matrix:
            flat.append(op)
            continue
        if depth >= MAX_DECOMPOSITION_DEPTH or not op.has_decomposition:
            raise UnsupportedOperation(f"operation {op.name} on wires {list(op.wires)} has no matrix and no "
                                       "decomposition the compiler can run")
        flat.extend(_expanded(op.decomposition(), depth + 1))
    return flat


def _as_tensor(value, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, device=like.device).to(like.dtype)


def _permutation(matrix: torch.Tensor) -> torch.Tensor | None:
    """``perm`` with ``new[j] = old[perm[j]]`` when ``matrix`` permutes basis states, else None."""
    if matrix.ndim != 2 or matrix.requires_grad:
        return None
    magnitudes = matrix.abs()
    if not torch.all((magnitudes == 0) | (matrix == 1)) or not torch.all(magnitudes.sum(dim=1) == 1):
        return None
    return magnitudes.argmax(dim=1)


def _apply(state: torch.Tensor, op: qml.operation.Operator, wires: list[int], n_wires: int) -> torch.Tensor:
    """``state`` (B, 2, ..., 2) after ``op`` on ``wires`` (axes 1 + wire)."""
    diagonal = _diagonal(op, state)
    if len(wires) == 1:  # a view (B, left, 2, right) of the contiguous state: no copy before the product
        return _apply_one_wire(state, op, wires[0], n_wires, diagonal)
    if diagonal is None:
        matrix = _as_tensor(qml.matrix(op, wire_order=op.wires), state)
        permutation = _permutation(matrix)
        if permutation is not None:  # one gather over the whole state, indices cached per gate placement
            batch = state.shape[0]
            index = _state_permutation(n_wires, tuple(wires), tuple(permutation.tolist()), state.device)
            return state.reshape(batch, -1).index_select(1, index).reshape(state.shape)
    k = len(wires)
    axes = [1 + w for w in wires]
    moved = state.movedim(axes, list(range(1, 1 + k)))
    shape = moved.shape
    flat = moved.reshape(shape[0], 2**k, -1)
    if diagonal is not None:
        flat = flat * diagonal.reshape(-1, 2**k, 1)
    else:
        flat = matrix @ flat  # (2^k, 2^k) or broadcast (B, 2^k, 2^k)
    return flat.reshape(shape).movedim(list(range(1, 1 + k)), axes)


def _apply_one_wire(state: torch.Tensor, op: qml.operation.Operator, wire: int, n_wires: int,
                    diagonal: torch.Tensor | None) -> torch.Tensor:
    batch = state.shape[0]
    view = state.reshape(batch, 2**wire, 2, 2 ** (n_wires - wire - 1))
    if diagonal is not None:
        out = view * diagonal.reshape(-1, 1, 2, 1)
    else:
        matrix = _as_tensor(qml.matrix(op, wire_order=op.wires), state)
        if matrix.ndim == 2:
            out = torch.einsum("ij,bajr->bair", matrix, view)
        else:
            out = torch.einsum("bij,bajr->bair", matrix, view)
    return out.reshape(state.shape)


@lru_cache(maxsize=1024)
def _state_permutation_cached(n_wires: int, wires: tuple[int, ...], local: tuple[int, ...]) -> torch.Tensor:
    """``new[j] = old[index[j]]`` over all 2^n basis states for a permutation gate on ``wires``."""
    k = len(wires)
    indices = torch.arange(2**n_wires)
    shifts = torch.tensor([n_wires - 1 - w for w in wires])
    bits = (indices[:, None] >> shifts) & 1                       # (2^n, k): the gate's wires of each state
    sub = (bits * (1 << torch.arange(k - 1, -1, -1))).sum(dim=1)  # their local index
    source_sub = torch.tensor(local)[sub]                          # the local state each one comes from
    cleared = indices & ~((1 << shifts).sum())
    source_bits = (source_sub[:, None] >> torch.arange(k - 1, -1, -1)) & 1
    return cleared | (source_bits << shifts).sum(dim=1)


def _state_permutation(n_wires: int, wires: tuple[int, ...], local: tuple[int, ...],
                       device: torch.device) -> torch.Tensor:
    return _state_permutation_cached(n_wires, wires, local).to(device)


def _diagonal(op: qml.operation.Operator, like: torch.Tensor) -> torch.Tensor | None:
    """The phase vector of a diagonal gate (broadcast ``(B, 2^k)``), else None.

    Read off the matrix for up to 4 wires: PennyLane computes ``eigvals()`` of a 0-d
    torch parameter in single precision (seen with RZ: 1e-7 errors).
    """
    if not _is_diagonal(op):
        return None
    if len(op.wires) <= 4:
        return torch.diagonal(_as_tensor(qml.matrix(op, wire_order=op.wires), like), dim1=-2, dim2=-1)
    # Wider: eigvals() of the op with each 0-d parameter as a batch of one keeps its precision.
    widened = [p.reshape(1) if torch.is_tensor(p) and p.ndim == 0 else p for p in op.data]
    try:
        return _as_tensor(qml.ops.functions.bind_new_parameters(op, widened).eigvals(), like)
    except (qml.operation.EigvalsUndefinedError, NotImplementedError):
        return None


DIAGONAL_GATES = {"RZ", "PhaseShift", "CZ", "CCZ", "MultiRZ", "IsingZZ", "S", "T", "PauliZ", "Z",
                  "ControlledPhaseShift", "CPhase", "U1", "DiagonalQubitUnitary"}


def _is_diagonal(op: qml.operation.Operator) -> bool:
    return op.name in DIAGONAL_GATES


def _prepare(op: qml.operation.Operator, n_wires: int, batch: int, like: torch.Tensor) -> torch.Tensor:
    """The state a preparation makes on all ``n_wires`` wires: ``(B, 2, ..., 2)``."""
    if list(op.wires) != list(range(n_wires)):
        raise UnsupportedOperation(f"{op.name} must prepare every wire (0..{n_wires - 1}), got {list(op.wires)}")
    vector = _as_tensor(op.state_vector(wire_order=range(n_wires)), like).reshape(-1, 2**n_wires)
    return vector.expand(batch, -1).reshape(batch, *[2] * n_wires)


def supported(tape: qml.tape.QuantumScript, n_wires: int) -> list[qml.operation.Operator]:
    """The tape's operations, decomposed to what the compiler runs; raises
    :class:`UnsupportedOperation` naming what it cannot run."""
    _check_wires(tape, n_wires)
    operations = _expanded(tape.operations)
    for index, op in enumerate(operations):
        if op.name in STATE_PREPARATIONS and index:
            raise UnsupportedOperation(f"{op.name} must come first in the circuit")
    for measurement in tape.measurements:
        if _measurement_kind(measurement) is None:
            raise UnsupportedOperation(_unsupported_measurement(measurement))
    return operations


def _measurement_kind(measurement) -> str | None:
    kind = type(measurement).__name__
    if kind == "ExpectationMP" and measurement.obs is not None:
        return "expval"
    if kind == "ProbabilityMP" and measurement.obs is None:
        return "probs"
    if kind == "StateMP" and not measurement.wires:
        return "state"
    return None


def _unsupported_measurement(measurement) -> str:
    return (f"measurement {measurement!r} is not supported; expected expval of an observable, probs of wires, "
            "or state")


# "auto" keeps torch's graph (faster) while it stays below this; beyond, the adjoint method.
BACKPROP_GRAPH_LIMIT_BYTES = 256 * 2**20


def run_tape(tape: qml.tape.QuantumScript, n_wires: int, batch: int, dtype: torch.dtype = torch.complex128,
             device: torch.device | str = "cpu", diff_method: str = "auto") -> torch.Tensor:
    """Runs a recorded tape on ``batch`` rows; returns ``(batch, outputs)`` (real, or complex for ``state``).

    ``diff_method="adjoint"`` differentiates expectation values and probabilities with the
    adjoint method (:mod:`hqray.quantum.tape_adjoint`: memory independent of depth, more
    Python per gate); ``"backprop"`` keeps torch's graph of every step (and so does any
    ``state`` measurement); ``"auto"`` (default) takes backprop while that graph (about two
    states per gate) stays under :data:`BACKPROP_GRAPH_LIMIT_BYTES`, the adjoint method beyond.
    """
    from hqray.quantum.tape_adjoint import adjoint_outputs, adjoint_supported

    if diff_method not in ("auto", "adjoint", "backprop"):
        raise CircuitError(f"diff_method {diff_method!r}: expected 'auto', 'adjoint' or 'backprop'")
    operations = supported(tape, n_wires)
    state = torch.zeros((batch, 2**n_wires), dtype=dtype, device=device)
    state[:, 0] = 1
    state = state.reshape(batch, *[2] * n_wires)
    if diff_method == "auto":
        graph_bytes = 2 * len(operations) * state.numel() * state.element_size()
        diff_method = "adjoint" if graph_bytes > BACKPROP_GRAPH_LIMIT_BYTES else "backprop"
    if diff_method == "adjoint" and torch.is_grad_enabled() and adjoint_supported(tape.measurements):
        return adjoint_outputs(operations, tape.measurements, state, n_wires)
    for op in operations:
        if op.name in STATE_PREPARATIONS:
            state = _prepare(op, n_wires, batch, state)
        else:
            state = _apply(state, op, [int(w) for w in op.wires], n_wires)
    return _measure(tape.measurements, state.reshape(batch, -1), n_wires)


def _check_wires(tape: qml.tape.QuantumScript, n_wires: int) -> None:
    bad = [w for w in tape.wires if not isinstance(w, int) or not 0 <= w < n_wires]
    if bad:
        raise CircuitError(f"the circuit uses wires {bad}; expected integers 0..{n_wires - 1}")


def _is_sum(observable: qml.operation.Operator) -> bool:
    """A sum of terms (Sum, scaled term, Hamiltonian): measured term by term."""
    return isinstance(observable, (qml.ops.Sum, qml.ops.SProd)) or observable.name in ("Hamiltonian",
                                                                                       "LinearCombination")


def _expval(observable: qml.operation.Operator, state: torch.Tensor, n_wires: int) -> torch.Tensor:
    """<psi|O|psi> per row, term by term for sums and Hamiltonians."""
    if _is_sum(observable):
        coefficients, terms = observable.terms()
        return sum(float(c) * _expval(term, state, n_wires) for c, term in zip(coefficients, terms, strict=True))
    wires = [int(w) for w in observable.wires]
    if not wires:  # the identity on no wires (a constant term)
        return torch.ones(state.shape[0], dtype=state.real.dtype, device=state.device)
    batch = state.shape[0]
    tensor = state.reshape(batch, *[2] * n_wires)
    transformed = _apply(tensor, observable, wires, n_wires).reshape(batch, -1)
    return (state.conj() * transformed).sum(dim=1).real


def _probs(state: torch.Tensor, wires: list[int], n_wires: int) -> torch.Tensor:
    batch = state.shape[0]
    probabilities = (state.abs() ** 2).reshape(batch, *[2] * n_wires)
    others = [1 + w for w in range(n_wires) if w not in wires]
    marginal = probabilities.sum(dim=others) if others else probabilities
    order = sorted(wires)
    marginal = marginal.permute(0, *[1 + order.index(w) for w in wires])
    return marginal.reshape(batch, -1)


def _measure(measurements: Sequence, state: torch.Tensor, n_wires: int) -> torch.Tensor:
    outputs = []
    for measurement in measurements:
        kind = _measurement_kind(measurement)
        if kind == "expval":
            outputs.append(_expval(measurement.obs, state, n_wires)[:, None])
        elif kind == "probs":
            wires = [int(w) for w in measurement.wires] or list(range(n_wires))
            outputs.append(_probs(state, wires, n_wires))
        elif kind == "state":
            outputs.append(state)
        else:
            raise UnsupportedOperation(_unsupported_measurement(measurement))
    if not outputs:
        raise UnsupportedOperation("the circuit measures nothing; return qml.expval, qml.probs or qml.state")
    if any(o.is_complex() for o in outputs) and len(outputs) > 1:
        raise UnsupportedOperation("qml.state() must be the circuit's only measurement")
    return torch.cat(outputs, dim=1)


def run_qfunc(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor,
              dtype: torch.dtype | None = None, diff_method: str = "auto") -> torch.Tensor:
    """Records ``qfunc(inputs, weights)`` and runs it batched over the rows of ``inputs``.

    ``dtype`` is the state's complex dtype (default: complex64 for float32 inputs,
    complex128 otherwise); ``diff_method`` as in :func:`run_tape`. Returns ``(B, outputs)``.
    """
    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be (batch, features), got shape {tuple(inputs.shape)}")
    if dtype is None:
        dtype = torch.complex64 if inputs.dtype == torch.float32 else torch.complex128
    tape = record_tape(qfunc, inputs, weights)
    return run_tape(tape, n_wires, inputs.shape[0], dtype, inputs.device, diff_method)
