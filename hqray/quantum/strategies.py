"""Execution strategies: how a CircuitSpec runs on a batch.

Each strategy is one registered class with ``unsupported(spec)`` (why it cannot run a
spec, or ``None``), ``cost(spec, batch)`` (a rough operation count used by the planner)
and ``run(spec, inputs, weights)``. A new strategy is one more ``@register_strategy``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache

import torch

from hqray.errors import CircuitError
from hqray.quantum import gates
from hqray.quantum.adjoint import Circuit, layer_blocks, simulate
from hqray.quantum.spec import FAST_ANSATZE, CircuitSpec

__all__ = ["ExecutionStrategy", "register_strategy", "strategy_registry", "FoldedStrategy",
           "StateVectorStrategy", "CompiledStrategy", "DensityMatrixStrategy", "TrajectoryStrategy", "DeviceStrategy"]

# Cost model, in seconds for forward + backward, calibrated on a 2-core x86 CPU
# (benchmarks/RESULTS.md). Only the ratios between strategies matter for planning.
SECONDS_PER_OP = 30e-6  # fixed cost of one torch operation (dispatch, autograd)
SECONDS_PER_FLOP = 1e-11  # dense matrix products (BLAS)
SECONDS_PER_AMPLITUDE_PASS = 3e-9  # one read + write of a complex amplitude

_STRATEGIES: dict[str, ExecutionStrategy] = {}


def register_strategy(cls: type[ExecutionStrategy]) -> type[ExecutionStrategy]:
    """Class decorator adding a strategy, in order of preference, to the registry."""
    _STRATEGIES[cls.name] = cls()
    return cls


def strategy_registry() -> dict[str, ExecutionStrategy]:
    """Registered strategies by name, in fallback order."""
    return dict(_STRATEGIES)


class ExecutionStrategy(ABC):
    """One way of running a spec on a batch."""

    name: str = ""

    @abstractmethod
    def unsupported(self, spec: CircuitSpec) -> str | None:
        """Why this strategy cannot run ``spec``, or ``None`` if it can."""

    @abstractmethod
    def cost(self, spec: CircuitSpec, batch: int) -> float:
        """Estimated seconds for forward + backward on ``batch`` rows (overheads included)."""

    @abstractmethod
    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Outputs ``(B, n_outputs)``, differentiable in ``inputs`` and ``weights``."""


def _exact_fast_path_reason(spec: CircuitSpec) -> str | None:
    if not spec.hand_written:
        return (f"it runs the angle embedding with {list(FAST_ANSATZE)} only, not {spec.embedding!r} + "
                f"{spec.ansatz!r}{' (readout)' if spec.measurement == 'readout' else ''}")
    return _inexact_reason(spec)


def _inexact_reason(spec: CircuitSpec) -> str | None:
    if spec.shots is not None:
        return f"shots={spec.shots} are drawn by the density_matrix strategy"
    if spec.noise is not None:
        return "noise runs on the density_matrix strategy"
    return None


def _measure(spec: CircuitSpec, real: torch.Tensor, imag: torch.Tensor | None) -> torch.Tensor:
    probabilities = real * real if imag is None else real * real + imag * imag
    if spec.measurement == "probs":
        return probabilities
    signs = gates.z_sign_table(spec.n_qubits, probabilities.dtype, probabilities.device)
    return probabilities @ signs


@register_strategy
class FoldedStrategy(ExecutionStrategy):
    """Folds the data-independent ansatz into one unitary, applied as one batched matmul.

    The embedded product state is ``r(x) * d`` with ``r`` real (closed form) and ``d`` a
    fixed phase, so the circuit is ``r(x) @ W`` with ``W = diag(d) U^T`` and the batch
    costs one real matrix product of ``(B, 2^n) x (2^n, 2^(n+1))``. ``U`` is built once
    per weight update from per-layer Kronecker products and CNOT permutations.
    """

    name = "folded"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        if spec.reupload:
            return "data re-uploading makes the ansatz data-dependent"
        if spec.measurement == "state":
            return "the folded strategy returns measurements, not states"
        if spec.n_qubits > 14:
            return f"a folded unitary of {spec.n_qubits} qubits does not fit in memory"
        return _exact_fast_path_reason(spec)

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        dim = 2**spec.n_qubits
        build_flops = spec.n_layers * dim**3 * 8 * 3  # chained complex products, fwd + bwd
        apply_flops = batch * dim * dim * 2 * 2 * 3  # real and imaginary parts, fwd + bwd
        ops = 3 * spec.n_qubits + 2 * spec.n_layers + 12
        return SECONDS_PER_OP * ops + SECONDS_PER_FLOP * (build_flops + apply_flops)

    def unitary(self, spec: CircuitSpec, weights: torch.Tensor) -> torch.Tensor:
        """The ansatz unitary ``U`` (``(2^n, 2^n)``), complex, or real for real ansatzes."""
        matrices = gates.rotation_matrices(spec, weights)  # (L, n, 2, 2)
        layers = matrices[:, 0]
        for wire in range(1, spec.n_qubits):
            size = layers.shape[-1] * 2
            layers = torch.einsum("lab,lcd->lacbd", layers, matrices[:, wire]).reshape(-1, size, size)
        permutations = gates.entangler_inverse_permutations(spec, weights.device)
        layer_index = torch.arange(spec.n_layers, device=weights.device)[:, None]
        layers = layers[layer_index, permutations]  # P_l K_l: permute rows
        unitary = layers[0]
        for layer in range(1, spec.n_layers):
            unitary = layers[layer] @ unitary
        return unitary

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        unitary = self.unitary(spec, weights)
        amplitudes = gates.kron_rows(gates.embedding_factors(spec, inputs))  # (B, 2^n) real
        dim = 2**spec.n_qubits
        phases = gates.embedding_phases(spec, inputs.device)
        if not unitary.is_complex() and phases is None:
            return _measure(spec, amplitudes @ unitary.T, None)
        transfer = unitary.T.to(gates.complex_dtype(spec))
        if phases is not None:
            transfer = phases[:, None] * transfer
        # One real product gives real and imaginary parts of every output amplitude.
        stacked = torch.cat([transfer.real, transfer.imag], dim=1)
        outputs = amplitudes @ stacked
        return _measure(spec, outputs[:, :dim], outputs[:, dim:])


@register_strategy
class StateVectorStrategy(ExecutionStrategy):
    """A batched state vector in torch: gates as small contractions, CNOTs as one gather.

    Memory and time grow with ``B * 2^n`` rather than ``4^n``, so it serves larger qubit
    counts and data re-uploading circuits. Gradients use the adjoint method
    (:mod:`hqray.quantum.adjoint`), so memory does not grow with depth.
    """

    name = "statevector"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        return _exact_fast_path_reason(spec)

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        blocks = len(layer_blocks(spec.n_qubits)) * (2 if spec.reupload else 1)
        # Forward: one pass per block and permutation; backward: about four per block.
        passes = spec.n_layers * (blocks * 5 + 4) + 4
        ops = spec.n_layers * (blocks * 5 + 2) + spec.n_qubits + 10
        return SECONDS_PER_OP * ops + SECONDS_PER_AMPLITUDE_PASS * batch * 2**spec.n_qubits * passes

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        cdtype = gates.complex_dtype(spec)
        n = spec.n_qubits
        rotations = gates.rotation_matrices(spec, weights).to(cdtype)  # (L, n, 2, 2)
        blocks = layer_blocks(n)
        matrices = [gates.kron_matrices(rotations[layer, first:first + size])
                    for layer in range(spec.n_layers) for first, size in blocks]
        if spec.reupload:
            initial = torch.zeros(inputs.shape[0], 2**n, dtype=cdtype, device=inputs.device)
            initial[:, 0] = 1.0
            embedding = gates.embedding_matrices(spec, inputs)  # (B, n, 2, 2), identity-padded
            matrices += [gates.kron_matrices(embedding[:, first:first + size], batched=True)
                         for first, size in blocks]
        else:
            initial = gates.product_state(spec, inputs)
        return simulate(
            _circuit(spec),
            gates.entangler_inverse_permutations(spec, inputs.device),
            gates.z_sign_table(n, gates.real_dtype(spec), inputs.device),
            initial, matrices,
        )


@lru_cache(maxsize=128)
def _circuit(spec: CircuitSpec) -> Circuit:
    """The operation list of a spec for the adjoint simulator (matrix order as in ``run``)."""
    blocks = layer_blocks(spec.n_qubits)
    n_ansatz = spec.n_layers * len(blocks)
    operations = []
    for layer in range(spec.n_layers):
        if spec.reupload:
            operations += [("block", n_ansatz + i, size) for i, (_, size) in enumerate(blocks)]
        operations += [("block", layer * len(blocks) + i, size) for i, (_, size) in enumerate(blocks)]
        operations.append(("perm", layer))
    return Circuit(spec.n_qubits, tuple(operations), spec.measurement)


@register_strategy
class CompiledStrategy(ExecutionStrategy):
    """Any registered circuit through the tape compiler (:mod:`hqray.quantum.compiler`):
    compiled once per structure into fused steps on a batched state vector, backprop or
    adjoint gradients. Slower than the hand-written strategies on their circuits; the
    planner picks it when they cannot run a spec."""

    name = "compiled"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        return _inexact_reason(spec) or _compiler_rejects(spec)

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        gates_per_circuit = spec.n_layers * spec.n_qubits * 4 + spec.n_qubits
        # Python per gate (recording and dispatch), then a few amplitude passes per gate, kept
        # in memory for autograd (about 3x the passes of the hand-written state vector).
        return (SECONDS_PER_OP * 6 * gates_per_circuit
                + SECONDS_PER_AMPLITUDE_PASS * 3 * batch * 2**spec.n_qubits * gates_per_circuit)

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.compiler import run_qfunc

        circuit = spec.to_circuit()
        outputs = run_qfunc(circuit.qfunc(), spec.n_qubits, inputs, weights, dtype=gates.complex_dtype(spec),
                            jit=spec.jit)
        return outputs if spec.measurement == "state" else outputs.to(inputs.dtype)


@lru_cache(maxsize=256)
def _compiler_rejects(spec: CircuitSpec) -> str | None:
    """Why the compiler cannot run ``spec`` (an operation or measurement it lacks), or None.

    Found once per circuit structure: the circuit is recorded and checked on one row.
    """
    from hqray.quantum.compiler import UnsupportedOperation, record_tape, supported

    dtype = gates.real_dtype(spec)
    inputs = torch.zeros(1, spec.n_features, dtype=dtype)
    inputs[0, 0] = 1.0  # a normalisable row (amplitude embeddings)
    try:
        supported(record_tape(spec.to_circuit().qfunc(), inputs, torch.zeros(spec.weight_shape, dtype=dtype)),
                  spec.n_qubits)
    except UnsupportedOperation as error:
        return str(error)
    return None


@register_strategy
class DensityMatrixStrategy(ExecutionStrategy):
    """Any circuit under the spec's noise model, with shots drawn from each row's exact outcome
    distribution (:mod:`hqray.quantum.mixed`): the simulated QPU. Gradients: exact ones of
    the (noisy) expectation by default, even with shots; with ``diff_method="parameter-shift"``
    the shifted circuits of the whole batch run as one job, sampled like the circuit, as
    hardware computes them."""

    name = "density_matrix"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        if spec.exact:  # before importing mixed, which imports PennyLane
            return "an exact circuit (no noise, no shots) runs on a state vector"
        from hqray.quantum.mixed import MAX_DENSITY_QUBITS

        if spec.n_qubits > MAX_DENSITY_QUBITS:
            return f"{spec.n_qubits} qubits: density matrices run up to {MAX_DENSITY_QUBITS}"
        return _compiler_rejects(spec)

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        two_qubit_steps = spec.n_layers * spec.n_qubits + spec.n_qubits
        return (SECONDS_PER_OP * 10 * two_qubit_steps
                + SECONDS_PER_AMPLITUDE_PASS * 8 * batch * 4**spec.n_qubits * two_qubit_steps)

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.mixed import run_noisy

        circuit = spec.to_circuit()
        method = "parameter-shift" if spec.diff_method == "parameter-shift" else "exact"
        outputs = run_noisy(circuit.qfunc(), spec.n_qubits, inputs, weights, spec.noise, spec.shots, spec.seed,
                            method)
        return outputs.to(inputs.dtype)


@register_strategy
class TrajectoryStrategy(ExecutionStrategy):
    """Noisy circuits wider than density matrices allow (:mod:`hqray.quantum.trajectories`):
    ``spec.trajectories`` state vectors per row, channels as sampled Kraus branches. Outputs
    are unbiased estimates without gradients; the planner takes it only where the
    density-matrix strategy cannot run."""

    name = "trajectories"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        if spec.exact:  # before importing trajectories, which imports PennyLane
            return "an exact circuit (no noise, no shots) runs on a state vector"
        from hqray.quantum.trajectories import MAX_TRAJECTORY_QUBITS

        if spec.n_qubits > MAX_TRAJECTORY_QUBITS:
            return f"{spec.n_qubits} qubits: trajectories run up to {MAX_TRAJECTORY_QUBITS}"
        return _compiler_rejects(spec)

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        gates_per_circuit = spec.n_layers * spec.n_qubits * 4 + spec.n_qubits
        return (SECONDS_PER_OP * 20 * gates_per_circuit
                + SECONDS_PER_AMPLITUDE_PASS * 6 * batch * spec.trajectories * 2**spec.n_qubits * gates_per_circuit)

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.trajectories import run_trajectories

        if torch.is_grad_enabled() and (inputs.requires_grad or weights.requires_grad):
            raise CircuitError("the trajectories strategy gives estimates without gradients; train on the "
                               "density_matrix strategy (up to 14 qubits)")
        return run_trajectories(spec.to_circuit().qfunc(), spec.n_qubits, inputs, weights, spec.noise,
                                spec.trajectories, spec.shots, spec.seed)


@register_strategy
class DeviceStrategy(ExecutionStrategy):
    """A PennyLane device (``spec.device``), for shots, noise, lightning and hardware plugins.

    Uses PennyLane's parameter broadcasting: one QNode call per batch. Devices that do not
    broadcast natively (lightning) split the batch internally.
    """

    name = "device"

    def unsupported(self, spec: CircuitSpec) -> str | None:
        from hqray.quantum.backends import get_backend, list_backends

        if spec.noise is not None and get_backend(spec.device).noise == "none":
            return (f"device {spec.device!r} takes no hqray noise model; the density_matrix strategy or the "
                    f"devices {[b.name for b in list_backends() if b.noise != 'none']} do")
        return None

    def cost(self, spec: CircuitSpec, batch: int) -> float:
        gates_per_circuit = spec.n_layers * spec.n_qubits * 2
        python_overhead = SECONDS_PER_OP * 20 * gates_per_circuit
        return python_overhead + SECONDS_PER_AMPLITUDE_PASS * 30 * batch * 2**spec.n_qubits * gates_per_circuit

    def run(self, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.reference import build_qnode, stack_outputs

        qnode = build_qnode(spec)
        try:
            result = qnode(inputs, weights)
        except CircuitError:
            raise
        except Exception as error:
            raise CircuitError(f"device {spec.device!r} failed to run the circuit: {error}") from error
        outputs = stack_outputs(spec, result)
        if spec.measurement == "state":
            return outputs
        return _with_readout_errors(spec, outputs.to(inputs.dtype))


def _with_readout_errors(spec: CircuitSpec, outputs: torch.Tensor) -> torch.Tensor:
    """What a readout with the noise model's confusion matrices reports (devices measure exactly)."""
    if spec.noise is None:
        return outputs
    confusion = torch.as_tensor(spec.noise.readout_matrices(spec.n_qubits), dtype=outputs.dtype)
    if spec.measurement == "probs":
        tensor = outputs.reshape(outputs.shape[0], *[2] * spec.n_qubits)
        for wire in range(spec.n_qubits):
            tensor = torch.movedim(torch.tensordot(tensor, confusion[wire], dims=([1 + wire], [1])), -1, 1 + wire)
        return tensor.reshape(outputs.shape)
    wires = spec.to_circuit().readout_wires() if spec.measurement == "readout" else list(range(spec.n_qubits))
    p01, p10 = confusion[wires, 1, 0], confusion[wires, 0, 1]
    return outputs * (1 - p01 - p10) + (p10 - p01)
