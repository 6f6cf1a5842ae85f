"""The circuit registry: named embeddings and ansätze, written as PennyLane operations.

One entry adds one circuit: its name, kind (``embedding`` or ``ansatz``), an options model,
its weight shape as a function of qubits, layers and options, the operations it queues, and
what it measures by default. A :class:`Circuit` composes an embedding and an ansatz (with
data re-uploading of any pair) and runs batched through :mod:`hqray.quantum.compiler`.
Users add their own with :func:`register_circuit`.

**Example**

>>> import torch
>>> circuit = Circuit(n_qubits=4, embedding="iqp", ansatz="hardware_efficient", n_layers=2)
>>> circuit.weight_shape
(2, 4, 2)
>>> circuit.run(torch.zeros(5, 4, dtype=torch.float64), torch.zeros(2, 4, 2, dtype=torch.float64)).shape
torch.Size([5, 4])
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hqray.errors import CircuitError, format_validation_error
from hqray.validated import ValidatedModel

if TYPE_CHECKING:
    import torch


class _Lazy:
    """PennyLane, imported when a circuit is first built (``hqray circuits`` lists without it)."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module("pennylane"), name)


qml = _Lazy()

__all__ = ["Circuit", "CircuitChoice", "CircuitEntry", "register_circuit", "get_circuit", "list_circuits", "NoOptions",
           "circuit_imports_blocked"]


class NoOptions(BaseModel):
    """A circuit without options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CircuitEntry:
    """One registered circuit.

    Attributes:
        name: registry key.
        kind: ``"embedding"`` (takes the inputs) or ``"ansatz"`` (takes trainable weights).
        description: one line for ``hqray circuits``.
        options: pydantic model of its options (``extra="forbid"``).
        weight_shape: ``(n_qubits, n_layers, options) -> shape`` of its weights (ansatz).
        queue: queues the operations: ``(x, wires, options)`` for an embedding (``x`` of
            shape ``(B, features)``), ``(w, wires, options)`` for one ansatz block
            (``w`` the weights of the layers it runs).
        readout: wires measured by default (``<Z>`` each): ``(n_qubits, options) -> wires``.
        n_features: most input features an embedding takes, ``(n_qubits, options) -> int``
            (``None``: one per qubit).
    """

    name: str
    kind: Literal["embedding", "ansatz"]
    description: str
    options: type[BaseModel]
    queue: Callable[..., None]
    weight_shape: Callable[[int, int, Any], tuple[int, ...]] | None = None
    readout: Callable[[int, Any], list[int]] | None = None
    min_qubits: int = 1
    layered: bool = True  # weights[layer] is one layer (data re-uploading interleaves them)
    n_features: Callable[[int, Any], int] | None = None

    def input_width(self, n_qubits: int, options: dict[str, Any] | None = None) -> int:
        """Most input features this embedding takes on ``n_qubits`` wires."""
        if self.n_features is None:
            return n_qubits
        return self.n_features(n_qubits, self.options.model_validate(options or {}))


_REGISTRY: dict[str, CircuitEntry] = {}


def register_circuit(name: str, kind: Literal["embedding", "ansatz"], description: str,
                     options: type[BaseModel] = NoOptions, weight_shape=None, readout=None, min_qubits: int = 1,
                     layered: bool = True, replace: bool = False,
                     n_features: Callable[[int, Any], int] | None = None) -> Callable[[Callable], Callable]:
    """Decorator registering ``queue`` as a circuit (see :class:`CircuitEntry` for the arguments).

    ``queue`` must queue the same gates on the same wires whatever the *values* of its
    arguments (as for ``jax.jit``): noisy engines record a registered circuit once per
    argument shape. A circuit that branches on values is caught by three random recordings
    and recorded per call instead, but only if the branch shows on one of them.

    Raises:
        CircuitError: the name is taken (unless ``replace``), or an ansatz lacks ``weight_shape``.
    """
    if name in _REGISTRY and not replace:
        raise CircuitError(f"circuit {name!r} is already registered; pass replace=True to replace it")
    if kind == "ansatz" and weight_shape is None:
        raise CircuitError(f"ansatz {name!r} needs weight_shape(n_qubits, n_layers, options)")

    def decorator(queue: Callable) -> Callable:
        _REGISTRY[name] = CircuitEntry(name, kind, description, options, queue, weight_shape, readout, min_qubits,
                                       layered, n_features)
        return queue
    return decorator


# Set while a checkpoint loads without trust: naming "package.module:circuit" must not import
# (run) a module then.
_IMPORTS_BLOCKED: contextvars.ContextVar[str | None] = contextvars.ContextVar("hqray_circuit_imports", default=None)


@contextlib.contextmanager
def circuit_imports_blocked(reason: str):
    """Within this block, a circuit named by module (``"pkg.mod:name"``) is an error saying ``reason``."""
    token = _IMPORTS_BLOCKED.set(reason)
    try:
        yield
    finally:
        _IMPORTS_BLOCKED.reset(token)


def get_circuit(name: str) -> CircuitEntry:
    """The registered circuit ``name``; a CircuitError lists the registered ones.

    ``"package.module:name"`` imports ``package.module`` (whose ``@register_circuit``
    registers ``name``) first: how a user's circuit reaches pool workers and checkpoints.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    module, separator, attribute = name.partition(":")
    if not separator:
        raise CircuitError(f"unknown circuit {name!r}; registered: {sorted(_REGISTRY)}, or "
                           "'package.module:name' for a circuit registered in your own module")
    blocked = _IMPORTS_BLOCKED.get()
    if blocked is not None:
        raise CircuitError(f"circuit {name!r} lives in module {module!r}: {blocked}")
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise CircuitError(f"circuit {name!r}: module {module!r} cannot be imported ({error})") from None
    if attribute not in _REGISTRY:
        raise CircuitError(f"module {module!r} registers no circuit {attribute!r} (use @hqray.register_circuit)")
    _REGISTRY[name] = _REGISTRY[attribute]
    return _REGISTRY[name]


def list_circuits(kind: str | None = None) -> list[CircuitEntry]:
    """Registered circuits (of one kind), by name."""
    return [entry for name, entry in sorted(_REGISTRY.items()) if kind in (None, entry.kind)]


class Circuit(ValidatedModel):
    """Embedding + ansatz on ``n_qubits`` wires, measured ``<Z>`` on the readout wires.

    With ``reupload``, the embedding runs again before every ansatz layer (data
    re-uploading, for any pair). ``embedding_options`` / ``ansatz_options`` are validated
    against the registered circuits' option models.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type = CircuitError

    n_qubits: int = Field(4, ge=1, le=24)
    embedding: str = "angle"
    embedding_options: dict[str, Any] = Field(default_factory=dict)
    ansatz: str = "strongly_entangling"
    ansatz_options: dict[str, Any] = Field(default_factory=dict)
    n_layers: int = Field(2, ge=1, le=100)
    reupload: bool = False
    measurement: Literal["readout", "expval_z", "probs", "state"] = "readout"

    @model_validator(mode="after")
    def _check(self) -> Circuit:
        for name, kind, options in ((self.embedding, "embedding", self.embedding_options),
                                    (self.ansatz, "ansatz", self.ansatz_options)):
            entry = get_circuit(name)
            if entry.kind != kind:
                raise CircuitError(f"{name!r} is an {entry.kind}, not an {kind}")
            try:
                entry.options(**options)
            except ValidationError as error:
                raise CircuitError(f"{name!r} options: {format_validation_error(error)}; "
                                   f"allowed: {list(entry.options.model_fields)}") from None
            if self.n_qubits < entry.min_qubits:
                raise CircuitError(f"{name!r} needs at least {entry.min_qubits} qubits, got {self.n_qubits}")
        if self.reupload and not get_circuit(self.ansatz).layered:
            raise CircuitError(f"reupload interleaves the embedding with ansatz layers, but {self.ansatz!r} has "
                               f"no layers (weights {self.weight_shape})")
        if self.reupload and self.embedding == "amplitude":
            raise CircuitError("reupload cannot repeat the amplitude embedding: it prepares the whole state")
        return self

    def _parts(self):
        embedding, ansatz = get_circuit(self.embedding), get_circuit(self.ansatz)
        return (embedding, embedding.options(**self.embedding_options),
                ansatz, ansatz.options(**self.ansatz_options))

    @property
    def weight_shape(self) -> tuple[int, ...]:
        _, _, ansatz, options = self._parts()
        return tuple(ansatz.weight_shape(self.n_qubits, self.n_layers, options))

    def readout_wires(self) -> list[int]:
        _, _, ansatz, options = self._parts()
        return ansatz.readout(self.n_qubits, options) if ansatz.readout else list(range(self.n_qubits))

    def queue(self, inputs, weights) -> None:
        """Queues the circuit's operations (no measurement), e.g. inside a QNode."""
        embedding, embedding_options, ansatz, ansatz_options = self._parts()
        wires = list(range(self.n_qubits))
        if self.reupload:
            for layer in range(self.n_layers):
                embedding.queue(inputs, wires, embedding_options)
                ansatz.queue(weights[layer:layer + 1], wires, ansatz_options)
        else:
            embedding.queue(inputs, wires, embedding_options)
            ansatz.queue(weights, wires, ansatz_options)

    def qfunc(self) -> Callable:
        """The circuit as a PennyLane quantum function ``(inputs, weights) -> measurements``."""
        wires = list(range(self.n_qubits))

        def circuit(inputs, weights):
            self.queue(inputs, weights)
            if self.measurement == "probs":
                return qml.probs(wires=wires)
            if self.measurement == "state":
                return qml.state()
            measured = wires if self.measurement == "expval_z" else self.readout_wires()
            return [qml.expval(qml.PauliZ(w)) for w in measured]
        # Its operations depend on the arguments' shapes only: engines may record it once per
        # shape (hqray.quantum.tracing), which checks that on three random recordings.
        circuit.hqray_static_key = ("circuit", self.model_dump_json())
        return circuit

    def run(self, inputs: torch.Tensor, weights: torch.Tensor, jit: bool = False) -> torch.Tensor:
        """Outputs for every row of ``inputs`` ``(B, features)``: ``(B, outputs)``; ``jit=True``
        compiles the pass into one kernel first (:mod:`hqray.quantum.jit`)."""
        from hqray.quantum.compiler import run_qfunc

        if tuple(weights.shape) != self.weight_shape:
            raise CircuitError(f"weights have shape {tuple(weights.shape)}; {self.ansatz!r} with "
                               f"{self.n_layers} layers on {self.n_qubits} qubits expects {self.weight_shape}")
        return run_qfunc(self.qfunc(), self.n_qubits, inputs, weights, jit=jit)


class CircuitChoice(ValidatedModel):
    """The circuit a model uses, as data: which embedding and ansatz, with their options.

    Width and depth are the model's (``HybridConfig.n_qubits`` / ``n_layers``), so a search
    can vary them independently of the circuit. A string is shorthand for one registered
    name: an ansatz name replaces the ansatz, an embedding name the embedding, and
    ``"package.module:name"`` names a user's own circuit (importing that module). Being data,
    a choice travels to pool workers and into checkpoints.

    **Example**

    >>> CircuitChoice.model_validate("qcnn").ansatz
    'qcnn'
    >>> CircuitChoice.model_validate("iqp").label
    'iqp+strongly_entangling'
    >>> CircuitChoice(embedding="angle", embedding_options={"rotation": "X"}, reupload=True).label
    'angle(rotation=X)+strongly_entangling+reupload'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type = CircuitError

    embedding: str = Field("angle", description="a registered embedding (hqray circuits)")
    embedding_options: dict[str, Any] = Field(default_factory=dict)
    ansatz: str = Field("strongly_entangling", description="a registered ansatz (hqray circuits)")
    ansatz_options: dict[str, Any] = Field(default_factory=dict)
    reupload: bool = Field(False, description="embed the inputs again before every ansatz layer")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        entry = get_circuit(value)
        return {"ansatz": value} if entry.kind == "ansatz" else {"embedding": value}

    @model_validator(mode="after")
    def _check(self) -> CircuitChoice:
        for name, kind in ((self.embedding, "embedding"), (self.ansatz, "ansatz")):
            if get_circuit(name).kind != kind:
                raise CircuitError(f"{name!r} is an {get_circuit(name).kind}, not an {kind}")
        return self

    def __hash__(self) -> int:
        return hash(self.label)

    def circuit(self, n_qubits: int, n_layers: int,
                measurement: Literal["readout", "expval_z", "probs", "state"] = "readout") -> Circuit:
        """This choice on ``n_qubits`` wires with ``n_layers`` layers (options validated there)."""
        return Circuit(n_qubits=n_qubits, n_layers=n_layers, measurement=measurement, **self.model_dump())

    @property
    def has_readout_wires(self) -> bool:
        """Whether the ansatz measures only some wires by default (``qcnn``, ``tree_tensor``)."""
        return get_circuit(self.ansatz).readout is not None

    @property
    def label(self) -> str:
        """Short, stable text for tables: ``embedding(options)+ansatz(options)[+reupload]``."""
        def named(name: str, options: dict[str, Any]) -> str:
            inside = ",".join(f"{key}={value}" for key, value in sorted(options.items()))
            return f"{name}({inside})" if inside else name
        text = f"{named(self.embedding, self.embedding_options)}+{named(self.ansatz, self.ansatz_options)}"
        return text + ("+reupload" if self.reupload else "")


# ---- embeddings -------------------------------------------------------------------------


class AngleOptions(NoOptions):
    rotation: Literal["X", "Y", "Z"] = "Y"


@register_circuit("angle", "embedding", "one rotation per feature (AngleEmbedding); features beyond the "
                  "qubits are an error", AngleOptions)
def _angle(x, wires, options: AngleOptions) -> None:
    qml.AngleEmbedding(x, wires=wires[: x.shape[-1]], rotation=options.rotation)


class AmplitudeOptions(NoOptions):
    pad_with: float = 0.0


@register_circuit("amplitude", "embedding", "features as the 2^n amplitudes, normalised and padded "
                  "(AmplitudeEmbedding)", AmplitudeOptions, n_features=lambda n_qubits, _: 2**n_qubits)
def _amplitude(x, wires, options: AmplitudeOptions) -> None:
    size = 2 ** len(wires)
    if x.shape[-1] > size:
        raise CircuitError(f"amplitude embedding of {x.shape[-1]} features needs at least "
                           f"{math.ceil(math.log2(x.shape[-1]))} qubits, got {len(wires)}")
    qml.AmplitudeEmbedding(x, wires=wires, normalize=True, pad_with=options.pad_with)


@register_circuit("rot", "embedding", "three features per qubit: Rot(x[3q], x[3q+1], x[3q+2]) on wire q, "
                  "missing ones 0 (the data re-uploading classifier's encoding)",
                  n_features=lambda n_qubits, _: 3 * n_qubits)
def _rot(x, wires, options) -> None:
    width = x.shape[-1]
    zero = x[..., 0] * 0.0  # a missing angle, batched like the others
    for wire in range(math.ceil(width / 3)):
        angles = [x[..., index] if index < width else zero for index in range(3 * wire, 3 * wire + 3)]
        qml.Rot(*angles, wires=wires[wire])


class HamiltonianOptions(NoOptions):
    t: float = Field(1.0 / 3.0, gt=0, description="evolution time per unit of feature")
    trotter_steps: int = Field(5, ge=1, le=100)
    seed: int = Field(42, ge=0, description="seed of the fixed random rotations")


@register_circuit("hamiltonian", "embedding", "fixed random Rot on every wire, then a Trotterised Heisenberg "
                  "evolution: XX+YY+ZZ between wires j, j+1 with strength x[j] (n_qubits - 1 features; the "
                  "projected quantum kernel's map, Huang et al. 2021)", HamiltonianOptions, min_qubits=2,
                  n_features=lambda n_qubits, _: n_qubits - 1)
def _hamiltonian(x, wires, options: HamiltonianOptions) -> None:
    import numpy as np

    width = x.shape[-1]
    if width > len(wires) - 1:
        raise CircuitError(f"the hamiltonian embedding on {len(wires)} qubits takes at most {len(wires) - 1} "
                           f"features (one per neighbouring pair), got {width}")
    # Fixed by the seed, not by the data: the same rotations for every row and call.
    rotations = np.random.default_rng(options.seed).uniform(0.0, 2 * math.pi, size=(len(wires), 3))
    for wire, (phi, theta, omega) in zip(wires, rotations.tolist(), strict=True):
        qml.Rot(phi, theta, omega, wires=wire)
    step = options.t / options.trotter_steps * (len(wires) - 1)
    for _ in range(options.trotter_steps):
        for pair in range(width):
            for gate in (qml.IsingXX, qml.IsingYY, qml.IsingZZ):
                gate(x[..., pair] * step, wires=[wires[pair], wires[pair + 1]])


class IqpOptions(NoOptions):
    n_repeats: int = Field(1, ge=1, le=10)


@register_circuit("iqp", "embedding", "IQP / ZZ feature map: H, RZ(x_i), and ZZ(x_i x_j) on every pair, "
                  "repeated (IQPEmbedding)", IqpOptions, min_qubits=1)
def _iqp(x, wires, options: IqpOptions) -> None:
    qml.IQPEmbedding(x, wires=wires[: x.shape[-1]], n_repeats=options.n_repeats)


# ---- ansätze ----------------------------------------------------------------------------


@register_circuit("strongly_entangling", "ansatz", "Rot on every wire, CNOT ring of growing range "
                  "(StronglyEntanglingLayers)", weight_shape=lambda n, layers, _: (layers, n, 3))
def _strongly_entangling(w, wires, options) -> None:
    qml.StronglyEntanglingLayers(w, wires=wires)


@register_circuit("basic_entangler", "ansatz", "RX on every wire, CNOT ring (BasicEntanglerLayers)",
                  weight_shape=lambda n, layers, _: (layers, n))
def _basic_entangler(w, wires, options) -> None:
    qml.BasicEntanglerLayers(w, wires=wires, rotation=qml.RX)


@register_circuit("ry_cnot", "ansatz", "RY on every wire, then a CNOT chain",
                  weight_shape=lambda n, layers, _: (layers, n))
def _ry_cnot(w, wires, options) -> None:
    for layer in range(w.shape[0]):
        for index, wire in enumerate(wires):
            qml.RY(w[layer, index], wires=wire)
        for left, right in zip(wires[:-1], wires[1:], strict=True):
            qml.CNOT(wires=[left, right])


class HardwareEfficientOptions(NoOptions):
    entangler: Literal["linear", "ring", "none"] = "ring"


@register_circuit("hardware_efficient", "ansatz", "RY-RZ on every wire, then CX on neighbours (linear or "
                  "ring; 'none': no entanglement, the separable control), per layer", HardwareEfficientOptions,
                  weight_shape=lambda n, layers, _: (layers, n, 2))
def _hardware_efficient(w, wires, options: HardwareEfficientOptions) -> None:
    pairs = [] if options.entangler == "none" else list(zip(wires[:-1], wires[1:], strict=True))
    if options.entangler == "ring" and len(wires) > 2:
        pairs.append((wires[-1], wires[0]))
    for layer in range(w.shape[0]):
        for index, wire in enumerate(wires):
            qml.RY(w[layer, index, 0], wires=wire)
            qml.RZ(w[layer, index, 1], wires=wire)
        for control, target in pairs:
            qml.CNOT(wires=[control, target])


def _levels(n: int) -> int:
    return max(1, math.ceil(math.log2(n)))


def _qcnn_readout(n: int, _) -> list[int]:
    return [_qcnn_plan(list(range(n)))[-1][1][0]]


def _qcnn_plan(wires: list[int]) -> list[tuple[list[tuple[int, int]], list[int]]]:
    """Per level: the (discarded, kept) pooling pairs and the wires left after it."""
    plan, active = [], list(wires)
    while len(active) > 1:
        pairs = [(active[i], active[i + 1]) for i in range(0, len(active) - 1, 2)]
        kept = [b for _, b in pairs] + ([active[-1]] if len(active) % 2 else [])
        plan.append((pairs, kept))
        active = kept
    return plan


@register_circuit("qcnn", "ansatz", "quantum convolutional network: per level a shared two-qubit convolution "
                  "on neighbours and a pooling (controlled rotations) that halves the wires, down to one "
                  "readout wire; n_layers is ignored (the levels are log2 n)",
                  weight_shape=lambda n, layers, _: (_levels(n), 6), readout=_qcnn_readout, min_qubits=2,
                  layered=False)
def _qcnn(w, wires, options) -> None:
    active = list(wires)
    for level, (pairs, kept) in enumerate(_qcnn_plan(active)):
        neighbours = list(zip(active[:-1], active[1:], strict=True))
        for a, b in neighbours[::2] + neighbours[1::2]:  # convolution: even then odd pairs, shared weights
            qml.RY(w[level, 0], wires=a)
            qml.RY(w[level, 1], wires=b)
            qml.CNOT(wires=[a, b])
            qml.RY(w[level, 2], wires=a)
            qml.RY(w[level, 3], wires=b)
        for discarded, keep in pairs:  # pooling: the discarded wire steers the kept one
            qml.CRZ(w[level, 4], wires=[discarded, keep])
            qml.CRX(w[level, 5], wires=[discarded, keep])
        active = kept


def _tree_readout(n: int, _) -> list[int]:
    return [0]


@register_circuit("tree_tensor", "ansatz", "tree tensor network: RY on pairs and a CNOT, merging wires level "
                  "by level into wire 0 (qubits: a power of 2); n_layers is ignored",
                  weight_shape=lambda n, layers, _: (max(1, n - 1), 2), readout=_tree_readout, min_qubits=2,
                  layered=False)
def _tree_tensor(w, wires, options) -> None:
    n = len(wires)
    if n & (n - 1):
        raise CircuitError(f"tree_tensor needs a power-of-2 number of qubits, got {n}")
    block, stride = 0, 1
    while stride < n:
        for start in range(0, n, 2 * stride):
            keep, merged = wires[start], wires[start + stride]
            qml.RY(w[block, 0], wires=keep)
            qml.RY(w[block, 1], wires=merged)
            qml.CNOT(wires=[merged, keep])
            block += 1
        stride *= 2
