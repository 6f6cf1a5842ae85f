"""A traced circuit's whole pass as one compiled kernel: real arithmetic through ``torch.compile``.

At a few qubits a pass is bound by the number of torch calls, not by arithmetic (at four
qubits and 256 rows each call moves a few kilobytes): the eager engine's forward and
backward passes cost about 1.6 ms, of which the arithmetic is a small part, while
``jax.jit`` runs the same circuit as one compiled program. ``jit=True`` does the same in
torch: the circuit's steps (:class:`~hqray.quantum.program.Program`) are written out as one
function of the inputs and weights, and ``torch.compile`` turns it, with the backward pass
its autograd derives, into fused C++ loops and a few matrix products.

Why real arithmetic: torch's CPU compiler (inductor) generates no code for complex tensors,
so a complex graph compiles into the same calls, one by one. Here every amplitude is a pair
``(re, im)`` of real tensors and every complex product is written out.

What it takes: circuits that :func:`~hqray.quantum.tracing.trace` can record once (every
registered circuit; a parameter an affine function of one input column or one weight) whose
gates are the rotations of :data:`~hqray.quantum.program.FAST_GATES`, the diagonal
rotations of :data:`~hqray.quantum.program.PHASE_PATTERNS` or parameter-free gates, measuring
sums of Z words. :func:`jit_unsupported` says why another circuit cannot; the compiler then
runs it eagerly, with a warning.

Costs: compiling takes seconds (about 12 s for a 4-qubit ``strongly_entangling`` circuit on
a 2-core Xeon), once per circuit structure, batch size, precision and thread count; the
gradient is autograd's (memory grows with depth, like ``diff_method="backprop"``). Measured
gains are in ``benchmarks/RESULTS.md`` ("One compiled kernel per circuit").

**Example**

>>> import torch
>>> from hqray.quantum.circuits import Circuit
>>> from hqray.quantum.compiler import run_qfunc
>>> circuit = Circuit(n_qubits=2, ansatz="strongly_entangling", n_layers=1)
>>> inputs, weights = torch.rand(8, 2), torch.rand(circuit.weight_shape)
>>> fast = run_qfunc(circuit.qfunc(), 2, inputs, weights, jit=True)  # doctest: +SKIP
>>> torch.allclose(fast, run_qfunc(circuit.qfunc(), 2, inputs, weights), atol=1e-5)  # doctest: +SKIP
True
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import numpy as np
import torch

from hqray.quantum.handgrad import ROTATION_NAMES, _basis
from hqray.quantum.program import PHASE_PATTERNS, Program, Step, _embedded_index, _whole_state_index

__all__ = ["jit_unsupported", "jit_function", "JIT_CACHE_SIZE"]

JIT_CACHE_SIZE = 8  # compiled functions kept per traced circuit (batch sizes, precisions)

Pair = tuple[torch.Tensor, torch.Tensor]  # (real part, imaginary part)
# Gates on up to 2 wires are applied as broadcast multiply-adds (fused into the generated
# loops); wider matrices as matrix products: a compiled graph calls BLAS out of line, and at
# 4 qubits a hundred tiny products cost more than the whole arithmetic.
SMALL_GATE_WIRES = 2


def jit_unsupported(traced, program: Program, measure) -> str | None:
    """Why this circuit cannot run as one compiled kernel, or None."""
    if traced is None:
        return "jit needs a circuit recorded once (a registered circuit; see hqray.quantum.tracing)"
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return "jit needs a C++ compiler (g++) for torch.compile's CPU code"
    if not measure.table_only:
        return "jit measures expectation values of Z words (and sums of them) only"
    for gate in program.gates:
        if gate.kind == "prep" or (gate.parametric and gate.name not in ROTATION_NAMES
                                   and gate.name not in PHASE_PATTERNS):
            return f"jit cannot build gate {gate.name} in real arithmetic"
    return None


# ---------------------------------------------------------------- complex arithmetic ---------

def _mul(a: Pair, b: Pair) -> Pair:
    return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]


def _matmul(a: Pair, b: Pair) -> Pair:
    return a[0] @ b[0] - a[1] @ b[1], a[0] @ b[1] + a[1] @ b[0]


def _times(later: Pair | None, earlier: Pair | None) -> Pair | None:
    """``later @ earlier`` where either may be None (the identity)."""
    if later is None or earlier is None:
        return earlier if later is None else later
    return _matmul(later, earlier)


def _split(matrix: np.ndarray | torch.Tensor, real: torch.dtype) -> Pair:
    tensor = torch.as_tensor(np.asarray(matrix)).to(torch.complex128)
    return tensor.real.to(real), tensor.imag.to(real)


def _apply(state: Pair, matrix: Pair, wires: list[int], n_wires: int) -> Pair:
    """``state`` ``(R, 2^n)`` after ``matrix`` ``(d, d)`` (shared) or ``(R, d, d)`` (per row)
    acting on ``wires`` (in the matrix's bit order)."""
    rows, k = state[0].shape[0], len(wires)
    axes = [1 + w for w in wires]

    def moved(part: torch.Tensor) -> torch.Tensor:  # (R, rest, d): the gate's wires last
        return part.reshape(rows, *[2] * n_wires).movedim(axes, list(range(-k, 0))).reshape(rows, -1, 2**k)

    def back(part: torch.Tensor) -> torch.Tensor:
        shape = [rows] + [2] * n_wires
        return part.reshape(rows, *shape[1:1 + n_wires - k], *[2] * k).movedim(list(range(-k, 0)), axes).reshape(
            rows, -1)

    x = (moved(state[0]), moved(state[1]))
    if k > SMALL_GATE_WIRES:  # one matrix product (an external BLAS call) per part
        y = _matmul(x, (matrix[0].transpose(-2, -1), matrix[1].transpose(-2, -1)))
    else:  # elementwise multiply-adds over the 2^k slices, which inductor fuses into its loops
        m = (matrix[0][:, None], matrix[1][:, None]) if matrix[0].ndim == 3 else matrix
        slices = (x[0].unbind(-1), x[1].unbind(-1))
        outputs = []
        for row in range(2**k):
            terms = [_mul((m[0][..., row, j], m[1][..., row, j]), (slices[0][j], slices[1][j])) for j in range(2**k)]
            outputs.append((sum(t[0] for t in terms), sum(t[1] for t in terms)))
        y = torch.stack([o[0] for o in outputs], -1), torch.stack([o[1] for o in outputs], -1)
    return back(y[0]), back(y[1])


# ---------------------------------------------------------------- the kernel ----------------

class _Builder:
    """Writes the program's pass as torch calls on real pairs (traced once by torch.compile)."""

    def __init__(self, traced, program: Program, measure, n_weights: int, real: torch.dtype):
        self.program, self.real = program, real
        self.placed = traced._placed(n_weights, real, torch.device("cpu"))
        self.constants = traced._constants(real, torch.device("cpu"))
        self.table = measure.table.to(real)
        # Every constant as real tensors made here, outside the compiled graph: a complex
        # tensor inside it would compile into eager complex calls.
        self.bases = {name: _rotation_basis(name, real) for name, *_ in self.placed if name in ROTATION_NAMES}
        self.fixed = {i: tuple(part[None] for part in _split(g.constant, real))
                      for i, g in enumerate(program.gates) if not g.parametric}
        self.patterns = {i: torch.as_tensor(PHASE_PATTERNS[g.name](len(g.wires)), dtype=real)
                         for i, g in enumerate(program.gates) if g.parametric and g.name in PHASE_PATTERNS}
        self.identity = {k: torch.eye(2**k, dtype=real) for k in range(1, program.n_wires + 1)}
        self.tables = {id(step): torch.as_tensor(step.table, dtype=real) for step in program.steps if step.kind == "diag"}

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[0]
        gates = self._gate_tensors(inputs, weights)
        state = None
        for step in self.program.steps:
            state = self._step(step, state, gates, batch)
        probabilities = state[0] * state[0] + state[1] * state[1]
        return probabilities @ self.table, torch.isfinite(inputs).all() & torch.isfinite(weights).all()

    def _gate_tensors(self, inputs: torch.Tensor, weights: torch.Tensor) -> dict[int, Pair]:
        """Each parametric gate's matrix ``(1 or B, d, d)`` or, for a diagonal rotation, its
        angle ``(1 or B,)``, from the traced parameter sources."""
        pool = torch.cat([weights.reshape(-1), self.constants])
        columns = inputs.T
        out: dict[int, Pair] = {}
        for name, batched, arity, members, positions in self.placed:
            params = []
            for index, affine in positions:
                source = columns[index] if batched else pool[index]
                params.append(source if affine is None else source * affine[0] + affine[1])
            if name in PHASE_PATTERNS:
                for row, member in enumerate(members):
                    out[member] = params[0][row] if batched else params[0][row][None]
                continue
            re, im = _rotation_pair(name, params, self.bases[name])
            for row, member in enumerate(members):
                out[member] = (re[row], im[row]) if batched else (re[row][None], im[row][None])
        return out

    def _matrix(self, i: int, gates: dict) -> Pair:
        """Gate ``i``'s matrix ``(1 or B, d, d)`` as a real pair."""
        if i in self.fixed:
            return self.fixed[i]
        if i in self.patterns:
            angles = gates[i][:, None] * self.patterns[i]
            return torch.diag_embed(torch.cos(angles)), torch.diag_embed(torch.sin(angles))
        return gates[i]

    def _step(self, step: Step, state: Pair | None, gates: dict, batch: int) -> Pair:
        n = self.program.n_wires
        if step.kind == "product":
            return self._product(step, gates, batch)
        if step.kind == "perm":
            index = step.index
            return state[0][:, index], state[1][:, index]
        if step.kind == "diag":
            return self._diagonal(step, state, gates)
        if step.batched:  # per-row matrices: one or two wires (the fuser's rule), gate by gate
            for i in step.gates:
                state = _apply(state, self._matrix(i, gates), list(self.program.gates[i].wires), n)
            return state
        block = self._block(step, gates)
        return _apply(state, block, list(step.wires), n)

    def _block(self, step: Step, gates: dict) -> Pair:
        """A shared dense step's matrix ``(d, d)``, built as the eager engine's products would
        be too slow here (a compiled graph calls BLAS out of line): one-wire gates since the
        last wider gate multiply per wire and join as one Kronecker product (elementwise, fused);
        permutations gather rows; other gates are embedded by an index and multiplied in."""
        k = len(step.wires)
        position = {w: p for p, w in enumerate(step.wires)}
        block: Pair | None = None
        moment: dict[int, Pair] = {}  # position -> the product of its one-wire gates, (2, 2)
        for i in step.gates:
            gate = self.program.gates[i]
            local = [position[w] for w in gate.wires]
            matrix = self._matrix(i, gates)
            matrix = (matrix[0][0], matrix[1][0])
            if len(local) == 1:
                moment[local[0]] = matrix if local[0] not in moment else _matmul(matrix, moment[local[0]])
                continue
            block = _times(self._kronecker(moment, k), block)
            moment = {}
            if gate.kind == "perm":  # CNOT, SWAP, Toffoli, ...: the block's rows gathered
                index = _whole_state_index(k, tuple(local), gate.permutation)
                block = (self.identity[k][index], torch.zeros_like(self.identity[k])) if block is None else (
                    block[0][index], block[1][index])
                continue
            index = torch.as_tensor(_embedded_index(local, k, 1, vector=False))
            zero = torch.zeros(1, dtype=self.real)
            embedded = (torch.cat([zero, matrix[0].reshape(-1)])[index], torch.cat([zero, matrix[1].reshape(-1)])[index])
            block = _times(embedded, block)
        block = _times(self._kronecker(moment, k), block)
        return block if block is not None else (self.identity[k], torch.zeros_like(self.identity[k]))

    def _kronecker(self, moment: dict[int, Pair], k: int) -> Pair | None:
        """The Kronecker product over the block's positions (identity where no gate), or None."""
        if not moment:
            return None
        product: Pair | None = None
        for p in range(k):
            factor = moment.get(p, (self.identity[1], torch.zeros_like(self.identity[1])))
            if product is None:
                product = factor
                continue
            rows = product[0].shape[0] * 2
            outer = _mul((product[0][:, None, :, None], product[1][:, None, :, None]),
                         (factor[0][None, :, None, :], factor[1][None, :, None, :]))
            product = outer[0].reshape(rows, rows), outer[1].reshape(rows, rows)
        return product

    def _product(self, step: Step, gates: dict, batch: int) -> Pair:
        """The leading one-wire gates on ``|0>``, wire by wire, then their Kronecker product."""
        state = None
        for wire_gates in step.per_wire:
            vector = (torch.tensor([[1.0, 0.0]], dtype=self.real), torch.zeros(1, 2, dtype=self.real))
            for i in wire_gates:
                matrix = self._matrix(i, gates)
                vector = ((matrix[0] * vector[0][:, None, :]).sum(-1) - (matrix[1] * vector[1][:, None, :]).sum(-1),
                          (matrix[0] * vector[1][:, None, :]).sum(-1) + (matrix[1] * vector[0][:, None, :]).sum(-1))
            if state is None:
                state = vector
                continue
            outer = _mul((state[0][:, :, None], state[1][:, :, None]), (vector[0][:, None, :], vector[1][:, None, :]))
            state = outer[0].reshape(outer[0].shape[0], -1), outer[1].reshape(outer[1].shape[0], -1)
        return state[0].expand(batch, -1), state[1].expand(batch, -1)

    def _diagonal(self, step: Step, state: Pair, gates: dict) -> Pair:
        """Phases ``exp(i angles @ table)`` over the step's wires, broadcast over the others."""
        n = self.program.n_wires
        table = self.tables[id(step)]
        rows = [gates[i] for i in step.rotations]
        phases = table[-1][None]
        if rows:
            width = max(r.shape[0] for r in rows)
            stacked = torch.stack([r.expand(width) for r in rows], 1)  # (rows, rotations)
            phases = stacked @ table[:-1] + table[-1]
        shape = [phases.shape[0]] + [2 if w in step.wires else 1 for w in range(n)]
        cos, sin = torch.cos(phases).reshape(shape), torch.sin(phases).reshape(shape)
        rows_out = max(state[0].shape[0], phases.shape[0])
        re, im = state[0].reshape(-1, *[2] * n), state[1].reshape(-1, *[2] * n)
        return (re * cos - im * sin).reshape(rows_out, -1), (re * sin + im * cos).reshape(rows_out, -1)


def _rotation_basis(name: str, real: torch.dtype) -> tuple:
    """``(constant pair or None, basis pair)`` of a rotation kind (see hqray.quantum.handgrad)."""
    constant, basis = _basis(name, torch.complex128, "cpu")
    return (None if constant is None else _split(constant, real)), _split(basis, real)


def _rotation_pair(name: str, params: list[torch.Tensor], kind_basis: tuple) -> Pair:
    """A group's rotation matrices ``(m, [B,] d, d)`` as a real pair: coefficients (cosines
    and sines of half-angles) times the kind's constant basis, as in hqray.quantum.handgrad."""
    constant, basis = kind_basis
    if name == "Rot":
        phi, theta, omega = params
        half = torch.stack([theta, phi + omega, phi - omega]) / 2
        cos, sin = torch.cos(half), torch.sin(half)
        coefficients = torch.stack([cos[0], cos[0], sin[0], sin[0]], -1) * torch.stack([cos[1], sin[1], cos[2], sin[2]],
                                                                                        -1)
    else:
        coefficients = torch.stack([torch.cos(params[0] / 2), torch.sin(params[0] / 2)], -1)
    re, im = coefficients @ basis[0], coefficients @ basis[1]
    if constant is not None:
        re, im = re + constant[0], im + constant[1]
    d = int(round(basis[0].shape[1] ** 0.5))
    return re.reshape(*re.shape[:-1], d, d), im.reshape(*im.shape[:-1], d, d)


def jit_function(traced, program: Program, measure, n_weights: int, real: torch.dtype) -> Callable:
    """The compiled pass ``(inputs, weights) -> (outputs, all finite)`` of a traced circuit."""
    compiled = torch.compile(_Builder(traced, program, measure, n_weights, real), fullgraph=True, dynamic=False)
    compiled.warm = False  # compiled on its first call
    return compiled
