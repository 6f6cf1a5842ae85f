"""CircuitSpec: a circuit described by data, so it travels to workers and into checkpoints.

The circuit family is ``embedding(x) -> ansatz(w)`` (or, with ``reupload``, that pair
repeated per layer) followed by a measurement.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from hqray.errors import CircuitError
from hqray.quantum.noise import NoiseModel
from hqray.validated import ValidatedModel, nested_message

__all__ = ["CircuitSpec", "MAX_QUBITS", "STRATEGY_NAMES", "FAST_ANSATZE"]

MAX_QUBITS = 30
STRATEGY_NAMES = ("auto", "folded", "statevector", "compiled", "density_matrix", "trajectories", "device")
# The ansätze the hand-written folded and statevector strategies run (with the angle
# embedding); every other registered circuit runs through the tape compiler.
FAST_ANSATZE = ("strongly_entangling", "basic_entangler", "ry_cnot")


class CircuitSpec(ValidatedModel):
    """A parameterised circuit: embedding, ansatz, measurement and execution options.

    Attributes:
        n_qubits: number of wires (1..30).
        embedding: a registered embedding (``hqray circuits``): ``"angle"`` (one rotation
            per feature, PennyLane ``AngleEmbedding``), ``"amplitude"``, ``"iqp"``, ...
        embedding_options: options of the embedding (validated by its options model).
        embedding_rotation: axis of the angle embedding's rotation.
        ansatz: a registered ansatz: ``"strongly_entangling"`` (``StronglyEntanglingLayers``),
            ``"basic_entangler"`` (``BasicEntanglerLayers`` with RX), ``"ry_cnot"`` (RY on
            every wire, then a CNOT chain), ``"hardware_efficient"``, ``"qcnn"``, ...
        ansatz_options: options of the ansatz.
        n_layers: ansatz layers.
        reupload: embed the inputs again before every layer (data re-uploading).
        measurement: ``"expval_z"`` (one <Z> per wire), ``"readout"`` (<Z> on the
            ansatz's readout wires, e.g. one for ``qcnn``), ``"probs"`` (2^n probabilities)
            or ``"state"`` (the complex state vector; not differentiable on every strategy).
        strategy: execution strategy, ``"auto"`` picks by cost (see ``hqray.quantum.plan``).
        device: PennyLane device used by the ``device`` strategy (``hqray.quantum.backends``).
        device_options: its keyword arguments, as data (``{"method": "statevector"}``).
        device_options_env: options read from environment variables where the device is
            created (``{"token": "IBMQ_TOKEN"}``): credentials never travel in a spec.
        diff_method: PennyLane differentiation method of the ``device`` strategy.
        shots: finite shots, drawn from each row's exact outcome distribution (the
            ``density_matrix`` strategy); ``None`` is exact.
        noise: a :class:`~hqray.quantum.noise.NoiseModel` (a device calibration or uniform
            channels) applied after every gate; runs on the ``density_matrix`` strategy.
        seed: seed of the shot sampler (``None``: fresh randomness on every call).
        trajectories: state vectors per row on the ``trajectories`` strategy (noisy circuits
            wider than density matrices allow; estimates, no gradients).
        precision: ``"single"`` (complex64) or ``"double"`` (complex128).
        jit: run on the ``compiled`` strategy (``"auto"`` picks it) as one ``torch.compile``'d
            kernel (:mod:`hqray.quantum.jit`): seconds to compile per batch size, then the
            fastest path for small circuits (up to about 8 qubits); CPU only.

    **Example**

    >>> spec = CircuitSpec(n_qubits=4, ansatz="strongly_entangling", n_layers=2)
    >>> spec.weight_shape, spec.n_outputs
    ((2, 4, 3), 4)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type: ClassVar[type[CircuitError]] = CircuitError

    n_qubits: int = Field(4, ge=1, le=MAX_QUBITS)
    embedding: str = "angle"
    embedding_options: dict[str, Any] = Field(default_factory=dict)
    embedding_rotation: Literal["X", "Y", "Z"] = "Y"
    ansatz: str = "strongly_entangling"
    ansatz_options: dict[str, Any] = Field(default_factory=dict)
    n_layers: int = Field(2, ge=1, le=100)
    reupload: bool = False
    measurement: Literal["expval_z", "readout", "probs", "state"] = "expval_z"
    strategy: Literal["auto", "folded", "statevector", "compiled", "density_matrix", "trajectories",
                      "device"] = "auto"
    device: str = "default.qubit"
    device_options: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    device_options_env: dict[str, str] = Field(default_factory=dict)
    diff_method: str = "best"
    shots: int | None = Field(None, ge=1)
    noise: NoiseModel | None = None
    seed: int | None = Field(None, ge=0)
    trajectories: int = Field(256, ge=1, le=1_000_000)
    precision: Literal["single", "double"] = "single"
    jit: bool = False


    @model_validator(mode="after")
    def _check_consistency(self) -> CircuitSpec:
        if self.measurement == "state" and not self.exact:
            raise CircuitError("measurement 'state' needs an exact, noiseless circuit (no shots, no noise)")
        if not self.hand_written:
            try:  # validates names, kinds, options and re-uploading against the registry
                self.to_circuit()
            except CircuitError as error:
                raise CircuitError(nested_message(error, "Circuit")) from None
        return self

    @classmethod
    def from_choice(cls, choice: Any, n_qubits: int, n_layers: int, **execution: Any) -> CircuitSpec:
        """The spec of a model's :class:`~hqray.quantum.circuits.CircuitChoice` (or its name).

        The angle embedding's ``rotation`` option becomes ``embedding_rotation``, so the
        hand-written strategies still run it; an ansatz with readout wires (``qcnn``) is
        measured on those wires unless ``execution`` names another measurement.

        >>> CircuitSpec.from_choice("qcnn", n_qubits=4, n_layers=1).n_outputs
        1
        """
        from hqray.quantum.circuits import CircuitChoice

        choice = choice if isinstance(choice, CircuitChoice) else CircuitChoice.model_validate(choice)
        embedding_options = dict(choice.embedding_options)
        rotation = embedding_options.pop("rotation", "Y") if choice.embedding == "angle" else "Y"
        execution.setdefault("measurement", "readout" if choice.has_readout_wires else "expval_z")
        return cls(n_qubits=n_qubits, n_layers=n_layers, embedding=choice.embedding,
                   embedding_options=embedding_options, embedding_rotation=rotation, ansatz=choice.ansatz,
                   ansatz_options=choice.ansatz_options, reupload=choice.reupload, **execution)

    @classmethod
    def feature_map(cls, n_qubits: int, n_layers: int, embedding: str, embedding_options: dict | None = None,
                    repeats: int = 1, ansatz: str = "strongly_entangling", ansatz_options: dict | None = None,
                    reupload: bool = False) -> CircuitSpec:
        """A quantum kernel's feature map: the embedding (``repeats`` times where it has
        ``n_repeats``) and optional ansatz, measured as its state. Raises ValueError for an
        embedding that does not repeat (or any invalid option), naming it.

        >>> CircuitSpec.feature_map(4, 1, "iqp", repeats=2).embedding_options
        {'n_repeats': 2}
        """
        from hqray.quantum.circuits import get_circuit

        if repeats != 1 and "n_repeats" not in get_circuit(embedding).options.model_fields:
            raise ValueError(f"repeats = {repeats}: the {embedding!r} embedding does not repeat "
                             "(repeats applies to embeddings with n_repeats, such as iqp)")
        options = {**(embedding_options or {}), **({"n_repeats": repeats} if repeats != 1 else {})}
        return cls(n_qubits=n_qubits, n_layers=n_layers, embedding=embedding, embedding_options=options,
                   ansatz=ansatz, ansatz_options=ansatz_options or {}, reupload=reupload, measurement="state")

    def __hash__(self) -> int:  # options are dicts: hash their sorted items (specs key caches)
        return hash(tuple((k, repr(v)) for k, v in sorted(self.__dict__.items())))

    @property
    def hand_written(self) -> bool:
        """Whether the hand-written fast strategies run this circuit (else the tape compiler)."""
        return (self.embedding == "angle" and not self.embedding_options and self.ansatz in FAST_ANSATZE
                and not self.ansatz_options and self.measurement != "readout")

    def to_circuit(self):
        """The registry's :class:`~hqray.quantum.circuits.Circuit` for this spec."""
        from hqray.quantum.circuits import Circuit

        options = dict(self.embedding_options)
        if self.embedding == "angle":
            options.setdefault("rotation", self.embedding_rotation)
        return Circuit(n_qubits=self.n_qubits, embedding=self.embedding, embedding_options=options,
                       ansatz=self.ansatz, ansatz_options=self.ansatz_options, n_layers=self.n_layers,
                       reupload=self.reupload, measurement=self.measurement)

    @property
    def n_features(self) -> int:
        """Most input features the embedding takes (one per wire; 2^n for amplitude; its registry entry says)."""
        from hqray.quantum.circuits import get_circuit

        return get_circuit(self.embedding).input_width(self.n_qubits, self.embedding_options)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if not self.hand_written:
            return self.to_circuit().weight_shape
        if self.ansatz == "strongly_entangling":
            return (self.n_layers, self.n_qubits, 3)
        return (self.n_layers, self.n_qubits)

    @property
    def n_outputs(self) -> int:
        if self.measurement == "readout":
            return len(self.to_circuit().readout_wires())
        return self.n_qubits if self.measurement == "expval_z" else 2**self.n_qubits

    @property
    def exact(self) -> bool:
        """True when outputs are exact expectation values (no shots, no noise)."""
        return self.shots is None and self.noise is None

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
