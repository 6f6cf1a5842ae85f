"""Batched quantum trajectories: noisy circuits too wide for density matrices.

Each row runs as ``trajectories`` state vectors (``2^n`` amplitudes instead of the density
matrix's ``4^n``). After every gate, each of its channels picks one Kraus operator per
state with the Born probability ``||K_i psi||^2`` and renormalises, so the average over
trajectories of any measured distribution is an unbiased estimate of the density-matrix
result, with a standard error shrinking as ``1 / sqrt(trajectories)``. All rows and
trajectories of a chunk are one batch: each gate is one batched product, each channel
one draw and one gather. Measurements, readout errors and shots are those of
:mod:`hqray.quantum.mixed`, on the trajectory-averaged distribution.

Outputs are estimates and carry no gradient: train on the ``density_matrix`` strategy
(up to 14 qubits) and run wider noisy circuits here.

**Example**

>>> import pennylane as qml, torch
>>> from hqray.quantum.noise import NoiseModel
>>> def circuit(inputs, weights):
...     qml.RY(inputs[..., 0], wires=0)
...     return qml.expval(qml.PauliZ(0))
>>> out = run_trajectories(circuit, 1, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(0),
...                        NoiseModel(depolarizing=0.3), trajectories=20_000, seed=0)
>>> abs(float(out) - (1 - 4 * 0.3 / 3)) < 0.02
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hqray.errors import CircuitError
from hqray.quantum.noise import NoiseModel, _gates

__all__ = ["run_trajectories", "MAX_TRAJECTORY_QUBITS", "DEFAULT_TRAJECTORIES"]

MAX_TRAJECTORY_QUBITS = 26
DEFAULT_TRAJECTORIES = 256
CHUNK_BYTES = 512 * 2**20  # states, and one channel's candidate branches, held at once


def _apply_matrix(states: torch.Tensor, matrix: torch.Tensor, wires: list[int]) -> torch.Tensor:
    """``states`` (N, 2, ..., 2) after ``matrix`` ((d, d) or (N, d, d)) on ``wires``."""
    k = len(wires)
    axes = [1 + w for w in wires]
    moved = states.movedim(axes, list(range(1, 1 + k)))
    shape = moved.shape
    flat = matrix @ moved.reshape(shape[0], 2**k, -1)
    return flat.reshape(shape).movedim(list(range(1, 1 + k)), axes)


def _mixed_unitary(krauses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(probabilities, unitaries)`` when every Kraus operator is ``sqrt(p) U`` (depolarizing,
    bit and phase flips): the branch then does not depend on the state."""
    weights = []
    for k in krauses:
        gram = k.conj().T @ k
        if not np.allclose(gram, gram[0, 0] * np.eye(k.shape[0]), atol=1e-12):
            return None
        weights.append(float(gram[0, 0].real))
    kept = [i for i, w in enumerate(weights) if w > 0]
    probabilities = np.array([weights[i] for i in kept])
    return probabilities / probabilities.sum(), np.stack([krauses[i] / np.sqrt(weights[i]) for i in kept])


def _apply_channel(states: torch.Tensor, channel, generator: torch.Generator) -> torch.Tensor:
    """Every state after one Kraus operator of ``channel``, drawn with its Born probability."""
    wire = int(channel.wires[0])
    count = states.shape[0]
    matrices = [np.asarray(k) for k in channel.kraus_matrices()]
    mixed = _mixed_unitary(matrices)
    if mixed is not None:  # one draw per state from fixed probabilities, one batched product
        probabilities, unitaries = mixed
        chosen = torch.multinomial(torch.as_tensor(probabilities).expand(count, -1), 1, replacement=True,
                                   generator=generator).squeeze(1)
        table = torch.as_tensor(unitaries, device=states.device).to(states.dtype)
        return _apply_matrix(states, table[chosen.to(states.device)], [wire])
    krauses = [torch.as_tensor(k, device=states.device).to(states.dtype) for k in matrices]
    branches = torch.stack([_apply_matrix(states, k, [wire]).reshape(count, -1) for k in krauses])
    weights = (branches.abs() ** 2).sum(dim=2).T.clamp(min=0)         # (states, branches)
    chosen = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    rows = torch.arange(count, device=states.device)
    norms = weights[rows, chosen].sqrt().clamp(min=1e-30)
    return (branches[chosen, rows] / norms[:, None]).reshape(states.shape)


class Trajectories:
    """The states of ``trajectories`` runs per row, measured by averaging over each row's runs."""

    def __init__(self, states: torch.Tensor, trajectories: int, n_wires: int):
        self.states, self.trajectories, self.n_wires = states, trajectories, n_wires
        self.batch = states.shape[0] // trajectories
        self.real_dtype, self.device = states.real.dtype, states.device

    def probabilities(self, rotations: dict[int, str]) -> torch.Tensor:
        from hqray.quantum.mixed import ROTATIONS

        states = self.states
        for wire, rotation in rotations.items():
            matrix = torch.as_tensor(ROTATIONS[rotation], device=states.device).to(states.dtype)
            states = _apply_matrix(states, matrix, [wire])
        each = (states.abs() ** 2).reshape(self.batch, self.trajectories, -1)
        return each.mean(dim=1)


def run_trajectories(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor,
                     noise: NoiseModel | None, trajectories: int = DEFAULT_TRAJECTORIES, shots: int | None = None,
                     seed: int | None = None) -> torch.Tensor:
    """Estimates of ``qfunc(inputs, weights)`` under ``noise``: ``(B, outputs)``, without gradients.

    Rows run in chunks whose states stay under :data:`CHUNK_BYTES`; each chunk draws from
    its own stream of the seeded generator.
    """
    from hqray.quantum.compiler import record_tape

    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be (batch, features), got shape {tuple(inputs.shape)}")
    if not 1 <= n_wires <= MAX_TRAJECTORY_QUBITS:
        raise CircuitError(f"{n_wires} qubits: trajectories run 1 to {MAX_TRAJECTORY_QUBITS} qubits")
    if trajectories < 1:
        raise CircuitError(f"trajectories must be at least 1, got {trajectories}")
    dtype = torch.complex64 if inputs.dtype == torch.float32 else torch.complex128
    per_row = 2**n_wires * torch.zeros((), dtype=dtype).element_size() * trajectories * 6  # state + branches
    chunk = max(1, CHUNK_BYTES // per_row)
    seeds = np.random.SeedSequence(seed).spawn((inputs.shape[0] + chunk - 1) // chunk)
    outputs = []
    with torch.no_grad():
        for index, start in enumerate(range(0, inputs.shape[0], chunk)):
            rows = inputs[start:start + chunk]
            stream = int(seeds[index].generate_state(1)[0])
            outputs.append(_run_chunk(record_tape(qfunc, rows, weights), n_wires, rows.shape[0], noise,
                                      trajectories, shots, stream, dtype, inputs.device))
    return torch.cat(outputs).to(inputs.dtype)


def _run_chunk(tape, n_wires: int, batch: int, noise: NoiseModel | None, trajectories: int, shots: int | None,
               seed: int, dtype: torch.dtype, device) -> torch.Tensor:
    from hqray.quantum.compiler import _check_wires
    from hqray.quantum.mixed import _has_readout_error, _matrix, _measure, _Sampler

    _check_wires(tape, n_wires)
    like = torch.zeros((), dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    states = torch.zeros((batch * trajectories, 2**n_wires), dtype=dtype, device=device)
    states[:, 0] = 1
    states = states.reshape(-1, *[2] * n_wires)
    for op in _gates(tape.operations):
        wires = [int(w) for w in op.wires]
        if not wires:  # a global phase
            continue
        matrix = _matrix(op, like)
        if matrix.ndim == 3:  # one matrix per row: the same for each of the row's trajectories
            matrix = matrix.repeat_interleave(trajectories, dim=0)
        states = _apply_matrix(states, matrix, wires)
        for channel in noise.gate_channels(op) if noise is not None else []:
            states = _apply_channel(states, channel, generator)
    confusion = noise.readout_matrices(n_wires) if noise is not None and _has_readout_error(noise) else None
    sampler = _Sampler(shots, seed)
    return _measure(tape.measurements, Trajectories(states, trajectories, n_wires), n_wires, confusion, sampler)
