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
the steps ("backprop"), or the adjoint method: the backward pass walks the steps back and
hands each step tensor its gradient ``2 sum(lam psi^*)``, reading each step's input state
kept by the forward pass (:meth:`Program.evolve_keeping`, while they fit) or un-applying the
steps (memory independent of depth). From the step tensors, the product state, the shared
blocks and the rotation matrices pass gradients back by hand (:mod:`hqray.quantum.handgrad`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
import torch

from hqray.quantum.handgrad import ROTATION_NAMES, ProductState, TreeProduct, rotation_matrices

__all__ = ["Program", "compile_program", "structure_key", "STATE_PREPARATIONS", "DIAGONAL_GATES"]

STATE_PREPARATIONS = ("StatePrep", "AmplitudeEmbedding", "BasisState", "StatePrepBase")
DIAGONAL_GATES = frozenset({"RZ", "PhaseShift", "CZ", "CCZ", "MultiRZ", "IsingZZ", "S", "T", "PauliZ", "Z",
                            "ControlledPhaseShift", "CPhase", "U1", "DiagonalQubitUnitary", "CRZ"})


def _parity(k: int) -> np.ndarray:
    return np.array([(-1.0) ** bin(i).count("1") for i in range(2**k)])


# Diagonal gates exp(i theta p): the phase pattern p over the gate's basis states, per wire count.
PHASE_PATTERNS: dict[str, Callable[[int], np.ndarray]] = {
    "RZ": lambda k: -_parity(1) / 2, "MultiRZ": lambda k: -_parity(k) / 2, "IsingZZ": lambda k: -_parity(2) / 2,
    "PhaseShift": lambda k: np.array([0.0, 1.0]), "U1": lambda k: np.array([0.0, 1.0]),
    "ControlledPhaseShift": lambda k: np.array([0.0, 0, 0, 1]), "CPhase": lambda k: np.array([0.0, 0, 0, 1]),
    "CRZ": lambda k: np.array([0.0, 0, -0.5, 0.5]),
}


def fused_width(amplitudes: int, n_wires: int) -> int:
    """Widest dense block for a batch of ``amplitudes`` amplitudes in all.

    A k-wire block costs ``2^k`` multiply-adds per amplitude and saves the state passes and
    the fixed cost of the steps it replaces. Measured forward + backward on 8-12 qubit
    circuits (QCNN, IQP, hardware-efficient, SEL, random; B = 256 and 4096): 4 wires was best
    or within 10% up to 2^18 amplitudes, 5 beyond; 1-3 were up to 6x slower.
    """
    return min(4 if amplitudes < 2**18 else 5, n_wires)


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
    # diag steps: phase = exp(i angles @ table); angles are the rotation gates' parameters, then
    # 1 for the fixed gates (their phases summed in the last row); other gates multiply after.
    rotations: list[int] | None = None
    table: np.ndarray | None = None
    multiplied: list[int] | None = None
    # the state's wire order before and after the step; a dense step's wires as it applies them
    before: tuple[int, ...] = ()
    after: tuple[int, ...] = ()
    local: tuple[int, ...] = ()


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
        if step.kind == "diag":
            _phase_table(step, self.gates)
        self.steps.append(step)
        self.current = None

    def finish(self) -> list[Step]:
        self._flush()
        return self.steps


def _phase_table(step: Step, gates: list[Gate]) -> None:
    """Splits a diagonal step into rotations (one table row each), fixed phases (one summed
    row) and the rest (multiplied)."""
    k = len(step.wires)
    position = {w: p for p, w in enumerate(step.wires)}
    step.rotations, step.multiplied, rows = [], [], []
    fixed = np.zeros(2**k)
    basis = np.arange(2**k)

    def spread(pattern: np.ndarray, wires: tuple[int, ...]) -> np.ndarray:
        """A gate's pattern over the step's basis states."""
        local = np.zeros(2**k, dtype=np.int64)
        for bit, w in enumerate(wires):
            local |= ((basis >> (k - 1 - position[w])) & 1) << (len(wires) - 1 - bit)
        return pattern[local]

    for i in step.gates:
        gate = gates[i]
        if gate.parametric and gate.name in PHASE_PATTERNS:
            step.rotations.append(i)
            rows.append(spread(PHASE_PATTERNS[gate.name](len(gate.wires)), gate.wires))
        elif not gate.parametric:
            fixed += spread(np.angle(np.diagonal(gate.constant)), gate.wires)
        else:
            step.multiplied.append(i)
    step.table = np.stack(rows + [fixed])


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


def _fit(gradient: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """``gradient`` summed over the rows a shared (broadcast) step tensor stands for."""
    if tensor.shape[0] == 1 and gradient.shape[0] != 1:
        return gradient.sum(dim=0, keepdim=True)
    return gradient


# ---------------------------------------------------------------- gate matrices ------------

# Dense rotations built for a whole group of same-kind gates at once (real parameters in,
# complex matrices out, gradients written out: hqray.quantum.handgrad); diagonal rotations
# come from their phase patterns instead.
FAST_GATES: dict[str, Callable] = {name: functools.partial(rotation_matrices, name) for name in ROTATION_NAMES}


def _pattern_builder(name: str, arity: int) -> Callable:
    """exp(i theta p) for a diagonal rotation with phase pattern ``p`` (see PHASE_PATTERNS)."""
    pattern = torch.as_tensor(PHASE_PATTERNS[name](arity))

    def build(t):
        return torch.polar(torch.ones((), dtype=t.dtype, device=t.device), t[..., None] * pattern.to(t))
    return build


def _as_real(value, dtype: torch.dtype, device) -> torch.Tensor:
    if isinstance(value, (int, float)):  # a Python number: torch's default float32 would round it first
        return torch.tensor(value, dtype=dtype, device=device)
    tensor = torch.as_tensor(value, device=device)
    return tensor.to(dtype) if not tensor.is_complex() else tensor


def _slow_tensor(op, gate: Gate, dtype: torch.dtype, real: torch.dtype, device) -> torch.Tensor:
    """One gate's matrix (or phase vector) through PennyLane, in the state's precision."""
    if op.num_params:  # 0-d torch parameters: PennyLane keeps their precision in qml.matrix
        op = qml.ops.functions.bind_new_parameters(op, [_as_real(p, real, device) for p in op.data])
    matrix = torch.as_tensor(qml.matrix(op, wire_order=op.wires), device=device).to(dtype)
    return torch.diagonal(matrix, dim1=-2, dim2=-1) if gate.kind == "diag" else matrix


class LazyItems(list):
    """A list whose items listed in ``_pending`` are made (by :meth:`_make`) when first read,
    by index, slice or iteration: per-gate objects most calls never read."""

    def __init__(self, items):
        super().__init__(items)
        self._pending: dict[int, tuple] = {}

    def _make(self, pending: tuple):
        raise NotImplementedError

    def __getitem__(self, index):
        if self._pending:
            for i in _positions(index, len(self)):
                pending = self._pending.pop(i, None)
                if pending is not None:
                    super().__setitem__(i, self._make(pending))
        return super().__getitem__(index)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class GateTensors(LazyItems):
    """Each gate's tensor (see :func:`gate_tensors`), and the same tensors as built, stacked per
    group: ``stacks`` holds ``(members, (m, [B,] d, d) matrices or (m, [B,] d) phase vectors,
    batched)``, which the product and shared dense steps read without unbinding them gate by
    gate. A grouped gate's own tensor is sliced from its stack when first read."""

    def __init__(self, n_gates: int):
        super().__init__([None] * n_gates)
        self.stacks: list[tuple[Sequence[int], torch.Tensor, bool]] = []
        self._layout: tuple | None = None

    def _make(self, pending: tuple) -> torch.Tensor:
        built, row, batched = pending  # the gate's stack, its row there, per-row or shared
        return built[row] if batched else built[row:row + 1]

    @property
    def layout(self) -> tuple:
        """What the stacks' layout depends on (members, tensor rank, batched): the key under
        which the product and shared steps cache their gather plans."""
        if self._layout is None:
            self._layout = tuple((tuple(members), stack.ndim, batched) for members, stack, batched in self.stacks)
        return self._layout


def gate_tensors(operations, gates: list[Gate], wanted: Sequence[int], dtype: torch.dtype,
                 device) -> GateTensors:
    """The matrix ``(1 or B, d, d)`` or phase vector ``(1 or B, d)`` of each ``wanted`` gate;
    gates of one fast kind are built together."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    tensors = GateTensors(len(gates))
    if getattr(operations, "groups", None) is not None:  # a traced circuit: parameters already grouped
        _grouped_tensors(operations.groups, set(wanted), tensors, dtype)
        return tensors
    groups: dict[tuple[str, bool], list[int]] = {}
    for i in wanted:
        gate = gates[i]
        if gate.name in FAST_GATES or gate.name in PHASE_PATTERNS:
            groups.setdefault((gate.name, gate.batched, len(gate.wires)), []).append(i)
        else:
            tensor = _slow_tensor(operations[i], gate, dtype, real, device)
            tensors[i] = tensor if gate.batched else tensor[None]
            tensors.stacks.append(([i], tensor[None], gate.batched))
    for (name, batched, arity), members in groups.items():
        builder = FAST_GATES[name] if name in FAST_GATES else _pattern_builder(name, arity)
        columns = zip(*[operations[i].data for i in members], strict=True)
        shape = (operations[members[0]].batch_size,) if batched else ()
        params = [torch.stack([_as_real(p, real, device).expand(shape) for p in column]) for column in columns]
        _keep(tensors, members, builder(*params).to(dtype), batched)
    return tensors


def _positions(index: int | slice, length: int) -> range:
    """The list positions an index or slice reads."""
    if isinstance(index, slice):
        return range(*index.indices(length))
    return range(index % length, index % length + 1)


def _grouped_tensors(groups, wanted: set[int], tensors: GateTensors, dtype: torch.dtype) -> None:
    """Each group's matrices (or phase vectors) built in one call from its stacked parameters,
    shaped as :func:`gate_tensors` gives them; groups with no wanted gate are skipped (their
    rotations are covered by a phase table)."""
    for name, batched, arity, members, params in groups:
        if wanted.isdisjoint(members):
            continue
        builder = FAST_GATES[name] if name in FAST_GATES else _pattern_builder(name, arity)
        _keep(tensors, members, builder(*params).to(dtype), batched)


def _keep(tensors: GateTensors, members: Sequence[int], built: torch.Tensor, batched: bool) -> None:
    """A group's built tensors ``(m, [B,] ...)`` as each member's, and as a stack."""
    tensors.stacks.append((members, built, batched))
    for row, i in enumerate(members):
        tensors._pending[i] = (built, row, batched)


def _embedded_index(local: list[int], k: int, offset: int, vector: bool) -> np.ndarray:
    """Where each entry of a ``k``-wire block comes from, for one gate on the block's positions
    ``local`` whose entries start at ``offset`` of the flat source (a matrix, or a phase vector
    if ``vector``): index 0 (a zero) where the block's other wires differ or, for a phase
    vector, off the diagonal."""
    arity, basis = len(local), np.arange(2**k)
    sub = sum(((basis >> (k - 1 - p)) & 1) << (arity - 1 - t) for t, p in enumerate(local))
    rest = basis & ~sum(1 << (k - 1 - p) for p in local)
    same_rest = rest[:, None] == rest[None, :]
    if vector:
        return np.where(same_rest & (sub[:, None] == sub[None, :]), offset + sub[:, None], 0)
    return np.where(same_rest, offset + sub[:, None] * 2**arity + sub[None, :], 0)


# ---------------------------------------------------------------- the program --------------

@dataclass
class Program:
    """A compiled circuit structure (see the module docstring)."""

    n_wires: int
    gates: list[Gate]
    steps: list[Step]
    _constants: dict = field(default_factory=dict, repr=False)
    _wanted: list[int] | None = field(default=None, repr=False)

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

    @property
    def parametric(self) -> list[int]:
        """Every gate with parameters (state preparations aside)."""
        return [i for i, g in enumerate(self.gates) if g.parametric and g.kind != "prep"]

    @property
    def wanted(self) -> list[int]:
        """The gates whose matrices a call builds (not the rotations a phase table covers)."""
        if self._wanted is None:
            covered = {i for step in self.steps if step.kind == "diag" for i in step.rotations}
            self._wanted = [i for i, g in enumerate(self.gates) if g.parametric and g.kind != "prep"
                            and i not in covered]
        return self._wanted

    def step_tensors(self, operations, batch: int, dtype: torch.dtype, device) -> list[torch.Tensor | None]:
        """Each step's tensor from the live parameters: a state for product/prep steps, a
        matrix for dense steps, a phase vector for diagonal ones, None for gathers."""
        tensors = gate_tensors(operations, self.gates, self.wanted, dtype, device)
        shared = self._shared_blocks(tensors, dtype, device)
        out: list[torch.Tensor | None] = []
        for s, step in enumerate(self.steps):
            if s in shared:
                out.append(shared[s])
            elif step.kind == "perm":
                out.append(None)
            elif step.kind == "product":
                out.append(self._product(step, tensors, batch, dtype, device))
            elif step.kind == "prep":
                vector = torch.as_tensor(operations[0].state_vector(wire_order=range(self.n_wires)), device=device)
                out.append(vector.to(dtype).reshape(-1, 2**self.n_wires, 1).expand(batch, -1, -1))
            else:
                out.append(self._fused(step, operations, tensors, dtype, device))
        return out

    def _product(self, step: Step, tensors: GateTensors, batch: int, dtype, device) -> torch.Tensor:
        """The product state of the leading one-wire gates: their matrices gathered from the
        gate groups' stacks in one index per depth, every wire's vector advanced one gate at a
        time, all wires at once (one batched product per depth), then their Kronecker product."""
        rows = batch if step.batched else 1
        plan = self._product_plan(step, tensors, dtype, device)
        stacks = [stack for stack, used in zip(tensors.stacks, plan["used"], strict=True) if used]
        pool = torch.cat([plan["constants"].expand(-1, rows, 2, 2)] + [
            (torch.diag_embed(stack) if stack.ndim == 2 + batched else stack).reshape(len(members), -1, 2, 2)
            .expand(-1, rows, 2, 2) for members, stack, batched in stacks])
        depths, first = plan["depths"], None
        if depths and len(depths[0][0]) == self.n_wires:  # every wire's first gate acts on |0>: its first column
            first, depths = depths[0][1], depths[1:]
        return ProductState.apply(pool, first, depths, self.n_wires).expand(batch, -1)[:, :, None]

    def _product_plan(self, step: Step, tensors: GateTensors, dtype, device) -> dict:
        """Which stacks hold the product step's gates, and per depth the wires and their gates'
        rows in ``[constant gates, those stacks]`` (worked out once per stack layout)."""
        key = ("product", id(step), dtype, str(device), tensors.layout)
        if key in self._constants:
            return self._constants[key]
        stacks = tensors.stacks
        gates = set(step.gates)
        constants = [i for i in step.gates if not self.gates[i].parametric]
        where = {i: row for row, i in enumerate(constants)}
        used, offset = [], len(constants)
        for members, _, _ in stacks:
            used.append(not gates.isdisjoint(members))
            if used[-1]:
                where.update({i: offset + row for row, i in enumerate(members)})
                offset += len(members)
        matrices = [np.asarray(self.gates[i].constant) for i in constants]
        plan = {"used": used, "depths": [],
                "constants": torch.as_tensor(np.stack(matrices) if matrices else np.zeros((0, 2, 2)),
                                             device=device).to(dtype).reshape(-1, 1, 2, 2)}
        for t in range(max((len(g) for g in step.per_wire), default=0)):
            wires = [w for w, g in enumerate(step.per_wire) if len(g) > t]
            plan["depths"].append((torch.as_tensor(wires, device=device),
                                   torch.as_tensor([where[step.per_wire[w][t]] for w in wires], device=device)))
        self._constants[key] = plan
        return plan

    def _fused(self, step: Step, operations, tensors, dtype, device) -> torch.Tensor:
        """A dense step's matrix ``(1 or B, d, d)`` (gates applied to the identity's columns),
        or a diagonal step's phase vector ``(1 or B, d)`` (gates applied to ones)."""
        position = {w: p for p, w in enumerate(step.wires)}
        k = len(step.wires)
        if step.kind == "diag":
            return self._phases(step, operations, tensors, position, dtype, device)
        block = torch.eye(2**k, dtype=dtype, device=device)[None]
        for i in step.gates:
            gate = self.gates[i]
            local = [position[w] for w in gate.wires]
            if gate.kind == "diag":
                block = apply_diag(block, self._gate_tensor(i, tensors, dtype, device), local, k)
            else:
                block = apply_dense(block, self._gate_tensor(i, tensors, dtype, device), local, k)
        return block

    def _shared_blocks(self, tensors: GateTensors, dtype, device) -> dict[int, torch.Tensor]:
        """Every shared dense step's matrix ``(1, d, d)``, by step index: all steps of one width
        at once, in a fixed number of torch calls however many steps and gates they hold. One
        gather places every gate's entries in its step's space (zero where the step's other
        wires differ; steps padded to one power-of-two gate count with identities), then the
        gates multiply pairwise, ``log2(gates)`` batched products deep."""
        plan = self._shared_plan(tensors, dtype, device)
        if plan is None:
            return {}
        shared = [stack.reshape(-1) for _, stack, batched in tensors.stacks if not batched]
        flat = torch.cat([plan["constants"], *shared])
        blocks = {}
        for step_ids, index in plan["widths"]:
            products = TreeProduct.apply(flat[index])  # (steps, gates, d, d) -> (steps, d, d)
            blocks.update(zip(step_ids, products[:, None].unbind(0), strict=True))
        return blocks

    def _shared_plan(self, tensors: GateTensors, dtype, device) -> dict | None:
        """Where each shared dense step's gate entries sit in ``[0, 1, constant gates' entries,
        the stacks' entries]`` (worked out once per stack layout, dtype and device); None for a
        program without shared dense steps."""
        key = ("shared", dtype, str(device), tensors.layout)
        if key in self._constants:
            return self._constants[key]
        shared = [s for s, step in enumerate(self.steps) if step.kind == "dense" and not step.batched]
        if not shared:
            self._constants[key] = None
            return None
        stacks = [(members, stack) for members, stack, batched in tensors.stacks if not batched]
        constants = sorted({i for s in shared for i in self.steps[s].gates if not self.gates[i].parametric})
        entries, where = [np.array([0.0, 1.0])], {}
        offset = 2
        for i in constants:
            where[i] = (offset, False)
            entries.append(np.asarray(self.gates[i].constant).reshape(-1))
            offset += entries[-1].size
        for members, stack in stacks:
            size = stack[0].numel()
            where.update({i: (offset + row * size, stack.ndim == 2) for row, i in enumerate(members)})
            offset += len(members) * size
        groups: dict[tuple[int, int], list[int]] = {}  # (wires, power-of-two gate slots): steps
        for s in shared:
            slots = 1 << (len(self.steps[s].gates) - 1).bit_length()
            groups.setdefault((len(self.steps[s].wires), slots), []).append(s)
        plan = {"constants": torch.as_tensor(np.concatenate(entries), device=device).to(dtype), "widths": []}
        for (k, slots), step_ids in groups.items():
            index = np.broadcast_to(np.eye(2**k, dtype=np.int64), (len(step_ids), slots, 2**k, 2**k)).copy()
            for j, s in enumerate(step_ids):
                position = {w: p for p, w in enumerate(self.steps[s].wires)}
                for slot, i in enumerate(self.steps[s].gates):
                    index[j, slot] = _embedded_index([position[w] for w in self.gates[i].wires], k, *where[i])
            plan["widths"].append((step_ids, torch.as_tensor(index, device=device)))
        self._constants[key] = plan
        return plan

    def _phases(self, step: Step, operations, tensors, position, dtype, device) -> torch.Tensor:
        """A diagonal step's phase vector: one product of the rotation angles with the step's
        table (every row's phases at once), then the other diagonal gates multiplied in."""
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        rows = max([operations[i].batch_size or 1 for i in step.rotations] + [1])
        angles = [_as_real(operations[i].data[0], real, device).expand(rows) for i in step.rotations]
        angles.append(torch.ones(rows, dtype=real, device=device))
        table = self._table(step, real, device)
        block = torch.polar(torch.ones((), dtype=real, device=device), torch.stack(angles, 1) @ table)[:, :, None]
        for i in step.multiplied:
            block = apply_diag(block, tensors[i], [position[w] for w in self.gates[i].wires], len(step.wires))
        return block[:, :, 0]

    def _table(self, step: Step, real: torch.dtype, device) -> torch.Tensor:
        key = (id(step), real, str(device))
        if key not in self._constants:
            self._constants[key] = torch.as_tensor(step.table, dtype=real, device=device)
        return self._constants[key]

    def apply(self, step: Step, tensor: torch.Tensor | None, state: torch.Tensor | None,
              inverse: bool = False) -> torch.Tensor:
        """One step on ``state`` ``(B, 2^n)`` laid out as ``step.before`` (as ``step.after``
        with ``inverse=True``, returning it laid out as ``step.before``)."""
        if step.kind in ("product", "prep"):
            return tensor[:, :, 0]
        if step.kind == "perm":
            return relabel(state, self._gather(step, inverse), self._gather(step, not inverse))
        if step.kind == "diag":
            return state * self._phases_in_layout(step, tensor.conj() if inverse else tensor)
        matrix = _reorder(tensor, step.wires, step.local, matrix=True)
        if not inverse:
            return self._dense_product(matrix, _permute_state(state, step.before, step.after, self.n_wires))
        state = _right_product(state.reshape(state.shape[0], -1, matrix.shape[-1]),
                               matrix.conj().transpose(-2, -1)).reshape(state.shape[0], -1)
        return _permute_state(state, step.after, step.before, self.n_wires)

    @staticmethod
    def _dense_product(matrix: torch.Tensor, relaid: torch.Tensor) -> torch.Tensor:
        """A dense step's matrix (in its local order) on a state whose step wires are last."""
        return _right_product(relaid.reshape(relaid.shape[0], -1, matrix.shape[-1]), matrix).reshape(
            max(relaid.shape[0], matrix.shape[0]), -1)

    def _gather(self, step: Step, inverse: bool) -> torch.Tensor:
        """A permutation step's gather in the state's layout (fixed per step: computed once)."""
        key = (id(step), inverse, step.after)
        if key not in self._constants:
            index = step.inverse if inverse else step.index
            canonical = torch.arange(2**self.n_wires).reshape([2] * self.n_wires)
            physical = canonical.permute(list(step.after)).reshape(-1)  # physical -> canonical index
            self._constants[key] = torch.argsort(physical)[index[physical]]
        return self._constants[key]

    def _phases_in_layout(self, step: Step, phases: torch.Tensor) -> torch.Tensor:
        physical = tuple(w for w in step.after if w in step.wires)
        phases = _reorder(phases, step.wires, physical, matrix=False)
        shape = [phases.shape[0]] + [2 if w in step.wires else 1 for w in step.after]
        return phases.reshape(shape).reshape(phases.shape[0], -1) if len(physical) == self.n_wires else \
            phases.reshape(shape).expand(phases.shape[0], *[2] * self.n_wires).reshape(phases.shape[0], -1)

    def evolve(self, tensors: list[torch.Tensor | None], canonical: bool = True) -> torch.Tensor:
        """The final state ``(B, 2^n)`` (wires in order, or as the last step left them)."""
        state = None
        for step, tensor in zip(self.steps, tensors, strict=True):
            state = self.apply(step, tensor, state)
        return self.canonical(state) if canonical else state

    def evolve_keeping(self, tensors: list[torch.Tensor | None]) -> tuple[torch.Tensor, list]:
        """The final state in wire order and, per step, the state its gradient needs (a dense
        step's input with the step's wires last, a diagonal step's input; None otherwise):
        what :meth:`gradients` reads instead of un-applying every step again."""
        kept: list[torch.Tensor | None] = [None] * len(self.steps)
        state = None
        for s, (step, tensor) in enumerate(zip(self.steps, tensors, strict=True)):
            if step.kind == "dense":
                kept[s] = _permute_state(state, step.before, step.after, self.n_wires)
                state = self._dense_product(_reorder(tensor, step.wires, step.local, matrix=True), kept[s])
                continue
            if step.kind == "diag":
                kept[s] = state
            state = self.apply(step, tensor, state)
        return self.canonical(state), kept

    def canonical(self, state: torch.Tensor) -> torch.Tensor:
        return _permute_state(state, self.steps[-1].after, tuple(range(self.n_wires)), self.n_wires)

    def gradients(self, tensors, final: torch.Tensor, lam: torch.Tensor,
                  kept: list | None = None) -> list[torch.Tensor | None]:
        """The adjoint pass: each differentiable step tensor's gradient, given the final state
        and the cotangent ``lam`` of the outputs (both ``(B, 2^n)`` in wire order). With
        ``kept`` (from :meth:`evolve_keeping`) each step's input is read, not recomputed."""
        order = tuple(range(self.n_wires))
        psi = _permute_state(final, order, self.steps[-1].after, self.n_wires) if kept is None else None
        lam = _permute_state(lam, order, self.steps[-1].after, self.n_wires)
        grads: list[torch.Tensor | None] = [None] * len(self.steps)
        for s in reversed(range(len(self.steps))):
            step, tensor = self.steps[s], tensors[s]
            wanted = tensor is not None and tensor.requires_grad
            if step.kind in ("product", "prep"):
                if wanted:
                    grads[s] = _fit(2 * lam[:, :, None], tensor)
                break
            if step.kind == "dense":
                if kept is None:
                    psi, lam, grads[s] = self._dense_backward(step, tensor, psi, lam, wanted)
                else:
                    lam, grads[s] = self._kept_dense_backward(step, tensor, kept[s], lam, wanted)
                continue
            if kept is None:
                psi = self.apply(step, tensor, psi, inverse=True)  # the state before this step
            else:
                psi = kept[s]
            if wanted:
                physical = tuple(w for w in step.after if w in step.wires)
                product = (lam * psi.conj()).reshape(lam.shape[0], *[2] * self.n_wires)
                others = [1 + i for i, w in enumerate(step.after) if w not in step.wires]
                local = (2 * product.sum(dim=others) if others else 2 * product).reshape(lam.shape[0], -1)
                grads[s] = _fit(_reorder(local, physical, step.wires, matrix=False), tensor)
            lam = self.apply(step, tensor, lam, inverse=True)
        return grads

    def _kept_dense_backward(self, step: Step, tensor, relaid: torch.Tensor, lam, wanted: bool):
        """As :meth:`_dense_backward`, reading the step's kept input (wires last) instead of
        un-applying the step: one product fewer and no re-layout of the state."""
        matrix = _reorder(tensor, step.wires, step.local, matrix=True)
        d, batch = matrix.shape[-1], lam.shape[0]
        gradient = None
        if wanted:
            gradient = _reorder(self._matrix_gradient(matrix, lam.reshape(batch, -1, d), relaid.reshape(batch, -1, d)),
                                step.local, step.wires, matrix=True)
        lam = _right_product(lam.reshape(batch, -1, d), matrix.conj().transpose(-2, -1)).reshape(batch, -1)
        return _permute_state(lam, step.after, step.before, self.n_wires), gradient

    @staticmethod
    def _matrix_gradient(matrix: torch.Tensor, lam_local: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """``2 sum lam psi_before^*`` over the rows a (shared or per-row) matrix acts on."""
        d = matrix.shape[-1]
        if matrix.shape[0] == 1:  # (psi^H lam)^T: BLAS reads the conjugate transpose in place, no copy
            return 2 * (before.reshape(-1, d).conj().transpose(0, 1) @ lam_local.reshape(-1, d)).transpose(0, 1)[None]
        return 2 * torch.matmul(before.conj().transpose(1, 2), lam_local).transpose(1, 2)

    def _dense_backward(self, step: Step, tensor, psi, lam, wanted: bool):
        """Un-applies a dense step to ``psi`` and ``lam`` (laid out as after it) and, if wanted,
        its matrix's gradient ``2 sum lam psi_before^*`` (one product over all rows)."""
        matrix = _reorder(tensor, step.wires, step.local, matrix=True)
        d = matrix.shape[-1]
        batch = psi.shape[0]
        before = _right_product(psi.reshape(batch, -1, d), matrix.conj().transpose(-2, -1))
        gradient = None
        if wanted:
            gradient = _reorder(self._matrix_gradient(matrix, lam.reshape(batch, -1, d), before),
                                step.local, step.wires, matrix=True)
        lam = _right_product(lam.reshape(batch, -1, d), matrix.conj().transpose(-2, -1)).reshape(batch, -1)
        psi = _permute_state(before.reshape(batch, -1), step.after, step.before, self.n_wires)
        return psi, _permute_state(lam, step.after, step.before, self.n_wires), gradient


# A re-layout whose last wires stay in place copies runs of 2^run contiguous amplitudes;
# below 4 wires (16 amplitudes) torch's strided copy of size-2 axes runs 2-5x slower than one
# gather of each row by a precomputed index (measured at 8-12 qubits, B = 16-4096, forward and
# backward; level at a run of 3 wires, the copy ahead at 4). In whole circuits, one thread,
# B = 256: random 10 qubits 1.3-1.4x faster, hardware_efficient 12 level.
PERMUTE_RUN_WIRES = 4


def _permute_state(state: torch.Tensor, before: tuple[int, ...], after: tuple[int, ...], n_wires: int) -> torch.Tensor:
    """``state`` ``(B, 2^n)`` with its wire axes in order ``before``, re-laid out as ``after``."""
    if before == after:
        return state
    batch = state.shape[0]
    run = next((i for i in range(n_wires) if before[n_wires - 1 - i] != after[n_wires - 1 - i]), n_wires)
    if run >= PERMUTE_RUN_WIRES:
        return state.reshape(batch, *[2] * n_wires).permute(0, *[1 + before.index(w) for w in after]).reshape(batch, -1)
    return relabel(state, _layout_index(before, after, state.device), _layout_index(after, before, state.device))


class _Relabel(torch.autograd.Function):
    """Columns gathered by a permutation; the gradient gathers back by the inverse permutation
    (a gather's own backward zero-fills a gradient and scatter-adds into it: at 8 qubits and
    B = 256 those two took an eighth of a forward + backward pass)."""

    @staticmethod
    def forward(ctx, state: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.index, ctx.inverse = index, inverse
        return _gather_columns(state, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return relabel(grad, ctx.inverse, ctx.index), None, None


def relabel(state: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``state[:, index]`` for a permutation ``index`` whose inverse is ``inverse``, differentiable
    (to any order) by gathering with the inverse."""
    if torch.is_grad_enabled() and state.requires_grad:
        return _Relabel.apply(state, index, inverse)
    return _gather_columns(state, index)


def _gather_columns(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # torch.gather with the index broadcast over rows (a view) ran 1.3-2.5x faster than
    # index_select along the columns (256-4096 amplitudes, B = 256 and 4096, one thread).
    return torch.gather(state, 1, index[None].expand(state.shape[0], -1))


@functools.lru_cache(maxsize=64)  # an index is one row of int64 per state: keep few
def _layout_index(before: tuple[int, ...], after: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The gather index that re-lays a state's amplitudes out from wire order ``before`` to ``after``."""
    n_wires = len(before)
    positions = torch.arange(2**n_wires).reshape([2] * n_wires).permute([before.index(w) for w in after])
    return positions.reshape(-1).to(device)


def _reorder(tensor: torch.Tensor, source: tuple[int, ...], target: tuple[int, ...], matrix: bool) -> torch.Tensor:
    """A step tensor over the basis of wires ``source`` re-expressed over ``target`` (same wires)."""
    if source == target:
        return tensor
    k, batch = len(source), tensor.shape[0]
    axes = [source.index(w) for w in target]
    if matrix:
        return tensor.reshape(batch, *[2] * (2 * k)).permute(0, *[1 + a for a in axes],
                                                             *[1 + k + a for a in axes]).reshape(batch, 2**k, 2**k)
    return tensor.reshape(batch, *[2] * k).permute(0, *[1 + a for a in axes]).reshape(batch, 2**k)


def _plan_layouts(steps: list[Step], n_wires: int) -> None:
    """Where each step leaves the wires: a dense step works on its wires as the last axes of
    the state (one copy when they are not there already) and leaves them there, so runs of
    steps on the same wires, or on wires already last, move nothing."""
    order = tuple(range(n_wires))
    for step in steps:
        step.before = order
        if step.kind in ("product", "prep"):
            order = tuple(range(n_wires))
        elif step.kind == "dense":
            k = len(step.wires)
            last = order[-k:]
            if set(last) == set(step.wires):
                step.local = last
            else:
                order = tuple(w for w in order if w not in step.wires) + step.wires
                step.local = step.wires
        step.after = order


def compile_program(operations: Sequence[qml.operation.Operator], n_wires: int, amplitudes: int) -> Program:
    """The :class:`Program` of a decomposed operation list (structure only; see the module)."""
    gates = [_gate(op) for op in operations]  # compiler.supported() has put any state preparation first
    steps = _plan_steps(gates, n_wires, fused_width(amplitudes, n_wires))
    _plan_layouts(steps, n_wires)
    return Program(n_wires, gates, steps)


def amplitude_class(batch: int, n_wires: int) -> int:
    """The batch's amplitude count rounded up to a power of two: programs are cached per class."""
    return 1 << math.ceil(math.log2(max(1, batch) * 2**n_wires))
