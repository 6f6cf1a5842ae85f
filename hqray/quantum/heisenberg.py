"""Noisy circuits in the Heisenberg picture: evolve the few measured observables, not every row.

Most hybrid-model circuits load the data first, one rotation per wire (an angle
embedding), and then run gates that every row shares (the trained ansatz). Under noise the
rows' density matrices after the embedding are product states, ``rho = (x)_w rho_w``, and
what follows is one channel ``S`` for all rows. An expectation is then

    Tr(P S(rho)) = Tr(S^dagger(P) rho),

so hqray applies the adjoint of the shared steps to the measured Pauli words (a handful)
instead of to the batch's density matrices (hundreds of rows), and contracts each evolved
word with each row's product state wire by wire. The work of the shared part no longer
grows with the batch; the contraction costs ``rows x words x 4^n``, well under a
density-matrix pass per gate. The outcome distributions, readout errors and shots are
those of :mod:`hqray.quantum.mixed` (each Pauli word's marginal distribution comes from
the expectations of its sub-words), and gradients flow through both parts with autograd.

:func:`run_heisenberg` answers ``None`` when a circuit does not have this shape (a
two-qubit gate among the data-dependent ones, or too many measured words for the rows);
the caller then runs the density matrices.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

import torch

from hqray.quantum.mixed import _apply_step, _pauli_word
from hqray.quantum.superoperators import DensityStep, noisy_program

__all__ = ["run_heisenberg", "applies", "data_split", "PauliExpectations"]

# Evolve observables only when there are at most this many per row: beyond it the rows'
# own density matrices are as cheap.
MAX_WORDS_PER_ROW = 0.25
MAX_WORD_WIRES = 4  # a word's marginal needs all 2^m - 1 sub-words
CONTRACTION_ENTRIES = 2**23  # rows x words x 4^(n-m) held at once while contracting
EVOLVED_BYTES = 512 * 2**20  # evolved words held at once (a step reads them and writes as many)

_PAULIS = {
    "PauliX": [[0, 1], [1, 0]],
    "PauliY": [[0, -1j], [1j, 0]],
    "PauliZ": [[1, 0], [0, -1]],
}


def _measured_words(measurements: Sequence, n_wires: int) -> list[tuple[tuple[int, str], ...]] | None:
    """Every Pauli word (sorted ``(wire, name)`` pairs) whose expectation the measurements need:
    each measured word's non-empty sub-words, and Z-words of probs' wires. None: not answerable."""
    from hqray.quantum.compiler import _is_sum, _measurement_kind

    words: set[tuple[tuple[int, str], ...]] = set()

    def add(word: dict[int, str]) -> bool:
        measured = sorted((w, name) for w, name in word.items() if name != "Identity")
        if len(measured) > MAX_WORD_WIRES:
            return False
        for size in range(1, len(measured) + 1):
            words.update(itertools.combinations(measured, size))
        return True

    for measurement in measurements:
        kind = _measurement_kind(measurement)
        if kind == "expval":
            observable = measurement.obs
            terms = observable.terms()[1] if _is_sum(observable) else [observable]
            for term in terms:
                word = _pauli_word(term)
                if word is None or not add(word):
                    return None
        elif kind == "probs":
            wires = [int(w) for w in measurement.wires] or list(range(n_wires))
            if not add({w: "PauliZ" for w in wires}):
                return None
        else:
            return None
    return sorted(words)


@lru_cache(maxsize=256)
def _word_operators(words: tuple, n_wires: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The words as one ``(K, (2,)*2n)`` tensor (built once per words, width, dtype and device)."""
    return torch.stack([_word_operator(word, n_wires, dtype, device) for word in words])


def _word_operator(word: tuple[tuple[int, str], ...], n_wires: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The word as a ``(2,)*2n`` tensor indexed (rows..., columns...)."""
    factors = {w: torch.as_tensor(_PAULIS[name], dtype=dtype, device=device) for w, name in word}
    identity = torch.eye(2, dtype=dtype, device=device)
    operator = torch.ones((), dtype=dtype, device=device)
    for wire in range(n_wires):  # outer product wire by wire, rows and columns interleaved
        operator = torch.einsum("...,ij->...ij", operator, factors.get(wire, identity))
    order = [2 * w for w in range(n_wires)] + [2 * w + 1 for w in range(n_wires)]
    return operator.permute(order)


class PauliExpectations:
    """Per-row expectations of Pauli words, measured like density matrices: each word's
    marginal outcome distribution comes from the expectations of its sub-words."""

    def __init__(self, words: list, values: torch.Tensor):
        self.index = {word: column for column, word in enumerate(words)}
        self.values, self.batch = values, values.shape[0]
        self.real_dtype, self.device = values.dtype, values.device

    def word(self, wires: list[int], rotations: dict[int, str]) -> torch.Tensor:
        """The expectation ``(B,)`` of the Pauli word on ``wires`` (Z, or X / Y where ``rotations``
        turns them to Z): computed already, so read rather than rebuilt from a distribution."""
        names = _measured_paulis(wires, rotations)
        return self.values[:, self.index[tuple(sorted((w, names[w]) for w in wires))]]

    def marginal(self, wires: list[int], rotations: dict[int, str]) -> torch.Tensor:
        """Outcome probabilities ``(B, 2^m)`` of measuring ``wires`` (``rotations`` turn X/Y to Z)."""
        names = _measured_paulis(wires, rotations)
        subsets, signs = _subset_signs(len(wires))
        columns = [self.index[tuple(sorted((wires[a], names[wires[a]]) for a in subset))] for subset in subsets]
        ones = torch.ones((self.batch, 1), dtype=self.real_dtype, device=self.device)
        values = torch.cat([ones, self.values[:, columns]], dim=1)  # the empty word's expectation is 1
        # exact up to rounding; the sampler clips what rounding leaves below 0
        return values @ signs.to(self.real_dtype).to(self.device) / 2 ** len(wires)


def _measured_paulis(wires: list[int], rotations: dict[int, str]) -> dict[int, str]:
    """Each measured wire's Pauli: X where it is rotated by H, Y by "Y->Z", else Z."""
    return {w: {"H": "PauliX", "Y->Z": "PauliY"}.get(rotations.get(w), "PauliZ") for w in wires}


@lru_cache(maxsize=16)
def _subset_signs(m: int) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """The non-empty subsets of ``m`` measured wires, and ``signs[s, x] = (-1)^(bits of outcome x
    in subset s)`` with the empty subset first: ``P(x) = sum_s <Z_s> signs[s, x] / 2^m``."""
    subsets = [subset for size in range(1, m + 1) for subset in itertools.combinations(range(m), size)]
    outcomes = [[(x >> (m - 1 - a)) & 1 for a in range(m)] for x in range(2**m)]
    signs = [[1.0] * 2**m] + [[(-1.0) ** sum(bits[a] for a in subset) for bits in outcomes] for subset in subsets]
    return subsets, torch.tensor(signs, dtype=torch.float64)


def _product_states(program, matrices: Sequence[torch.Tensor | None], by_row: Sequence[bool], n_wires: int,
                    rows: int, variants: int, like: torch.Tensor) -> torch.Tensor:
    """Each row's one-qubit density matrices after the one-qubit prefix (``matrices``, with the
    channels ``program`` holds after each gate): ``(rows, n, 4)`` (row, column), ``rows =
    variants x batch``, variant-major.

    Each gate acts as ``C vec(U rho U^dagger)`` on a ``(rows, 2, 2)`` density matrix, never as
    a per-row ``4 x 4`` superoperator: a quarter of the work, and of the gradient's.
    """
    per_wire: dict[int, torch.Tensor] = {}
    for index, (matrix, row_matrix) in enumerate(zip(matrices, by_row, strict=True)):
        wires = program.wires[index]
        if not wires:
            continue
        if matrix is None:  # a parameter-free gate: its matrix without the channel
            matrix = program.matrix(index)
        if matrix.ndim == 3 and not row_matrix:  # one per variant: the same for the variant's rows
            matrix = matrix.repeat_interleave(rows // variants, dim=0)
        rho = per_wire.get(wires[0])
        if rho is None:  # on |0><0|: the outer product of the matrix's first column
            column = matrix[..., :, 0]
            rho = column[..., :, None] * column.conj()[..., None, :]
        else:
            rho = matrix @ rho @ matrix.mH
        channel = program.channels[index]
        rho = (rho.reshape(*rho.shape[:-2], 4) @ channel.T).reshape(*rho.shape)
        per_wire[wires[0]] = rho.expand(rows, 2, 2)
    start = torch.zeros((rows, 2, 2), dtype=like.dtype, device=like.device)
    start[:, 0, 0] = 1
    return torch.stack([per_wire.get(wire, start).reshape(rows, 4) for wire in range(n_wires)], dim=1)


def _joint(states: torch.Tensor) -> torch.Tensor:
    """Rows' product states over several wires, ``(R, w, 4)`` -> ``(R, 4^w)`` (first wire slowest)."""
    joint = states[:, 0]
    for wire in range(1, states.shape[1]):
        joint = (joint[:, :, None] * states[:, wire, None, :]).reshape(states.shape[0], -1)
    return joint


def _contract(evolved: torch.Tensor, states: torch.Tensor, n_wires: int, variants: int) -> torch.Tensor:
    """``Tr(O_vk rho_vb)`` for evolved words ``(V * K, (2,)*2n)`` and product states ``(V * B, n, 4)``:
    ``(V * B, K)``, each variant's rows with its own words.

    Two stages: the rows' joint states over the first half of the wires meet the words in one
    matrix product (``B x 4^m`` by ``4^m x K 4^(n-m)``, what BLAS does best), and the result
    meets the joint states over the other half row by row.
    """
    words = evolved.shape[0] // variants
    order = [0] + [1 + index for w in range(n_wires) for index in (w, n_wires + w)]
    # For Hermitian O: Tr(O rho) = sum_rc O[c, r] rho[r, c] = sum_rc conj(O[r, c]) rho[r, c].
    left_wires = (n_wires + 1) // 2
    paired = evolved.conj().permute(order).reshape(variants, words, 4**left_wires, -1)
    paired = paired.transpose(1, 2).reshape(variants, 4**left_wires, -1)  # (V, 4^m, K 4^(n-m))
    rows = states.shape[0] // variants
    left = _joint(states[:, :left_wires]).reshape(variants, rows, -1)
    right = (_joint(states[:, left_wires:]) if left_wires < n_wires
             else torch.ones((states.shape[0], 1), dtype=states.dtype, device=states.device))
    chunk = max(1, CONTRACTION_ENTRIES // max(1, paired.shape[-1]))
    out = []
    for start in range(0, rows, chunk):
        partial = torch.bmm(left[:, start:start + chunk], paired)  # (V, b, K 4^(n-m))
        partial = partial.reshape(variants, -1, words, right.shape[-1])
        # Row by row, a dot product of a few entries: as a product and a sum (a batched matrix
        # product of 1 x r by r x k matrices is ten times slower, gradients included).
        right_rows = right.reshape(variants, rows, 1, -1)[:, start:start + chunk]
        out.append((partial * right_rows).sum(dim=-1).real)
    return torch.cat(out, dim=1).reshape(-1, words)


def data_split(gates: Sequence, by_row: Sequence[bool]) -> int | None:
    """Where the shared gates start (after the last data-dependent one), or None when a
    data-dependent part acts on two wires or more (the rows are not product states there)."""
    data_gates = [index for index, row_matrix in enumerate(by_row) if row_matrix]
    split = (data_gates[-1] + 1) if data_gates else 0
    return None if any(len(op.wires) > 1 for op in gates[:split]) else split


def _plan(gates: Sequence, by_row: Sequence[bool], measurements: Sequence, n_wires: int,
          batch: int) -> tuple[int, list] | None:
    """Where the shared gates start and the words to evolve, or None: not this path."""
    split = data_split(gates, by_row)
    if split is None:
        return None
    words = _measured_words(measurements, n_wires)
    return (split, words) if words and len(words) <= MAX_WORDS_PER_ROW * batch else None


def applies(gates: Sequence, by_row: Sequence[bool], measurements: Sequence, n_wires: int, batch: int) -> bool:
    """Whether :func:`run_heisenberg` runs this circuit on ``batch`` rows (else: density matrices)."""
    return _plan(gates, by_row, measurements, n_wires, batch) is not None


def run_heisenberg(gates: Sequence, matrices: Sequence[torch.Tensor], by_row: Sequence[bool],
                   measurements: Sequence, n_wires: int, batch: int, noise, like: torch.Tensor,
                   variants: int = 1) -> PauliExpectations | None:
    """The measured words' expectations on every row, or None when the circuit has not the shape
    (data-dependent gates all on one wire each, then shared gates; few words per row).

    ``matrices[k]`` is gate k's matrix: ``(d, d)``; with ``by_row[k]`` one per row of every
    variant, ``(variants * batch, d, d)`` variant-major; otherwise one per variant
    ``(variants, d, d)`` (parameter-shift's shifted circuits). Rows come back variant-major.
    Variants' words evolve in groups whose operators stay under ``EVOLVED_BYTES``.
    """
    plan = _plan(gates, by_row, measurements, n_wires, batch)
    if plan is None:
        return None
    split, words = plan
    program = noisy_program(gates, noise, like)
    superoperators = program.superoperators(matrices, start=split)
    adjoints: list[DensityStep] = program.steps(superoperators, start=split, adjoint=True)
    states = _product_states(program, matrices[:split], by_row[:split], n_wires, variants * batch, variants, like)
    initial = _word_operators(tuple(words), n_wires, like.dtype, str(like.device))
    group = max(1, EVOLVED_BYTES // (len(words) * 4**n_wires * like.element_size()))
    values = []
    for first in range(0, variants, group):
        last = min(variants, first + group)
        evolved = initial.repeat(last - first, *[1] * (2 * n_wires))  # variant-major: (G * K, ...)
        for step in reversed(adjoints):  # the adjoint channel, last step first
            adjoint = step.superoperator
            if adjoint.ndim == 3:  # one per variant: the same for each of the variant's words
                step = DensityStep(step.wires, adjoint[first:last].repeat_interleave(len(words), dim=0))
            evolved = _apply_step(evolved, step, n_wires)
        values.append(_contract(evolved, states[first * batch:last * batch], n_wires, last - first))
    return PauliExpectations(words, torch.cat(values))
