"""A circuit compiled once per structure: gates classified, fused into steps, run on a batch.

The tape compiler (:mod:`hqray.quantum.compiler`) hands this module the decomposed
operations of a recorded tape. What depends only on the circuit's *structure* (gate names,
wires, which parameters are batched) is worked out once and cached as a :class:`Program`:

- leading one-wire gates act on ``|0...0>`` wire by wire: one **product** state, built as a
  Kronecker product of per-wire vectors (an angle or IQP embedding's first layer costs no
  state-sized pass per gate);
- consecutive **permutation** gates (X, CNOT, SWAP, Toffoli, multi-controlled X) compose
  into one index gather over the whole state, computed at compile time;
- consecutive **diagonal** gates (RZ, CZ, MultiRZ, IsingZZ, ...) multiply into one phase
  vector over the union of their wires;
- other gates **fuse** into dense blocks of up to ``k`` wires (``k`` shrinks as the state
  grows, where a wider block's extra arithmetic would outweigh the per-step overhead it
  saves); data-dependent (batched) gates fuse along one wire.

Per call only the parameter-dependent numbers are computed: gate matrices built for a whole
group of same-kind gates at once (one torch call per gate kind, not per gate), the fused
step tensors from them, then one pass over the state per step. Gradients: torch's graph of
the steps ("backprop"), or the adjoint method ("adjoint": the forward pass keeps only the
final state; the backward pass un-applies each step and hands each step tensor its gradient
``2 sum(lam psi^*)``, from which autograd reaches the gate parameters, so memory does not
grow with depth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
import torch

__all__ = ["Program", "compile_program", "structure_key", "STATE_PREPARATIONS", "DIAGONAL_GATES"]

STATE_PREPARATIONS = ("StatePrep", "AmplitudeEmbedding", "BasisState", "StatePrepBase")
DIAGONAL_GATES = frozenset({"RZ", "PhaseShift", "CZ", "CCZ", "MultiRZ", "IsingZZ", "S", "T", "PauliZ", "Z",
                            "ControlledPhaseShift", "CPhase", "U1", "DiagonalQubitUnitary"})


def fused_width(amplitudes: int, n_wires: int) -> int:
    """Widest dense block for a batch of ``amplitudes`` amplitudes in all.

    A k-wire block costs ``2^k`` multiply-adds per amplitude and saves the fixed cost of the
    steps it replaces; small states are dominated by that fixed cost, large ones by arithmetic.
    """
    for limit, width in ((2**14, 5), (2**17, 4), (2**20, 3)):
        if amplitudes <= limit:
            return min(width, n_wires)
    return min(2, n_wires)


# ---------------------------------------------------------------- structure ----------------

@dataclass(frozen=True)
class Gate:
    """One operation's structure: what it is, where, and whether its parameters are per row."""

    name: str
    wires: tuple[int, ...]
    kind: str  # "prep", "perm", "diag" or "dense"
    batched: bool
    parametric: bool
    constant: np.ndarray | None = field(default=None, compare=False)  # matrix of a parameter-free gate
    permutation: tuple[int, ...] | None = None  # local new[j] = old[perm[j]] of a permutation gate


def structure_key(operations: Sequence[qml.operation.Operator]) -> tuple:
    """What a compiled program depends on: each operation's name, wires, whether its
    parameters are batched, and (parameter-free gates only) its hyperparameters."""
    return tuple((op.name, tuple(op.wires), op.batch_size is not None,
                  repr(op.hyperparameters) if op.num_params == 0 and op.hyperparameters else None)
                 for op in operations)


def _local_permutation(matrix: np.ndarray) -> tuple[int, ...] | None:
    magnitudes = np.abs(matrix)
    if not np.all((magnitudes == 0) | (matrix == 1)) or not np.all(magnitudes.sum(axis=1) == 1):
        return None
    return tuple(int(i) for i in magnitudes.argmax(axis=1))


def _gate(op: qml.operation.Operator) -> Gate:
    wires = tuple(int(w) for w in op.wires)
    if op.name in STATE_PREPARATIONS:
        return Gate(op.name, wires, "prep", op.batch_size is not None, True)
    if op.num_params == 0:
        matrix = np.asarray(qml.matrix(op, wire_order=op.wires))
        permutation = _local_permutation(matrix)
        if permutation is not None:
            return Gate(op.name, wires, "perm", False, False, matrix, permutation)
        diagonal = np.count_nonzero(matrix - np.diag(np.diagonal(matrix))) == 0
        return Gate(op.name, wires, "diag" if diagonal else "dense", False, False, matrix)
    kind = "diag" if op.name in DIAGONAL_GATES else "dense"
    return Gate(op.name, wires, kind, op.batch_size is not None, True)


@dataclass
class Step:
    """One pass over the state: ``kind`` is "product", "prep", "perm", "diag" or "dense"."""

    kind: str
    wires: tuple[int, ...]  # ascending
    gates: list[int]
    batched: bool = False
    per_wire: list[list[int]] | None = None  # product steps: each wire's gates in order
    index: torch.Tensor | None = None  # perm steps: the composed gather over all amplitudes
    inverse: torch.Tensor | None = None


def _whole_state_index(n_wires: int, wires: tuple[int, ...], local: tuple[int, ...]) -> torch.Tensor:
    """``new[j] = old[index[j]]`` over all 2^n basis states for a permutation on ``wires``."""
    k = len(wires)
    indices = torch.arange(2**n_wires)
    shifts = torch.tensor([n_wires - 1 - w for w in wires])
    bits = (indices[:, None] >> shifts) & 1
    sub = (bits * (1 << torch.arange(k - 1, -1, -1))).sum(dim=1)
    source_sub = torch.tensor(local)[sub]
    cleared = indices & ~((1 << shifts).sum())
    source_bits = (source_sub[:, None] >> torch.arange(k - 1, -1, -1)) & 1
    return cleared | (source_bits << shifts).sum(dim=1)


class _Fuser:
    """Greedy, in-order fusion of gates into steps (structure only)."""

    def __init__(self, gates: list[Gate], n_wires: int, width: int):
        self.gates, self.n, self.width = gates, n_wires, width
        self.steps: list[Step] = []
        self.current: Step | None = None

    def add(self, index: int) -> None:
        gate = self.gates[index]
        if self.current is not None and self._merge(gate):
            self.current.gates.append(index)
            return
        self._flush()
        self.current = Step(gate.kind, tuple(sorted(gate.wires)), [index], gate.batched)

    def _merge(self, gate: Gate) -> bool:
        step = self.current
        wires = tuple(sorted(set(step.wires) | set(gate.wires)))
        batched = step.batched or gate.batched
        if step.kind == gate.kind == "perm":
            kind = "perm"
        elif step.kind == gate.kind == "diag":
            kind = "diag"
        else:
            kind = "dense"
            # Growing a block, turning a gather or phase step into a matrix, or making a shared
            # matrix per-row all cost arithmetic: allowed up to the width (one wire per row).
            limit = 1 if batched else self.width
            grows = (not set(gate.wires) <= set(step.wires) or step.kind != "dense"
                     or batched != step.batched)
            if grows and len(wires) > limit:
                return False
        step.wires, step.batched, step.kind = wires, batched, kind
        return True

    def _flush(self) -> None:
        if self.current is None:
            return
        step = self.current
        if step.kind == "perm":
            index = torch.arange(2**self.n)
            for i in step.gates:
                gate = self.gates[i]
                index = index[_whole_state_index(self.n, gate.wires, gate.permutation)]
            step.index, step.inverse = index, torch.argsort(index)
        self.steps.append(step)
        self.current = None

    def finish(self) -> list[Step]:
        self._flush()
        return self.steps


def _plan_steps(gates: list[Gate], n_wires: int, width: int) -> list[Step]:
    fuser = _Fuser(gates, n_wires, width)
    rest = list(range(len(gates)))
    if gates and gates[0].kind == "prep":
        fuser.steps.append(Step("prep", tuple(range(n_wires)), [0], gates[0].batched))
        rest = rest[1:]
    else:  # one-wire gates before anything else touches their wire act on |0>: a product state
        touched: set[int] = set()
        per_wire: list[list[int]] = [[] for _ in range(n_wires)]
        later = []
        for i in rest:
            gate = gates[i]
            if len(gate.wires) == 1 and gate.wires[0] not in touched:
                per_wire[gate.wires[0]].append(i)
            else:
                touched |= set(gate.wires)
                later.append(i)
        fuser.steps.append(Step("product", tuple(range(n_wires)), [i for w in per_wire for i in w],
                                any(gates[i].batched for w in per_wire for i in w), per_wire))
        rest = later
    for i in rest:
        fuser.add(i)
    return fuser.finish()


# ---------------------------------------------------------------- applying steps -----------

def _is_contiguous(wires: Sequence[int]) -> bool:
    return all(b == a + 1 for a, b in zip(wires, wires[1:], strict=False))


def apply_dense(state: torch.Tensor, matrix: torch.Tensor, wires: Sequence[int], n_wires: int) -> torch.Tensor:
    """``state`` ``(b, 2^n, c)`` after ``matrix`` (``(d, d)``, ``(1, d, d)`` or ``(b, d, d)``)
    on ``wires`` (in the matrix's order).

    A shared matrix becomes one large GEMM over every row (not a batch of tiny products); a
    per-row one-wire matrix is four multiply-adds on the two halves of the state.
    """
    batch, _, columns = state.shape
    k = len(wires)
    if matrix.ndim == 2:
        matrix = matrix[None]
    rows = max(batch, matrix.shape[0])
    if not _is_contiguous(wires):  # bring the wires together at the end, in the matrix's order
        axes = [1 + w for w in wires]
        moved = state.reshape(batch, *[2] * n_wires, columns).movedim(-1, 1).movedim(axes_after_columns(axes),
                                                                                     list(range(-k, 0)))
        shape = moved.shape
        out = _right_product(moved.reshape(batch, -1, 2**k), matrix)
        out = out.reshape(rows, *shape[1:]).movedim(list(range(-k, 0)), axes_after_columns(axes)).movedim(1, -1)
        return out.reshape(rows, -1, columns)
    right = 2 ** (n_wires - wires[-1] - 1) * columns
    view = state.reshape(batch, 2 ** wires[0], 2**k, right)
    if right == 1:
        return _right_product(view.reshape(batch, -1, 2**k), matrix).reshape(rows, -1, columns)
    if matrix.shape[0] > 1 and k == 1:  # per-row 2x2: elementwise on the two halves
        m = matrix[:, None, :, :, None]
        low, high = view[:, :, :1], view[:, :, 1:]
        return torch.cat([m[:, :, 0, :1] * low + m[:, :, 0, 1:] * high,
                          m[:, :, 1, :1] * low + m[:, :, 1, 1:] * high], dim=2).reshape(rows, -1, columns)
    if matrix.shape[0] > 1 or right >= 64 or view.shape[0] * view.shape[1] == 1:
        return torch.matmul(matrix[:, None], view).reshape(rows, -1, columns)
    flat = view.transpose(2, 3).reshape(-1, 2**k) @ matrix[0].transpose(0, 1)  # one GEMM over all rows
    return flat.reshape(batch, view.shape[1], right, 2**k).transpose(2, 3).reshape(rows, -1, columns)


def axes_after_columns(axes: list[int]) -> list[int]:
    """Wire axes once the trailing column axis has moved to position 1."""
    return [a + 1 for a in axes]


def _right_product(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x`` ``(b, r, d)`` times ``matrix^T`` (shared: one GEMM; per row: one bmm)."""
    if matrix.shape[0] == 1:
        return (x.reshape(-1, x.shape[-1]) @ matrix[0].transpose(0, 1)).reshape(x.shape[0], -1, x.shape[-1])
    return torch.matmul(x, matrix.transpose(1, 2))


def apply_diag(state: torch.Tensor, diagonal: torch.Tensor, wires: Sequence[int], n_wires: int) -> torch.Tensor:
    """``state`` ``(b, 2^n, c)`` times a phase vector ``(1 or b, 2^k)`` on ``wires``."""
    batch, _, columns = state.shape
    k = len(wires)
    tensor = diagonal.reshape(diagonal.shape[0], *[2] * k)
    order = sorted(range(k), key=lambda i: wires[i])
    tensor = tensor.permute(0, *[1 + i for i in order])  # axes in ascending wire order
    shape = [tensor.shape[0]] + [2 if w in wires else 1 for w in range(n_wires)] + [1]
    product = state.reshape(batch, *[2] * n_wires, columns) * tensor.reshape(shape)
    return product.reshape(product.shape[0], -1, columns)


def _matrix_gradient(lam: torch.Tensor, psi: torch.Tensor, wires: Sequence[int], n_wires: int) -> torch.Tensor:
    """``2 sum_rest lam_i psi_j^*``: the gradient torch expects for a dense step's matrix."""
    batch, _, columns = psi.shape
    k = len(wires)
    axes = [1 + w for w in wires]

    def local(x):
        return x.reshape(batch, *[2] * n_wires, columns).movedim(axes, list(range(1, 1 + k))).reshape(batch, 2**k, -1)
    return 2 * torch.matmul(local(lam), local(psi).conj().transpose(1, 2))


def _diagonal_gradient(lam: torch.Tensor, psi: torch.Tensor, wires: Sequence[int], n_wires: int) -> torch.Tensor:
    batch, _, columns = psi.shape
    product = (lam * psi.conj()).reshape(batch, *[2] * n_wires, columns)
    others = [1 + w for w in range(n_wires) if w not in wires] + [1 + n_wires]
    return 2 * product.sum(dim=others).reshape(batch, -1)


def _fit(gradient: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """``gradient`` summed over the rows a shared (broadcast) step tensor stands for."""
    if tensor.shape[0] == 1 and gradient.shape[0] != 1:
        return gradient.sum(dim=0, keepdim=True)
    return gradient


# ---------------------------------------------------------------- gate matrices ------------

def _rx(t):
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return torch.stack([torch.stack([c, -1j * s], -1), torch.stack([-1j * s, c], -1)], -2)


def _ry(t):
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _rz(t):
    phase = torch.exp(-0.5j * t)
    return torch.stack([phase, phase.conj()], -1)


def _phase_shift(t):
    return torch.stack([torch.ones_like(t), torch.exp(1j * t)], -1)


def _rot(phi, theta, omega):
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    plus, minus = torch.exp(-0.5j * (phi + omega)), torch.exp(0.5j * (phi - omega))
    return torch.stack([torch.stack([plus * c, -minus * s], -1),
                        torch.stack([minus.conj() * s, plus.conj() * c], -1)], -2)


def _multi_rz(t, n_wires: int):
    parity = torch.tensor([(-1.0) ** bin(i).count("1") for i in range(2**n_wires)], dtype=t.dtype, device=t.device)
    return torch.exp(-0.5j * t[..., None] * parity)


# name -> (builder, result is a diagonal); builders take real parameters, return complex
FAST_GATES: dict[str, tuple[Callable, bool]] = {
    "RX": (_rx, False), "RY": (_ry, False), "RZ": (_rz, True), "PhaseShift": (_phase_shift, True),
    "U1": (_phase_shift, True), "Rot": (_rot, False),
}


def _as_real(value, dtype: torch.dtype, device) -> torch.Tensor:
    tensor = torch.as_tensor(value, device=device)
    return tensor.to(dtype) if not tensor.is_complex() else tensor


def _slow_tensor(op, gate: Gate, dtype: torch.dtype, real: torch.dtype, device) -> torch.Tensor:
    """One gate's matrix (or phase vector) through PennyLane, in the state's precision."""
    if gate.kind == "diag" and len(gate.wires) > 1 and op.name in ("MultiRZ", "IsingZZ"):
        return _multi_rz(_as_real(op.data[0], real, device), len(gate.wires)).to(dtype)
    if op.num_params:  # 0-d torch parameters: PennyLane keeps their precision in qml.matrix
        op = qml.ops.functions.bind_new_parameters(op, [_as_real(p, real, device) for p in op.data])
    matrix = torch.as_tensor(qml.matrix(op, wire_order=op.wires), device=device).to(dtype)
    return torch.diagonal(matrix, dim1=-2, dim2=-1) if gate.kind == "diag" else matrix


def gate_tensors(operations, gates: list[Gate], dtype: torch.dtype, device) -> list[torch.Tensor | None]:
    """Every parametric gate's matrix ``(1 or B, d, d)`` or phase vector ``(1 or B, d)``;
    gates of one fast kind are built together."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    tensors: list[torch.Tensor | None] = [None] * len(gates)
    groups: dict[tuple[str, bool], list[int]] = {}
    for i, gate in enumerate(gates):
        if not gate.parametric or gate.kind == "prep":
            continue
        if gate.name in FAST_GATES:
            groups.setdefault((gate.name, gate.batched), []).append(i)
        else:
            tensor = _slow_tensor(operations[i], gate, dtype, real, device)
            tensors[i] = tensor if gate.batched else tensor[None]
    for (name, batched), members in groups.items():
        builder, _ = FAST_GATES[name]
        columns = zip(*[operations[i].data for i in members], strict=True)
        shape = (operations[members[0]].batch_size,) if batched else ()
        params = [torch.stack([_as_real(p, real, device).expand(shape) for p in column]) for column in columns]
        built = builder(*params).to(dtype)
        for i, tensor in zip(members, built.unbind(0), strict=True):
            tensors[i] = tensor if batched else tensor[None]
    return tensors


# ---------------------------------------------------------------- the program --------------

@dataclass
class Program:
    """A compiled circuit structure (see the module docstring)."""

    n_wires: int
    gates: list[Gate]
    steps: list[Step]
    _constants: dict = field(default_factory=dict, repr=False)

    def constant(self, i: int, dtype: torch.dtype, device) -> torch.Tensor:
        """A parameter-free gate's matrix or phase vector, cached per dtype and device."""
        key = (i, dtype, str(device))
        if key not in self._constants:
            gate = self.gates[i]
            matrix = torch.as_tensor(gate.constant, device=device).to(dtype)
            self._constants[key] = (torch.diagonal(matrix) if gate.kind == "diag" else matrix)[None]
        return self._constants[key]

    def _gate_tensor(self, i: int, tensors, dtype, device) -> torch.Tensor:
        return tensors[i] if self.gates[i].parametric else self.constant(i, dtype, device)

    def step_tensors(self, operations, batch: int, dtype: torch.dtype, device) -> list[torch.Tensor | None]:
        """Each step's tensor from the live parameters: a state for product/prep steps, a
        matrix for dense steps, a phase vector for diagonal ones, None for gathers."""
        tensors = gate_tensors(operations, self.gates, dtype, device)
        out: list[torch.Tensor | None] = []
        for step in self.steps:
            if step.kind == "perm":
                out.append(None)
            elif step.kind == "product":
                out.append(self._product(step, tensors, batch, dtype, device))
            elif step.kind == "prep":
                vector = torch.as_tensor(operations[0].state_vector(wire_order=range(self.n_wires)), device=device)
                out.append(vector.to(dtype).reshape(-1, 2**self.n_wires, 1).expand(batch, -1, -1))
            else:
                out.append(self._fused(step, tensors, dtype, device))
        return out

    def _product(self, step: Step, tensors, batch: int, dtype, device) -> torch.Tensor:
        vectors = []
        for wire_gates in step.per_wire:
            vector = torch.zeros(1, 2, 1, dtype=dtype, device=device)
            vector[0, 0, 0] = 1
            for i in wire_gates:
                gate = self.gates[i]
                tensor = self._gate_tensor(i, tensors, dtype, device)
                vector = apply_diag(vector, tensor, (0,), 1) if gate.kind == "diag" else apply_dense(
                    vector, tensor, (0,), 1)
            vectors.append(vector[:, :, 0])
        state = vectors[0]
        for vector in vectors[1:]:
            state = (state[:, :, None] * vector[:, None, :]).reshape(max(state.shape[0], vector.shape[0]), -1)
        return state.expand(batch, -1)[:, :, None]

    def _fused(self, step: Step, tensors, dtype, device) -> torch.Tensor:
        """A dense step's matrix ``(1 or B, d, d)`` (gates applied to the identity's columns),
        or a diagonal step's phase vector ``(1 or B, d)`` (gates applied to ones)."""
        position = {w: p for p, w in enumerate(step.wires)}
        k = len(step.wires)
        if step.kind == "diag":
            block = torch.ones(1, 2**k, 1, dtype=dtype, device=device)
        else:
            block = torch.eye(2**k, dtype=dtype, device=device)[None]
        for i in step.gates:
            gate = self.gates[i]
            local = [position[w] for w in gate.wires]
            if step.kind == "diag":
                block = apply_diag(block, self._gate_tensor(i, tensors, dtype, device), local, k)
            elif gate.kind == "diag":
                block = apply_diag(block, self._gate_tensor(i, tensors, dtype, device), local, k)
            else:
                block = apply_dense(block, self._gate_tensor(i, tensors, dtype, device), local, k)
        return block[:, :, 0] if step.kind == "diag" else block

    def apply(self, step: Step, tensor: torch.Tensor | None, state: torch.Tensor | None,
              inverse: bool = False) -> torch.Tensor:
        """One step on ``state`` ``(B, 2^n, 1)`` (its inverse with ``inverse=True``)."""
        if step.kind in ("product", "prep"):
            return tensor
        if step.kind == "perm":
            return state.index_select(1, step.inverse if inverse else step.index)
        if step.kind == "diag":
            return apply_diag(state, tensor.conj() if inverse else tensor, step.wires, self.n_wires)
        matrix = tensor.conj().transpose(-2, -1) if inverse else tensor
        return apply_dense(state, matrix, step.wires, self.n_wires)

    def evolve(self, tensors: list[torch.Tensor | None]) -> torch.Tensor:
        state = None
        for step, tensor in zip(self.steps, tensors, strict=True):
            state = self.apply(step, tensor, state)
        return state

    def gradients(self, tensors, final: torch.Tensor, lam: torch.Tensor) -> list[torch.Tensor | None]:
        """The adjoint pass: each differentiable step tensor's gradient, given the final state
        and the cotangent ``lam`` of the outputs with respect to it."""
        psi = final
        grads: list[torch.Tensor | None] = [None] * len(self.steps)
        for s in reversed(range(len(self.steps))):
            step, tensor = self.steps[s], tensors[s]
            wanted = tensor is not None and tensor.requires_grad
            if step.kind in ("product", "prep"):
                if wanted:
                    grads[s] = _fit(2 * lam, tensor)
                break
            psi = self.apply(step, tensor, psi, inverse=True)  # the state before this step
            if wanted:
                if step.kind == "diag":
                    grads[s] = _fit(_diagonal_gradient(lam, psi, step.wires, self.n_wires), tensor)
                else:
                    grads[s] = _fit(_matrix_gradient(lam, psi, step.wires, self.n_wires), tensor)
            lam = self.apply(step, tensor, lam, inverse=True)
        return grads


def compile_program(operations: Sequence[qml.operation.Operator], n_wires: int, amplitudes: int) -> Program:
    """The :class:`Program` of a decomposed operation list (structure only; see the module)."""
    gates = [_gate(op) for op in operations]
    for index, gate in enumerate(gates):
        if gate.kind == "prep" and index:
            from hqray.quantum.compiler import UnsupportedOperation

            raise UnsupportedOperation(f"{gate.name} must come first in the circuit")
    width = fused_width(amplitudes, n_wires)
    return Program(n_wires, gates, _plan_steps(gates, n_wires, width))


def amplitude_class(batch: int, n_wires: int) -> int:
    """The batch's amplitude count rounded up to a power of two: programs are cached per class."""
    return 1 << math.ceil(math.log2(max(1, batch) * 2**n_wires))
