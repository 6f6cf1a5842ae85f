"""A noisy circuit's structure compiled once: its channels, and which gates fuse into which step.

:mod:`hqray.quantum.mixed` runs a circuit's device gates (one- and two-qubit), each followed
by the channels of its :class:`~hqray.quantum.noise.NoiseModel`, as superoperators on
density matrices (or, in the Heisenberg picture, on the measured words). Everything that
depends only on the circuit's structure and the noise is compiled once per structure by
:func:`noisy_program` and cached:

- each gate's channel superoperators (a calibration's T1/T2 and gate errors per wire and
  gate kind), and the superoperators of parameter-free gates with their channels;
- the fusion plan: one-qubit gates wait on their wire and are absorbed into the next
  two-qubit step that touches it, so a circuit costs about one pass per two-qubit gate;
- the groups of same-kind gates whose matrices are built together.

Each call then builds every gate matrix of a kind at once, every one-qubit superoperator of
one shape in one product, and every two-qubit step of one shape in one product: a handful
of tensor operations however many gates the circuit has.

Index conventions: a superoperator acts on ``vec(rho)`` indexed (rows..., columns...); a
one-qubit one is ``(row, column)`` out by ``(row, column)`` in, a two-qubit one
``(row a, row b, column a, column b)`` out by the same in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["DensityStep", "NoisyProgram", "noisy_program", "kron_conj", "channel_superoperator"]

PROGRAM_CACHE_SIZE = 128


@dataclass
class DensityStep:
    """One superoperator on ``wires``: ``(4^k, 4^k)`` or a batch ``(B, 4^k, 4^k)``."""

    wires: tuple[int, ...]
    superoperator: torch.Tensor


def kron_conj(matrix: torch.Tensor) -> torch.Tensor:
    """``U (x) conj(U)`` (batched): acts on vec(rho) indexed (rows..., columns...)."""
    d = matrix.shape[-1]
    product = matrix[..., :, None, :, None] * matrix.conj()[..., None, :, None, :]
    return product.reshape(*matrix.shape[:-2], d * d, d * d)


def channel_superoperator(channels: Sequence, like: torch.Tensor) -> torch.Tensor:
    """The channels (all on one wire, in order) as one ``4 x 4`` superoperator."""
    key = tuple((type(channel), tuple(float(p) for p in channel.parameters)) for channel in channels)
    return _cached_superoperator(key, like.dtype, str(like.device))


@lru_cache(maxsize=4096)
def _cached_superoperator(key: tuple, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A noise model's channels repeat for every gate of every call: built once (a few per device)."""
    total = torch.eye(4, dtype=dtype, device=device)
    for kind, parameters in key:
        krauses = [torch.as_tensor(np.asarray(k), device=device).to(dtype)
                   for k in kind.compute_kraus_matrices(*parameters)]
        total = sum(kron_conj(k) for k in krauses) @ total
    return total


def pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two one-qubit superoperators ``(..., 4, 4)`` side by side as one two-qubit ``(..., 16, 16)``."""
    a = a.reshape(*a.shape[:-2], 2, 2, 2, 2)
    b = b.reshape(*b.shape[:-2], 2, 2, 2, 2)
    joint = torch.einsum("...ACEG,...BDFH->...ABCDEFGH", a, b)
    return joint.reshape(*joint.shape[:-8], 16, 16)


@dataclass(frozen=True)
class _Fused:
    """A step: two-qubit gate ``gate`` (None: a lone one-qubit chain) after ``chains``, per wire
    the one-qubit gates pending there, in the order they run."""

    wires: tuple[int, ...]
    gate: int | None
    chains: tuple[tuple[int, ...], ...]


def _plan(wires_of: Sequence[tuple[int, ...]], start: int, stop: int) -> list[_Fused]:
    steps: list[_Fused] = []
    pending: dict[int, list[int]] = {}
    for index in range(start, stop):
        wires = wires_of[index]
        if not wires:  # a global phase: no effect on a density matrix
            continue
        if len(wires) == 1:
            pending.setdefault(wires[0], []).append(index)
            continue
        steps.append(_Fused(wires, index, tuple(tuple(pending.pop(w, ())) for w in wires)))
    steps.extend(_Fused((wire,), None, (tuple(pending[wire]),)) for wire in sorted(pending))
    return steps


class NoisyProgram:
    """A noisy circuit's structure compiled against a noise model (see the module docstring).

    Args:
        gates: the device gates (one- or two-qubit operations, as :func:`hqray.quantum.noise._gates`
            gives them) of one call: only their names, wires and parameter-free matrices are kept.
        noise: the noise model, or None.
        like: a tensor of the dtype and device the superoperators take.
    """

    def __init__(self, gates: Sequence, noise, like: torch.Tensor):
        self.wires = [tuple(int(w) for w in op.wires) for op in gates]
        self.like = like
        # After gate i: its channels as a superoperator, per wire (1q: 4 x 4; 2q: the pair, 16 x 16).
        self.channels: list[torch.Tensor | None] = []
        self.constants: dict[int, torch.Tensor] = {}  # parameter-free gate -> channels o gate
        self._fixed: dict[int, torch.Tensor] = {}  # parameter-free gate -> its matrix
        from hqray.quantum.mixed import _matrix

        for index, op in enumerate(gates):
            wires = self.wires[index]
            channels = noise.gate_channels(op) if noise is not None and wires else []
            if not wires:
                self.channels.append(None)
                continue
            per_wire = [channel_superoperator([c for c in channels if int(c.wires[0]) == w], like) for w in wires]
            self.channels.append(per_wire[0] if len(wires) == 1 else pair(*per_wire))
            if op.num_params == 0:
                self._fixed[index] = _matrix(op, like)
                self.constants[index] = self.channels[index] @ kron_conj(self._fixed[index])
        self._plans: dict[tuple[int, int], list[_Fused]] = {}
        self._stacks: dict[tuple, torch.Tensor] = {}  # constant stacks a call would rebuild

    def matrix(self, index: int) -> torch.Tensor:
        """Parameter-free gate ``index``'s matrix (its channels not included)."""
        return self._fixed[index]

    def _constant_stack(self, key: tuple, build) -> torch.Tensor:
        if key not in self._stacks:
            self._stacks[key] = build()
        return self._stacks[key]

    def superoperators(self, matrices: Sequence[torch.Tensor | None], start: int = 0) -> list[torch.Tensor | None]:
        """Each gate's superoperator with its channels after it: ``(D, D)``, or ``(N, D, D)`` for
        a gate whose matrix is a batch; None before gate ``start``. ``matrices[i]`` may be None
        for parameter-free gates."""
        out: list[torch.Tensor | None] = [self.constants.get(i) if i >= start else None
                                          for i in range(len(self.wires))]
        groups: dict[tuple, list[int]] = {}
        for index in range(start, len(matrices)):
            if index not in self.constants and self.wires[index]:
                groups.setdefault(tuple(matrices[index].shape), []).append(index)
        for members in groups.values():
            stacked = kron_conj(torch.stack([matrices[i] for i in members]))
            channels = self._constant_stack(("channels", tuple(members)),
                                            lambda members=members: torch.stack([self.channels[i] for i in members]))
            if stacked.ndim == 4:  # (G, N, D, D): one channel per gate for all N
                channels = channels[:, None]
            for index, superoperator in zip(members, (channels @ stacked).unbind(0), strict=True):
                out[index] = superoperator
        return out

    def steps(self, superoperators: Sequence[torch.Tensor | None], start: int = 0,
              stop: int | None = None, adjoint: bool = False) -> list[DensityStep]:
        """The fused steps of gates ``start..stop`` (their superoperators from :meth:`superoperators`);
        with ``adjoint``, each step's adjoint superoperator (what the Heisenberg picture applies)."""
        stop = len(self.wires) if stop is None else stop
        plan = self._plans.get((start, stop))
        if plan is None:
            plan = self._plans[(start, stop)] = _plan(self.wires, start, stop)
        chains = {}
        for fused in plan:  # a wire's pending one-qubit gates, later ones on the left
            for chain in fused.chains:
                if chain:
                    total = superoperators[chain[0]]
                    for index in chain[1:]:
                        total = superoperators[index] @ total
                    chains[chain] = total
        steps: list[DensityStep | None] = [None] * len(plan)
        groups: dict[tuple, list[int]] = {}
        for position, fused in enumerate(plan):
            if fused.gate is None:
                chain = chains[fused.chains[0]]
                steps[position] = DensityStep(fused.wires, chain.mH if adjoint else chain)
                continue
            befores = [chains.get(chain) for chain in fused.chains]
            # Shapes are (D, D) or one batch (N, D, D): the longest is the step's.
            batch = max((s.shape[:-2] for s in [superoperators[fused.gate], *befores] if s is not None), key=len)
            groups.setdefault((tuple(batch), tuple(b is None for b in befores)), []).append(position)
        identity = torch.eye(4, dtype=self.like.dtype, device=self.like.device)
        for (batch, missing), members in groups.items():
            gates = [plan[p].gate for p in members]
            if not batch and all(g in self.constants for g in gates):
                gate = self._constant_stack(("gates", tuple(gates)),
                                            lambda gates=gates: torch.stack([self.constants[g] for g in gates]))
            else:
                gate = torch.stack([superoperators[g].expand(*batch, 16, 16) for g in gates])
            if all(missing):
                fused = gate
            else:
                sides = [torch.stack([(chains.get(plan[p].chains[side]) if not missing[side] else identity)
                                      .expand(*batch, 4, 4) for p in members]) for side in (0, 1)]
                fused = gate @ pair(*sides)
            if adjoint:
                fused = fused.mH
            for position, superoperator in zip(members, fused.unbind(0), strict=True):
                steps[position] = DensityStep(plan[position].wires, superoperator)
        return steps


_PROGRAMS: OrderedDict[tuple, NoisyProgram] = OrderedDict()
_STRUCTURES: OrderedDict[int, tuple[Sequence, tuple]] = OrderedDict()  # id -> (the gates, their key)


def _structure(gates: Sequence, structure_key) -> tuple:
    """``structure_key(gates)``, remembered for the same list object (a traced circuit passes
    one list every call; the reference kept here stops its id from being reused)."""
    hit = _STRUCTURES.get(id(gates))
    if hit is not None and hit[0] is gates:
        return hit[1]
    key = structure_key(gates)
    _STRUCTURES[id(gates)] = (gates, key)
    if len(_STRUCTURES) > PROGRAM_CACHE_SIZE:
        _STRUCTURES.popitem(last=False)
    return key


def noisy_program(gates: Sequence, noise, like: torch.Tensor) -> NoisyProgram:
    """The :class:`NoisyProgram` of these gates' structure under ``noise``, compiled on first
    sight and cached (least recently used beyond ``PROGRAM_CACHE_SIZE``)."""
    from hqray.quantum.program import structure_key

    # A NoiseModel is frozen: hashed by its fields, no serialisation per call.
    key = (_structure(gates, structure_key), noise, like.dtype, str(like.device))
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = NoisyProgram(gates, noise, like)
        if len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
            _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
    return program
