"""Batched quantum trajectories: noisy circuits too wide for density matrices.

Each row runs as ``trajectories`` state vectors (``2^n`` amplitudes instead of the density
matrix's ``4^n``). After every gate, each of its channels picks one Kraus operator per
state with the Born probability ``||K_i psi||^2`` and renormalises: the average over
trajectories of any measured distribution is an unbiased estimate of the density-matrix
result, with a standard error that shrinks as ``1 / sqrt(trajectories)``. All rows and
trajectories of a chunk are one batch: gates apply to all of them at once (the compiler's
kernels), channels by one gather over the sampled branches. Readout errors and shots then
act on the trajectory-averaged distribution, as in :mod:`hqray.quantum.mixed`.

Outputs are estimates and are not differentiable: train on the ``density_matrix`` strategy
(up to 14 qubits) and score wide noisy circuits here.

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

from collections.abc import Callable, Sequence

import numpy as np
import torch

from hqray.errors import CircuitError
from hqray.quantum.noise import NoiseModel, _gates

__all__ = ["run_trajectories", "MAX_TRAJECTORY_QUBITS"]

MAX_TRAJECTORY_QUBITS = 26
CHUNK_BYTES = 512 * 2**20  # states (and one channel's candidates) held at once


def _apply_channel(states: torch.Tensor, channel, n_wires: int, generator: torch.Generator) -> torch.Tensor:
    """Every state after one Kraus operator of ``channel``, drawn with its Born probability."""
    from hqray.quantum.compiler import _apply_one_wire

    wire = int(channel.wires[0])
    krauses = [torch.as_tensor(np.asarray(k), dtype=states.dtype, device=states.device)
               for k in channel.kraus_matrices()]
    candidates = torch.stack([_apply_one_wire(states, _Matrix(k), wire, n_wires, None) for k in krauses])
    flat = candidates.reshape(len(krauses), states.shape[0], -1)
    probabilities = (flat.abs() ** 2).sum(dim=2).T.real.clamp(min=0)      # (states, branches)
    chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
    picked = flat[chosen, torch.arange(states.shape[0], device=states.device)]
    norms = probabilities[torch.arange(states.shape[0], device=states.device), chosen].sqrt().clamp(min=1e-30)
    return (picked / norms[:, None]).reshape(states.shape)


class _Matrix:
    """A fixed matrix posing as an operation for the compiler's one-wire kernel."""

    def __init__(self, matrix: torch.Tensor):
        self.matrix = matrix
        self.wires = [0]


def _one_wire(states, op, wire, n_wires):
    from hqray.quantum.compiler import _apply_one_wire
    return _apply_one_wire(states, op, wire, n_wires, None)


def run_trajectories(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor,
                     noise: NoiseModel | None, trajectories: int = 200, shots: int | None = None,
                     seed: int | None = None) -> torch.Tensor:
    """Estimates of ``qfunc(inputs, weights)`` under ``noise``: ``(B, outputs)``, no gradients."""
    from hqray.quantum.compiler import record_tape

    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be (batch, features), got shape {tuple(inputs.shape)}")
    if not 1 <= n_wires <= MAX_TRAJECTORY_QUBITS:
        raise CircuitError(f"{n_wires} qubits: trajectories run 1 to {MAX_TRAJECTORY_QUBITS} qubits")
    if trajectories < 1:
        raise CircuitError(f"trajectories must be at least 1, got {trajectories}")
    dtype = torch.complex64 if inputs.dtype == torch.float32 else torch.complex128
    per_row = 2**n_wires * torch.zeros((), dtype=dtype).element_size() * trajectories * 5  # state + 4 candidates
    chunk = max(1, CHUNK_BYTES // per_row)
    seeds = np.random.SeedSequence(seed).spawn((inputs.shape[0] + chunk - 1) // chunk)
    outputs = []
    with torch.no_grad():
        for index, start in enumerate(range(0, inputs.shape[0], chunk)):
            rows = inputs[start:start + chunk]
            tape = record_tape(qfunc, rows, weights)
            stream = int(seeds[index].generate_state(1)[0])
            outputs.append(_run_chunk(tape, n_wires, rows.shape[0], noise, trajectories, shots, stream, dtype,
                                      inputs.device))
    return torch.cat(outputs).to(inputs.dtype)


def _run_chunk(tape, n_wires: int, batch: int, noise: NoiseModel | None, trajectories: int, shots: int | None,
               seed: int, dtype: torch.dtype, device) -> torch.Tensor:
    from hqray.quantum.compiler import _apply, _check_wires
    from hqray.quantum.mixed import _measure, _Sampler

    _check_wires(tape, n_wires)
    generator = torch.Generator(device=device).manual_seed(seed)
    states = torch.zeros((batch * trajectories, 2**n_wires), dtype=dtype, device=device)
    states[:, 0] = 1
    states = states.reshape(-1, *[2] * n_wires)
    for op in _gates(tape.operations):
        wires = [int(w) for w in op.wires]
        if not wires:
            continue
        states = _apply(states, _Repeated(op, trajectories), wires, n_wires)
        for channel in noise.gate_channels(op) if noise is not None else []:
            states = _apply_channel(states, channel, n_wires, generator)
    # Trajectory-averaged density matrix, measured as hqray.quantum.mixed measures one: only
    # its diagonal after basis rotations is needed, so the average is taken per measurement.
    return _measure_average(tape.measurements, states, batch, trajectories, n_wires, noise, shots, seed)


class _Repeated:
    """An operation whose batched (per row) parameters are repeated for each trajectory."""

    def __init__(self, op, trajectories: int):
        self.op, self.trajectories = op, trajectories
        self.name, self.wires, self.data = op.name, op.wires, op.data

    def __getattr__(self, name):
        return getattr(self.op, name)


def _measure_average(measurements: Sequence, states, batch, trajectories, n_wires, noise, shots, seed):
    raise NotImplementedError
