"""A traced circuit's whole pass as one compiled kernel: real arithmetic through ``torch.compile``.

At a few qubits a pass is bound by the number of torch calls, not by arithmetic (at four
qubits and 256 rows each call moves a few kilobytes): the eager engine's forward and
backward passes cost about 1.6 ms, of which the arithmetic is a small part, while
``jax.jit`` runs the same circuit as one compiled program. ``jit=True`` does the same in
torch: the circuit's steps (:class:`~hqray.quantum.program.Program`) are written out as one
function of the inputs and weights, and ``torch.compile`` turns it, with the backward pass
its autograd derives, into fused C++ loops and a few matrix products.

How it is written, each choice measured on a 4-qubit SEL and an 8-qubit QCNN (one thread):

- real arithmetic: torch's CPU compiler (inductor) generates no code for complex tensors, so
  a complex graph compiles into the same calls one by one (a (256, 16) x (16, 16) complex
  product and its gradient ran 2x slower compiled than eager). Every amplitude is a pair
  ``(re, im)``; a part known to be zero (an RY embedding's state, a CNOT's matrix) is
  ``None`` and costs nothing;
- rows last: the state is ``(2^n, B)``, a per-row matrix ``(d, d, B)``, so the generated loops
  run along the batch in vector registers (rows first, they ran along 2-4 entries; with this
  layout, the zero parts and the stored indices below, SEL's pass at B = 4096 went from 2.8
  to 1.5 ms);
- every complex matrix product is one BLAS call (``[[ar, -ai], [ai, ar]] @ [br; bi]``): the
  graph calls BLAS out of line, a few microseconds each, and four real products per complex
  one were most of a QCNN's pass;
- per-row rotation matrices come from a BLAS product too, so the graph stores them: built
  elementwise, each amplitude recomputed the cosines and sines it reads;
- gathers and embeddings are computed once, outside the graph (index arithmetic traced into
  it ran on every call).

What it takes: circuits that :func:`~hqray.quantum.tracing.trace` can record once (every
registered circuit; a parameter an affine function of one input column or one weight) whose
gates are the rotations of :data:`~hqray.quantum.program.FAST_GATES`, the diagonal
rotations of :data:`~hqray.quantum.program.PHASE_PATTERNS` or parameter-free gates, measuring
sums of Z words. :func:`jit_unsupported` says why another circuit cannot; the compiler then
runs it eagerly, with a warning.

Costs: compiling takes seconds to a minute (about 15 s for a 4-qubit ``strongly_entangling``
circuit, 50-90 s for an 8-qubit ``qcnn`` on a 2-core Xeon), once per circuit structure, batch
size, precision, grad mode and thread count; the gradient is autograd's (memory grows with
depth, like ``diff_method="backprop"``). Beyond about 8 qubits the eager engine is faster
(a 12-qubit QCNN: 97 ms compiled, 65 ms eager). Measured gains are in
``benchmarks/RESULTS.md`` ("One compiled kernel per circuit").

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

Pair = tuple[torch.Tensor, "torch.Tensor | None"]  # (real part, imaginary part or None where it is zero)
# Gates on up to 2 wires, and per-row matrices, are applied as elementwise multiply-adds
# (fused into the generated loops); wider shared matrices as one BLAS product.
SMALL_GATE_WIRES = 2


def jit_unsupported(traced, program: Program, measure) -> str | None:
    """Why this circuit cannot run as one compiled kernel, or None."""
    if traced is None:
        return ("jit needs a circuit recorded once: a registered circuit whose every gate parameter is one input "
                "column or one weight, scaled and shifted (hqray.quantum.tracing); this one is recorded per call")
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
# Real states stay real (an RY embedding, CNOTs): a None imaginary part costs nothing.

def _plus(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return a if b is None else b if a is None else a + b


def _mul(a: Pair, b: Pair) -> Pair:
    real = a[0] * b[0] if a[1] is None or b[1] is None else a[0] * b[0] - a[1] * b[1]
    return real, _plus(None if b[1] is None else a[0] * b[1], None if a[1] is None else a[1] * b[0])


def _matmul(a: Pair, b: Pair) -> Pair:
    """``a @ b``: BLAS products for wide matrices, elementwise outer products for small ones."""
    if a[0].shape[-1] > 2**SMALL_GATE_WIRES:  # one BLAS call (each is an out-of-line call in the graph)
        rows, columns = a[0].shape[-2], b[0].shape[-1]
        if a[1] is None and b[1] is None:
            return a[0] @ b[0], None
        if a[1] is None:  # ar @ [br | bi]
            both = a[0] @ torch.cat([b[0], b[1]], -1)
            return both[..., :columns], both[..., columns:]
        if b[1] is None:  # [ar; ai] @ br
            both = torch.cat([a[0], a[1]], -2) @ b[0]
            return both[..., :rows, :], both[..., rows:, :]
        # [[ar, -ai], [ai, ar]] @ [br; bi] = [re; im]
        both = torch.cat([torch.cat([a[0], -a[1]], -1), torch.cat([a[1], a[0]], -1)], -2) @ torch.cat([b[0], b[1]], -2)
        return both[..., :rows, :], both[..., rows:, :]
    terms = [_mul(_part(a, (..., slice(None), slice(j, j + 1))), _part(b, (..., slice(j, j + 1), slice(None))))
             for j in range(a[0].shape[-1])]
    return _total(terms)


def _part(pair: Pair, index) -> Pair:
    return pair[0][index], None if pair[1] is None else pair[1][index]


def _total(terms: list[Pair]) -> Pair:
    real, imag = terms[0]
    for term in terms[1:]:
        real, imag = real + term[0], _plus(imag, term[1])
    return real, imag


def _times(later: Pair | None, earlier: Pair | None) -> Pair | None:
    """``later @ earlier`` where either may be None (the identity)."""
    if later is None or earlier is None:
        return earlier if later is None else later
    return _matmul(later, earlier)


def _split(matrix: np.ndarray | torch.Tensor, real: torch.dtype) -> Pair:
    tensor = torch.as_tensor(np.asarray(matrix)).to(torch.complex128)
    return tensor.real.to(real), (tensor.imag.to(real) if bool(tensor.imag.any()) else None)


def _reshaped(pair: Pair, *shape: int) -> Pair:
    return pair[0].reshape(*shape), None if pair[1] is None else pair[1].reshape(*shape)


def _apply(state: Pair, matrix: Pair, wires: list[int], n_wires: int) -> Pair:
    """``state`` ``(2^n, R)`` after ``matrix`` ``(d, d, 1 or R)`` acting on ``wires`` (in the
    matrix's bit order)."""
    k, rows = len(wires), state[0].shape[-1]
    front = list(range(k))

    def moved(part: torch.Tensor | None) -> torch.Tensor | None:  # (d, rest, R): the gate's wires first
        if part is None:
            return None
        return part.reshape(*[2] * n_wires, rows).movedim(wires, front).reshape(2**k, -1, rows)

    x = (moved(state[0]), moved(state[1]))
    if k > SMALL_GATE_WIRES and matrix[0].shape[-1] == 1:  # a shared wide matrix: one BLAS product
        y = _reshaped(_matmul(_part(matrix, (..., 0)), _reshaped(x, 2**k, -1)), 2**k, -1, rows)
    else:  # out_i = sum_j m_ij x_j, elementwise and vectorised along the rows
        outputs = [_total([_mul(_part(matrix, (i, j, None)), _part(x, j)) for j in range(2**k)]) for i in range(2**k)]
        y = torch.stack([o[0] for o in outputs]), (
            None if all(o[1] is None for o in outputs) else
            torch.stack([o[1] if o[1] is not None else torch.zeros_like(o[0]) for o in outputs]))
    out_rows = y[0].shape[-1]

    def back(part: torch.Tensor | None) -> torch.Tensor | None:
        if part is None:
            return None
        return part.reshape(*[2] * n_wires, out_rows).movedim(front, wires).reshape(2**n_wires, out_rows)
    return back(y[0]), back(y[1])


# ---------------------------------------------------------------- the kernel ----------------

class _Builder:
    """Writes the program's pass as torch calls on real pairs (traced once by torch.compile).

    Layout: rows last. The state is ``(2^n, B)``, a per-row gate matrix ``(d, d, B)`` (a shared
    one ``(d, d, 1)``), so every elementwise loop the compiler writes runs along the rows, in
    vector registers; rows first, its loops ran along two or four entries at a time.
    """

    def __init__(self, traced, program: Program, measure, n_weights: int, real: torch.dtype):
        self.program, self.real = program, real
        self.placed = traced._placed(n_weights, real, torch.device("cpu"))
        self.constants = traced._constants(real, torch.device("cpu"))
        self.table = measure.table.to(real).T.contiguous()  # (outputs, 2^n)
        # Every constant as real tensors made here, outside the compiled graph: a complex
        # tensor inside it would compile into eager complex calls, index arithmetic would run
        # on every call.
        self.bases = {name: _rotation_basis(name, real) for name, *_ in self.placed if name in ROTATION_NAMES}
        self.fixed = {i: _part(_split(g.constant, real), (..., None))
                      for i, g in enumerate(program.gates) if not g.parametric}
        self.patterns = {i: torch.as_tensor(PHASE_PATTERNS[g.name](len(g.wires)), dtype=real)
                         for i, g in enumerate(program.gates) if g.parametric and g.name in PHASE_PATTERNS}
        widths = ({1} | {len(step.wires) for step in program.steps if step.kind == "dense"}
                  | {len(g.wires) for g in program.gates if g.name in PHASE_PATTERNS})
        self.identity = {k: torch.eye(2**k, dtype=real) for k in widths}  # not 2^n x 2^n: only what is read
        self.tables = {id(step): torch.as_tensor(step.table, dtype=real).T.contiguous()
                       for step in program.steps if step.kind == "diag"}  # (2^k, rotations + 1)
        self.indices = self._block_indices()

    def _block_indices(self) -> dict[tuple, torch.Tensor]:
        """The gathers of the shared dense steps' wider gates."""
        indices = {}
        for step in self.program.steps:
            if step.kind != "dense" or step.batched:
                continue
            position = {w: p for p, w in enumerate(step.wires)}
            for i in step.gates:
                gate = self.program.gates[i]
                local = [position[w] for w in gate.wires]
                if len(local) > 1 and gate.kind == "perm":
                    indices[("perm", id(step), i)] = _whole_state_index(len(step.wires), tuple(local), gate.permutation)
                elif len(local) > 1:
                    indices[("embed", id(step), i)] = torch.as_tensor(
                        _embedded_index(local, len(step.wires), 1, vector=False))
        return indices

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = inputs.shape[0]
        gates = self._gate_tensors(inputs, weights)
        state = None
        for step in self.program.steps:
            state = self._step(step, state, gates, batch)
        probabilities = state[0] * state[0] if state[1] is None else state[0] * state[0] + state[1] * state[1]
        outputs = (self.table @ probabilities.expand(-1, batch)).T
        return outputs, torch.isfinite(inputs).all() & torch.isfinite(weights).all()

    def _gate_tensors(self, inputs: torch.Tensor, weights: torch.Tensor) -> dict:
        """Each parametric gate's matrix ``(d, d, 1 or B)`` or, for a diagonal rotation, its
        angle ``(1 or B,)``, from the traced parameter sources."""
        pool = torch.cat([weights.reshape(-1), self.constants])
        columns = inputs.T  # (features, B)
        out: dict = {}
        for name, batched, _, members, positions in self.placed:
            params = []
            for index, affine in positions:
                if affine is not None and not batched:  # the traced sources' shared scales are (members,)
                    affine = affine[0][:, None], affine[1][:, None]
                source = columns[index] if batched else pool[index][:, None]  # (members, B or 1)
                params.append(source if affine is None else source * affine[0] + affine[1])
            if name in PHASE_PATTERNS:
                for row, member in enumerate(members):
                    out[member] = params[0][row]
                continue
            matrices = _rotation_pair(name, params, self.bases[name])  # (d, d, members, B or 1)
            for row, member in enumerate(members):
                out[member] = _part(matrices, (slice(None), slice(None), row))
        return out

    def _matrix(self, i: int, gates: dict) -> Pair:
        """Gate ``i``'s matrix ``(d, d, 1 or B)`` as a real pair."""
        if i in self.fixed:
            return self.fixed[i]
        if i in self.patterns:
            angles = self.patterns[i][:, None] * gates[i][None, :]  # (d, 1 or B)
            diagonal = self.identity[len(self.program.gates[i].wires)][:, :, None]
            return diagonal * torch.cos(angles)[:, None, :], diagonal * torch.sin(angles)[:, None, :]
        return gates[i]

    def _step(self, step: Step, state: Pair | None, gates: dict, batch: int) -> Pair:
        n = self.program.n_wires
        if step.kind == "product":
            return self._product(step, gates, batch)
        if step.kind == "perm":
            return _part(state, step.index)
        if step.kind == "diag":
            return self._diagonal(step, state, gates)
        if step.batched:  # per-row matrices: one or two wires (the fuser's rule), gate by gate
            for i in step.gates:
                state = _apply(state, self._matrix(i, gates), list(self.program.gates[i].wires), n)
            return state
        return _apply(state, _part(self._block(step, gates), (..., None)), list(step.wires), n)

    def _block(self, step: Step, gates: dict) -> Pair:
        """A shared dense step's matrix ``(d, d)``. One-wire gates since the last wider gate
        multiply per wire and join as one Kronecker product (elementwise, fused); permutations
        gather rows; other gates are placed by an index and multiplied in."""
        k = len(step.wires)
        position = {w: p for p, w in enumerate(step.wires)}
        block: Pair | None = None
        moment: dict[int, Pair] = {}  # position -> the product of its one-wire gates, (2, 2)
        for i in step.gates:
            gate = self.program.gates[i]
            local = [position[w] for w in gate.wires]
            matrix = _part(self._matrix(i, gates), (..., 0))
            if len(local) == 1:
                moment[local[0]] = matrix if local[0] not in moment else _matmul(matrix, moment[local[0]])
                continue
            block = _times(self._kronecker(moment, k), block)
            moment = {}
            if gate.kind == "perm":  # CNOT, SWAP, Toffoli, ...: the block's rows gathered
                index = self.indices[("perm", id(step), i)]
                block = (self.identity[k][index], None) if block is None else _part(block, index)
                continue
            index = self.indices[("embed", id(step), i)]
            zero = torch.zeros(1, dtype=self.real)
            embedded = tuple(None if part is None else torch.cat([zero, part.reshape(-1)])[index] for part in matrix)
            block = _times(embedded, block)
        block = _times(self._kronecker(moment, k), block)
        return block if block is not None else (self.identity[k], None)

    def _kronecker(self, moment: dict[int, Pair], k: int) -> Pair | None:
        """The Kronecker product over the block's positions (identity where no gate), or None."""
        if not moment:
            return None
        product: Pair | None = None
        for p in range(k):
            factor = moment.get(p, (self.identity[1], None))
            if product is None:
                product = factor
                continue
            size = product[0].shape[0] * 2
            product = _reshaped(_mul(_part(product, (slice(None), None, slice(None), None)),
                                     _part(factor, (None, slice(None), None, slice(None)))), size, size)
        return product

    def _product(self, step: Step, gates: dict, batch: int) -> Pair:
        """The leading one-wire gates on ``|0>``, wire by wire, then their Kronecker product."""
        state: Pair | None = None
        for wire_gates in step.per_wire:
            vector: Pair = (self.identity[1][:, :1], None)  # |0>, (2, 1)
            for i in wire_gates:  # v_i = sum_j m_ij v_j
                product = _mul(self._matrix(i, gates), _part(vector, (None,)))
                vector = product[0].sum(1), None if product[1] is None else product[1].sum(1)
            if state is None:
                state = vector
                continue
            outer = _mul(_part(state, (slice(None), None)), _part(vector, (None,)))
            state = _reshaped(outer, -1, outer[0].shape[-1])
        return state

    def _diagonal(self, step: Step, state: Pair, gates: dict) -> Pair:
        """Phases ``exp(i table @ angles)`` over the step's wires, broadcast over the others."""
        n = self.program.n_wires
        table = self.tables[id(step)]
        phases = table[:, -1:]  # the fixed gates' phases, (2^k, 1)
        if step.rotations:
            width = max(gates[i].shape[0] for i in step.rotations)
            stacked = torch.stack([gates[i].expand(width) for i in step.rotations])  # (rotations, 1 or B)
            phases = table[:, :-1] @ stacked + phases
        shape = [2 if w in step.wires else 1 for w in range(n)] + [phases.shape[-1]]
        tensor_state = _reshaped(state, *[2] * n, state[0].shape[-1])
        out = _mul(tensor_state, (torch.cos(phases).reshape(shape), torch.sin(phases).reshape(shape)))
        return _reshaped(out, 2**n, -1)


def _rotation_basis(name: str, real: torch.dtype) -> tuple:
    """``(constant pair or None, basis pair)`` of a rotation kind (see hqray.quantum.handgrad),
    as ``(d*d,)`` and ``(d*d, coefficients)``."""
    constant, basis = _basis(name, torch.complex128, "cpu")
    return (None if constant is None else _split(constant, real)), _transposed(_split(basis, real))


def _transposed(pair: Pair) -> Pair:
    return pair[0].T.contiguous(), None if pair[1] is None else pair[1].T.contiguous()


def _rotation_pair(name: str, params: list[torch.Tensor], kind_basis: tuple) -> Pair:
    """A group's rotation matrices ``(d, d, members, 1 or B)`` from parameters ``(members, 1 or
    B)``: coefficients (cosines and sines of half-angles) times the kind's constant basis (as
    in hqray.quantum.handgrad), one BLAS product. As a product, the compiled graph stores
    the matrices: elementwise, it would recompute each gate's cosines and sines in every
    amplitude that reads them."""
    constant, basis = kind_basis
    if name == "Rot":
        phi, theta, omega = params
        half = torch.stack([theta, phi + omega, phi - omega]) / 2
        cos, sin = torch.cos(half), torch.sin(half)
        coefficients = [cos[0] * cos[1], cos[0] * sin[1], sin[0] * cos[2], sin[0] * sin[2]]
    else:
        coefficients = [torch.cos(params[0] / 2), torch.sin(params[0] / 2)]
    shape = coefficients[0].shape
    stacked = torch.stack(coefficients).reshape(len(coefficients), -1)
    matrices = basis[0] @ stacked, None if basis[1] is None else basis[1] @ stacked
    if constant is not None:
        matrices = matrices[0] + constant[0][:, None], _plus(matrices[1], None if constant[1] is None
                                                             else constant[1][:, None])
    d = int(round(basis[0].shape[0] ** 0.5))
    return _reshaped(matrices, d, d, *shape)


def jit_function(traced, program: Program, measure, n_weights: int, real: torch.dtype) -> Callable:
    """The compiled pass ``(inputs, weights) -> (outputs, all finite)`` of a traced circuit."""
    compiled = torch.compile(_Builder(traced, program, measure, n_weights, real), fullgraph=True, dynamic=False)
    compiled.warm = False  # compiled on its first call
    return compiled
