"""CircuitSpec: a circuit described by data, so it travels to workers and into checkpoints.

The circuit family is ``embedding(x) -> ansatz(w)`` (or, with ``reupload``, that pair
repeated per layer) followed by a measurement.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from hqray.errors import CircuitError
from hqray.validated import ValidatedModel

__all__ = ["CircuitSpec", "MAX_QUBITS", "STRATEGY_NAMES"]

MAX_QUBITS = 30
STRATEGY_NAMES = ("auto", "folded", "statevector", "device")

Ansatz = Literal["strongly_entangling", "basic_entangler", "ry_cnot"]


class CircuitSpec(ValidatedModel):
    """A parameterised circuit: embedding, ansatz, measurement and execution options.

    Attributes:
        n_qubits: number of wires (1..30).
        embedding: ``"angle"``: one rotation per feature (PennyLane ``AngleEmbedding``).
        embedding_rotation: axis of the embedding rotation.
        ansatz: ``"strongly_entangling"`` (``StronglyEntanglingLayers``),
            ``"basic_entangler"`` (``BasicEntanglerLayers`` with RX), or ``"ry_cnot"``
            (RY on every wire, then a CNOT chain).
        n_layers: ansatz layers.
        reupload: embed the inputs again before every layer (data re-uploading).
        measurement: ``"expval_z"`` (one <Z> per wire), ``"probs"`` (2^n probabilities)
            or ``"state"`` (the complex state vector; not differentiable on every strategy).
        strategy: execution strategy, ``"auto"`` picks by cost (see ``hqray.quantum.plan``).
        device: PennyLane device used by the ``device`` strategy.
        diff_method: PennyLane differentiation method of the ``device`` strategy.
        shots: finite shots (``device`` strategy only); ``None`` is exact.
        depolarizing: depolarizing probability after every gate layer (``default.mixed``).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).

    **Example**

    >>> spec = CircuitSpec(n_qubits=4, ansatz="strongly_entangling", n_layers=2)
    >>> spec.weight_shape, spec.n_outputs
    ((2, 4, 3), 4)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type: ClassVar[type[CircuitError]] = CircuitError

    n_qubits: int = Field(4, ge=1, le=MAX_QUBITS)
    embedding: Literal["angle"] = "angle"
    embedding_rotation: Literal["X", "Y", "Z"] = "Y"
    ansatz: Ansatz = "strongly_entangling"
    n_layers: int = Field(2, ge=1, le=100)
    reupload: bool = False
    measurement: Literal["expval_z", "probs", "state"] = "expval_z"
    strategy: Literal["auto", "folded", "statevector", "device"] = "auto"
    device: str = "default.qubit"
    diff_method: str = "best"
    shots: int | None = Field(None, ge=1)
    depolarizing: float = Field(0.0, ge=0.0, le=1.0)
    precision: Literal["single", "double"] = "single"


    @model_validator(mode="after")
    def _check_consistency(self) -> CircuitSpec:
        if self.depolarizing > 0 and self.device != "default.mixed":
            raise CircuitError(
                f"depolarizing={self.depolarizing} needs device 'default.mixed', got {self.device!r}"
            )
        if self.measurement == "state" and (self.shots is not None or self.depolarizing > 0):
            raise CircuitError("measurement 'state' needs an exact, noiseless circuit")
        return self

    @property
    def n_features(self) -> int:
        """Most input features the embedding takes (one per wire)."""
        return self.n_qubits

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.ansatz == "strongly_entangling":
            return (self.n_layers, self.n_qubits, 3)
        return (self.n_layers, self.n_qubits)

    @property
    def n_outputs(self) -> int:
        return self.n_qubits if self.measurement == "expval_z" else 2**self.n_qubits

    @property
    def exact(self) -> bool:
        """True when outputs are exact expectation values (no shots, no noise)."""
        return self.shots is None and self.depolarizing == 0.0

    def entangler_ranges(self) -> list[int]:
        """CNOT range per layer of StronglyEntanglingLayers (PennyLane's default)."""
        if self.n_qubits == 1:
            return [0] * self.n_layers
        return [(layer % (self.n_qubits - 1)) + 1 for layer in range(self.n_layers)]

    def entangler_pairs(self, layer: int) -> list[tuple[int, int]]:
        """(control, target) CNOTs of one ansatz layer, in application order."""
        n = self.n_qubits
        if n == 1:
            return []
        if self.ansatz == "strongly_entangling":
            step = self.entangler_ranges()[layer]
            return [(wire, (wire + step) % n) for wire in range(n)]
        if self.ansatz == "basic_entangler":
            if n == 2:
                return [(0, 1)]
            return [(wire, (wire + 1) % n) for wire in range(n)]
        return [(wire, wire + 1) for wire in range(n - 1)]  # ry_cnot: a chain
