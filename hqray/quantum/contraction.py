"""Expectation values by contracting the circuit as a tensor network.

A state-vector engine pays for all ``2^n`` amplitudes of every row at every step. An
expectation value ``<0| U^dagger O U |0>`` is also a tensor network — the gates, their
conjugates, the observable and the ``|0>`` of each wire — and for circuits of narrow
structure (a quantum convolutional network's tree, a shallow circuit read on one wire) a
good contraction order never builds anything near ``2^n`` entries per row. This module
builds that network for each measured term, once per circuit structure:

* only the gates in the term's backward light cone enter (the rest cancel against their
  conjugates);
* diagonal gates (and diagonal observables) add no index: their phases join the indices
  already on their wires;
* the batch is one index shared by every data-dependent tensor, so a contraction runs every
  row at once; its order is found once by ``opt_einsum`` (randomised greedy, seeded) for a
  few rows and reused for any batch;
* the pairwise contractions are hqray's own (:class:`_Step`), planned with that order: the
  rows stay innermost in memory, so the permutations between matrix products move long
  contiguous runs (torch.einsum and tensordot move the rows first).

:func:`network_for` answers None when the circuit's measurements are not all expectation
values (``probs`` and ``state`` need the state) or a state preparation starts it; the
caller (:func:`choose_network`) estimates both paths' time for the batch and takes the faster.
Gradients are torch's through the pairwise contractions (small tensors: memory stays small).
Exactness against the state vector: tests/quantum/test_contraction.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

__all__ = ["Network", "network_for", "choose_network", "contract", "light_cone"]

MAX_TERMS = 4  # every term is its own contraction: beyond a few, the state vector wins anyway
MIN_WIRES = 8  # below, the state vector is cheap and planning (a fraction of a second) would not pay
PATH_REPEATS = 128  # randomised greedy orders tried (seeded per try; see _planned_path)
# The order is planned for a few rows: planned for the real batch, the shared batch index
# pushes opt_einsum towards orders that keep it off tensors as long as possible, and those
# ran 1.2-4x slower here (12-qubit qcnn, B = 256 and 4096) than orders planned for 8 rows;
# minimising size rather than operations was 1.1x faster at both batches.
PLAN_ROWS = 8
MAX_INTERMEDIATE_BYTES = 256 * 2**20  # per call; a larger batch runs on the state vector
# Seconds per forward + backward, fitted on qcnn 8/12 qubits at B = 256 and 4096 (2-core Xeon,
# one torch thread; predictions within 1.5x there): a fixed cost per pairwise contraction or
# state-vector step (torch calls, gate building), and a cost per counted operation per row.
NETWORK_STEP_S, NETWORK_OPERATION_S = 66e-6, 1.18e-9
STATE_STEP_S, STATE_OPERATION_S = 360e-6, 1.36e-9


@dataclass
class _Term:
    coefficient: float
    steps: list[_Step]  # the pairwise contractions, in order (see _plan_steps)
    operands: list[tuple]  # ("gate", i, conj) | ("zero",) | ("observable",)
    observable: torch.Tensor | None
    batched: bool


@dataclass
class Network:
    """Per expectation value: its terms as tensor networks (and its constant part);
    ``cost``: the contractions' estimated scalar operations per row."""

    columns: list[list[_Term]]
    constants: list[float]
    cost: float  # counted operations per row (opt_einsum's count)
    gates: list  # the program's Gate list (kind, arity)
    contractions: int = 0  # pairwise contractions per call
    largest_per_row: float = 0.0  # entries of the largest intermediate, per row

    def seconds(self, batch: int) -> float:
        """Estimated forward + backward seconds for ``batch`` rows."""
        return self.contractions * NETWORK_STEP_S + batch * self.cost * NETWORK_OPERATION_S

    def __call__(self, tensors: list[torch.Tensor | None], constant, batch: int, dtype: torch.dtype,
                 device) -> torch.Tensor:
        """``(batch, expvals)`` from each parametric gate's tensor (a matrix ``(1 or B, d, d)``
        or phase vector ``(1 or B, d)``, as the program's gate tensors are) and ``constant(i)``
        for the fixed gates'."""
        zero = torch.tensor([1.0, 0.0], dtype=dtype, device=device)
        cache: dict[tuple[int, bool], torch.Tensor] = {}

        def gate(i: int, conj: bool) -> torch.Tensor:
            if (i, conj) not in cache:
                g = self.gates[i]
                tensor = tensors[i] if g.parametric else constant(i)
                legs = len(g.wires) * (1 if g.kind == "diag" else 2)
                if g.batched:  # (B, ...) -> (2, ..., 2, B): rows last, as every batched tensor here
                    tensor = tensor.reshape(tensor.shape[0], -1).t().reshape(*[2] * legs, -1)
                else:  # (1, ...): shared by every row (a reshape: indexing [0] costs a zero-filled
                    # tensor per gate in the backward pass)
                    tensor = tensor.reshape(*[2] * legs)
                cache[(i, conj)] = tensor.conj() if conj else tensor
            return cache[(i, conj)]

        outputs = []
        for terms, offset in zip(self.columns, self.constants, strict=True):
            value = torch.full((batch,), offset, dtype=zero.real.dtype, device=device)
            for term in terms:
                arrays = [zero if kind[0] == "zero" else term.observable.to(device=device, dtype=dtype)
                          if kind[0] == "observable" else gate(kind[1], kind[2]) for kind in term.operands]
                result = _run_steps(term.steps, arrays).real
                value = value + term.coefficient * (result if term.batched else result.expand(batch))
            outputs.append(value[:, None])
        return torch.cat(outputs, dim=1)


def light_cone(gates, wires) -> list[int]:
    """The gates (indices, in order) that can influence a measurement on ``wires``: walking
    back from the end, a gate touching the cone joins it and widens it by its wires."""
    cone, kept = set(wires), []
    for i in range(len(gates) - 1, -1, -1):
        if cone & set(gates[i].wires):
            kept.append(i)
            cone |= set(gates[i].wires)
    return kept[::-1]


def _sandwich(gates, kept: list[int], wires: list[int], diagonal: bool, batch: int):
    """The einsum operands of ``<0|U^dagger O U|0>`` over the ``kept`` gates: per operand its
    kind and index symbols, its shape, and whether any operand carries the batch index."""
    import opt_einsum

    symbols = (opt_einsum.get_symbol(i) for i in itertools.count(1))
    rows = opt_einsum.get_symbol(0)
    touched = sorted({w for i in kept for w in gates[i].wires} | set(wires))
    operands, batched = [], False
    sides = {}
    for conj in (False, True):
        current = {w: next(symbols) for w in touched}
        for w in touched:
            operands.append((("zero",), current[w], (2,)))
        for i in kept:
            g = gates[i]
            trail, shape = (rows, (batch,)) if g.batched else ("", ())  # rows last, as the tensors are
            batched |= g.batched
            if g.kind == "diag":
                operands.append((("gate", i, conj), "".join(current[w] for w in g.wires) + trail,
                                 (2,) * len(g.wires) + shape))
                continue
            inputs = "".join(current[w] for w in g.wires)
            for w in g.wires:
                current[w] = next(symbols)
            operands.append((("gate", i, conj), "".join(current[w] for w in g.wires) + inputs + trail,
                             (2,) * (2 * len(g.wires)) + shape))
        sides[conj] = current
    ket, bra = sides[False], sides[True]
    rename = {bra[w]: ket[w] for w in touched if w not in wires or diagonal}
    operands = [(kind, "".join(rename.get(c, c) for c in indices), shape) for kind, indices, shape in operands]
    if diagonal:
        operands.append((("observable",), "".join(ket[w] for w in wires), (2,) * len(wires)))
    else:  # <bra| O |ket>: O's rows on the bra's indices, columns on the ket's
        operands.append((("observable",), "".join(bra[w] for w in wires) + "".join(ket[w] for w in wires),
                         (2,) * (2 * len(wires))))
    return operands, rows, batched


def _term(gates, coefficient: float, wires: list[int], diagonal: bool,
          observable: torch.Tensor) -> tuple[_Term, object]:
    """One term's network, its contraction order planned for :data:`PLAN_ROWS` rows (an
    expression runs any batch); with opt_einsum's path information."""
    import opt_einsum

    operands, rows, batched = _sandwich(gates, light_cone(gates, wires), wires, diagonal, PLAN_ROWS)
    equation = ",".join(indices for _, indices, _ in operands) + "->" + (rows if batched else "")
    shapes = [shape for _, _, shape in operands]
    _, info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=_planned_path(operands, rows, batched))
    steps = _plan_steps([indices for _, indices, _ in operands], info.path, rows if batched else "")
    return _Term(coefficient, steps, [kind for kind, _, _ in operands], observable, batched), info


# A batched contraction sums over a few indices of size 2 while the rows ride along: with the
# rows innermost in memory, every permutation before a matrix product moves runs of B
# contiguous entries (a 12-qubit QCNN's (256, 2^10) intermediate permuted in 1.84 ms with the
# rows first, 0.15 ms with them last), and a gate times a batched tensor is one matrix product
# over all rows. (torch.einsum and tensordot move shared indices, the rows among them, first.)
MUL_SUM_MAX = 4  # both operands batched: up to this many summed entries by broadcasting, beyond by bmm

_Arrangement = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # dims summed out, permutation, shape


@dataclass(frozen=True)
class _Step:
    """One pairwise contraction, its index orders worked out when planning: the live tensors
    at ``positions`` are popped (taken in the other order when ``swap``), each is arranged
    (dimensions only it has and nobody needs summed out, permuted, reshaped to a matrix or a
    batch of them; ``-1`` stands for the rows) and ``kind`` multiplies them:

    * ``mm``: one matrix product, the batched operand on the right, so the rows stay last;
    * ``bmm``: a kept index both share (a diagonal gate's wire) is the product's batch;
    * ``mul``: both carry the rows and up to :data:`MUL_SUM_MAX` entries are summed (over
      dimension 1 when ``summed``): a broadcast multiply;
    * ``bmm_rows``: both carry the rows and more entries are summed: a product per row
      (:class:`_RowsLastProduct`).

    The result is reshaped to ``shape`` (its indices are known to the planner only)."""

    positions: tuple[int, int]
    swap: bool
    kind: str
    first: _Arrangement
    second: _Arrangement
    shape: tuple[int, ...]
    summed: bool = False

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _arranged(a, self.first), _arranged(b, self.second)
        if self.kind == "mm":
            out = torch.mm(a, b)
        elif self.kind == "bmm":
            out = torch.bmm(a, b)
        elif self.kind == "mul":
            out = (a * b).sum(1) if self.summed else a * b
        else:
            out = _RowsLastProduct.apply(a, b)
        return out.reshape(self.shape)


class _RowsLastProduct(torch.autograd.Function):
    """``(p, q, rows) x (q, r, rows) -> (p, r, rows)``, a matrix product per row: the rows moved
    first for ``bmm`` and back last, in the forward and the backward pass, each move one
    contiguous 2-D transpose. (Left to autograd, the backward's gradient arrives as a strided
    view that torch's CPU bmm copies matrix by matrix: at 256 rows of 32 x 32, 1024 small
    copies and 2048 selects per pass, more time than the products.)"""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _rows_moved(a, first=True), _rows_moved(b, first=True)
        ctx.save_for_backward(a, b)
        return _rows_moved(torch.bmm(a, b), first=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        # g b^H = conj(conj(g) b^T) and a^H g = conj(a^T conj(g)): bmm takes plain transposes as
        # they are, conjugate-transposed views ran it 6x slower (B = 4096); conjugating in place
        # beats a conjugating copy (2.3x slower than a plain one there).
        grad = torch.conj_physical_(_rows_moved(grad, first=True))
        grad_a = _rows_moved(torch.bmm(grad, b.transpose(1, 2)).conj_physical_(), first=False) \
            if ctx.needs_input_grad[0] else None
        grad_b = _rows_moved(torch.bmm(a.transpose(1, 2), grad).conj_physical_(), first=False) \
            if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def _rows_moved(tensor: torch.Tensor, first: bool) -> torch.Tensor:
    """``(p, q, rows)`` -> ``(rows, p, q)`` (``first``), or back: always a new contiguous tensor,
    which the backward pass conjugates in place (with one row the transpose is already
    contiguous, and ``contiguous()`` would hand back the incoming gradient itself)."""
    if first:
        p, q, rows = tensor.shape
        return tensor.reshape(p * q, rows).t().clone(memory_format=torch.contiguous_format).view(rows, p, q)
    rows, p, q = tensor.shape
    return tensor.reshape(rows, p * q).t().clone(memory_format=torch.contiguous_format).view(p, q, rows)


def _arranged(tensor: torch.Tensor, arrangement: _Arrangement) -> torch.Tensor:
    summed, permutation, shape = arrangement
    if summed:
        tensor = tensor.sum(summed)
    if permutation:
        tensor = tensor.permute(permutation)
    return tensor.reshape(shape)


def _run_steps(steps: list[_Step], arrays: list[torch.Tensor]) -> torch.Tensor:
    """The network's value from its operands (rows last on the batched ones)."""
    live = list(arrays)
    for step in steps:
        i, j = step.positions
        b, a = live.pop(j), live.pop(i)
        live.append(step(b, a) if step.swap else step(a, b))
    (result,) = live
    return result


def _plan_steps(operands: list[str], path, rows: str) -> list[_Step]:
    """The steps of an opt_einsum ``path`` (pairs of positions in the live list; the result
    appended) over operands given by their index strings, rows last where present; the
    network's result is indexed ``rows`` ("" when no operand has rows)."""
    live = [list(indices) for indices in operands]
    steps = []
    for positions in path:
        if len(positions) != 2:  # greedy orders are pairwise
            raise ValueError(f"contraction step {positions} is not pairwise")
        i, j = sorted(positions)
        kept = {c for k, indices in enumerate(live) if k not in (i, j) for c in indices} | set(rows)
        step, result = _pair(live[i], live[j], kept, rows)
        steps.append(_Step((i, j), *step))
        del live[j], live[i]
        live.append(result)
    if live != [list(rows)]:
        raise ValueError(f"the contraction ends on indices {live}, expected {rows!r}")
    return steps


def _pair(a: list[str], b: list[str], kept: set[str], rows: str) -> tuple[tuple, list[str]]:
    """``(swap, kind, first, second, shape, summed)`` of one step and its result's indices."""
    batched_a, batched_b = rows in a, rows in b
    swap = batched_a and not batched_b or not batched_a and not batched_b and len(a) > len(b)
    if swap:  # the batched (else the larger) operand goes second: a matrix product keeps it on the right
        a, b = b, a
    alone_a = [c for c in a if c not in b and c not in kept]
    alone_b = [c for c in b if c not in a and c not in kept]
    shared = [c for c in a if c in b]
    contracted = [c for c in shared if c not in kept]
    hadamard = [c for c in shared if c in kept and c != rows]
    free_a = [c for c in a if c not in shared and c not in alone_a]
    free_b = [c for c in b if c not in shared and c not in alone_b]
    c = 2 ** len(contracted)

    def size(group: list[str]) -> int:  # entries of a group of indices: 2 each, the rows unknown (-1)
        return -1 if rows in group else 2 ** len(group)

    def arranged(indices: list[str], alone: list[str], order: list[str], shape: tuple) -> _Arrangement:
        remaining = [x for x in indices if x not in alone]
        permutation = tuple(remaining.index(x) for x in order)
        # () for none: each permute is a call and a backward node (220 of 564 were none, qcnn 12)
        return tuple(indices.index(x) for x in alone), () if order == remaining else permutation, shape

    if rows in shared:
        inner = hadamard + [rows]  # adjacent and last on both: one dimension of h x rows entries
        result = free_a + free_b + inner
        if c <= MUL_SUM_MAX:
            kind, shape_a, shape_b = "mul", (size(free_a), c, 1, -1), (1, c, size(free_b), -1)
        else:
            kind, shape_a, shape_b = "bmm_rows", (size(free_a), c, -1), (c, size(free_b), -1)
        first = arranged(a, alone_a, free_a + contracted + inner, shape_a)
        second = arranged(b, alone_b, contracted + free_b + inner, shape_b)
    elif hadamard:
        h = 2 ** len(hadamard)
        kind, result = "bmm", hadamard + free_a + free_b
        first = arranged(a, alone_a, hadamard + free_a + contracted, (h, size(free_a), c))
        second = arranged(b, alone_b, hadamard + contracted + free_b, (h, c, size(free_b)))
    else:
        kind, result = "mm", free_a + free_b
        first = arranged(a, alone_a, free_a + contracted, (size(free_a), c))
        second = arranged(b, alone_b, contracted + free_b, (c, size(free_b)))
    shape = tuple(-1 if x == rows else 2 for x in result)
    return (swap, kind, first, second, shape, kind == "mul" and bool(contracted)), result


def _planned_path(operands, rows: str, batched: bool) -> list[tuple[int, ...]]:
    """A contraction order for the operands, the same in every process.

    opt_einsum's greedy search breaks ties by the iteration order of sets of index symbols,
    and sets of one-character strings iterate in an order that Python's per-process string
    hashing picks: the same 12-qubit QCNN got a different order in each process, and the
    orders' forward + backward times at B = 4096 spread over 2.2x (459-1002 ms, eight orders;
    48-72 ms at B = 256). The search here runs on integer symbols, which hash to themselves.
    (Its counted cost did not rank those orders by time, so it picks among them no better.)"""
    import opt_einsum

    code = {c: i for i, c in enumerate(sorted({c for _, indices, _ in operands for c in indices}))}
    inputs = [frozenset(code[c] for c in indices) for _, indices, _ in operands]
    sizes = {code[c]: size for _, indices, shape in operands for c, size in zip(indices, shape, strict=True)}
    output = frozenset({code[rows]} if batched else ())
    return opt_einsum.RandomGreedy(max_repeats=PATH_REPEATS, minimize="size")(inputs, output, sizes)


def network_for(gates, measure) -> Network | None:
    """The contraction plan of a compiled program's measurements (``measure``: the
    compiler's measurement plan), or None when they are not all expectation values, a
    state preparation starts the circuit, or there are more than :data:`MAX_TERMS` terms."""
    from hqray.quantum.compiler import _observable

    if any(kind != "expval" for kind, _ in measure.items) or any(g.kind == "prep" for g in gates):
        return None
    if sum(1 for _, terms in measure.items for _, wires, _ in terms if wires) > MAX_TERMS:
        return None
    network = Network([], [], 0.0, gates)
    for _, terms in measure.items:
        column, offset = [], 0.0
        for coefficient, wires, observable in terms:
            if not wires:
                offset += float(coefficient)
                continue
            diagonal, tensor = _observable(observable, measure.dtype, measure.device)
            legs = len(wires) * (1 if diagonal else 2)
            term, info = _term(gates, float(coefficient), wires, diagonal, tensor.reshape((2,) * legs))
            rows = PLAN_ROWS if term.batched else 1
            network.cost += float(info.opt_cost) / rows
            network.contractions += len(info.path)
            network.largest_per_row = max(network.largest_per_row, float(info.largest_intermediate) / rows)
            column.append(term)
        network.columns.append(column)
        network.constants.append(offset)
    return network


def state_vector_cost(program) -> float:
    """The state-vector steps' operations per row, counted as the network's are (one per
    multiply-add): a dense step of ``k`` wires touches each amplitude ``2^k`` times, the others once.
    Computed once per program (it is asked on every call)."""
    if "state_vector_cost" not in program._constants:
        size = 2**program.n_wires
        program._constants["state_vector_cost"] = float(
            sum(size * (2 ** len(step.wires) if step.kind == "dense" else 1) for step in program.steps))
    return program._constants["state_vector_cost"]


def state_vector_seconds(program, batch: int) -> float:
    """Estimated forward + backward seconds of the state-vector program for ``batch`` rows."""
    return len(program.steps) * STATE_STEP_S + batch * state_vector_cost(program) * STATE_OPERATION_S


def choose_network(program, measure, batch: int) -> Network | None:
    """The network to run ``program``'s measurements on ``batch`` rows with, when its
    estimated time beats the state vector's and its intermediates fit
    :data:`MAX_INTERMEDIATE_BYTES`; else None. Planned once per program and measurements."""
    key = ("network", measure.key)
    if key not in program._constants:
        program._constants[key] = network_for(program.gates, measure) if program.n_wires >= MIN_WIRES else None
    network = program._constants[key]
    if network is None:
        return None
    itemsize = torch.empty((), dtype=measure.dtype).element_size()
    if network.largest_per_row * batch * itemsize > MAX_INTERMEDIATE_BYTES:
        return None
    return network if network.seconds(batch) < state_vector_seconds(program, batch) else None


def contract(network: Network, program, operations, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``(batch, expvals)`` of ``program`` on the operations' live parameters, by ``network``."""
    from hqray.quantum.program import gate_tensors

    tensors = gate_tensors(operations, program.gates, program.parametric, dtype, device)
    return network(tensors, lambda i: program.constant(i, dtype, device), batch, dtype, device)
