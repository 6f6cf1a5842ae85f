"""The spec as a PennyLane QNode: the ``device`` strategy and the reference for tests."""

from __future__ import annotations

from functools import lru_cache

from hqray.quantum.spec import CircuitSpec

__all__ = ["build_qnode", "apply_circuit", "overlap_qnode"]


def apply_circuit(spec: CircuitSpec, inputs, weights) -> None:
    """Queues the spec's gates (inside a QNode) on wires ``0..n-1``."""
    import pennylane as qml

    if not spec.hand_written:  # a registered circuit: its own operations
        spec.to_circuit().queue(inputs, weights)
        return

    wires = range(spec.n_qubits)
    n_inputs = inputs.shape[-1]
    embed_wires = list(range(n_inputs))

    def embed():
        qml.AngleEmbedding(inputs, wires=embed_wires, rotation=spec.embedding_rotation)

    def layer_block(first: int, last: int):
        layer_weights = weights[first:last]
        if spec.ansatz == "strongly_entangling":
            # One wire has no entanglers; PennyLane then wants its default ranges.
            ranges = spec.entangler_ranges()[first:last] if spec.n_qubits > 1 else None
            qml.StronglyEntanglingLayers(layer_weights, wires=wires, ranges=ranges)
        elif spec.ansatz == "basic_entangler":
            qml.BasicEntanglerLayers(layer_weights, wires=wires, rotation=qml.RX)
        else:
            for layer in range(first, last):
                for wire in wires:
                    qml.RY(weights[layer, wire], wires=wire)
                for control, target in spec.entangler_pairs(layer):
                    qml.CNOT(wires=[control, target])

    if spec.reupload:
        for layer in range(spec.n_layers):
            embed()
            layer_block(layer, layer + 1)
    else:
        embed()
        layer_block(0, spec.n_layers)


@lru_cache(maxsize=32)
def build_qnode(spec: CircuitSpec, device_name: str | None = None, diff_method: str | None = None):
    """A torch-interface QNode ``f(inputs, weights)`` returning ``(B, n_outputs)`` or ``(n_outputs,)``."""
    import pennylane as qml

    from hqray.quantum.backends import create_device, noise_wrapper

    name = device_name or spec.device
    target = spec if name == spec.device else spec.model_copy(update={"device": name})
    # A registered circuit may measure mid-circuit: default.qubit then needs wires of its own
    # for the deferred measurements (a state is only well ordered on fixed wires).
    if name == "default.qubit" and not spec.hand_written and spec.measurement != "state" and not spec.device_options:
        device = qml.device(name)
    else:
        device = create_device(target)
    queue = noise_wrapper(target, lambda inputs, weights: apply_circuit(spec, inputs, weights))

    method = diff_method or spec.diff_method
    if spec.shots and method in ("best", "backprop", "adjoint"):
        method = "parameter-shift"

    @qml.qnode(device, interface="torch", diff_method=method)
    def circuit(inputs, weights):
        queue(inputs, weights)
        if spec.measurement in ("expval_z", "readout"):
            wires = spec.to_circuit().readout_wires() if spec.measurement == "readout" else range(spec.n_qubits)
            return [qml.expval(qml.PauliZ(wire)) for wire in wires]
        if spec.measurement == "probs":
            return qml.probs(wires=range(spec.n_qubits))
        return qml.state()

    # Shots belong to the QNode (set_shots), not the device, since PennyLane 0.43; None is
    # analytic even on devices that sample by default (qiskit.aer: 1024).
    return qml.set_shots(circuit, shots=spec.shots)


def overlap_qnode(spec: CircuitSpec, weights):
    """The inversion test on ``default.qubit``: ``f(x, y)[0] = |<phi(y)|phi(x)>|^2`` (one circuit
    per pair, as PennyLane's ``qml.kernels`` runs it): the per-pair reference for kernels."""
    import pennylane as qml

    device = qml.device("default.qubit", wires=spec.n_qubits)

    @qml.qnode(device)
    def overlap(x, y):
        apply_circuit(spec, x, weights)
        qml.adjoint(apply_circuit)(spec, y, weights)
        return qml.probs(wires=range(spec.n_qubits))

    return overlap


def stack_outputs(spec: CircuitSpec, result):
    """QNode results (a list of per-wire tensors for expvals) as one ``(B, n_outputs)`` tensor."""
    import torch

    if spec.measurement in ("expval_z", "readout"):
        result = torch.stack(list(result), dim=-1)
    return result if result.ndim == 2 else result.unsqueeze(0)


