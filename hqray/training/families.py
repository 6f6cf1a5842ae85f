"""The model-family registry: every model a study can compare, one entry each.

A family is a name, a kind (``"variational"``, ``"kernel"`` or ``"classical"``), an options
model, a default search space and how to build it. Two sorts share the registry:

* **generations** (``g0`` ... ``g10``, :mod:`hqray.models.generations`): hybrid networks
  trained by epochs on :class:`~hqray.models.HybridConfig` settings; a study trains their
  folds in lock-step and early-stops them by epoch;
* **estimator families** (:func:`register_family`): anything with scikit-learn's
  ``fit``/``predict_proba`` built from validated options, fitted once per fold — the
  quantum-kernel SVMs ``qsvm``, ``iqp_kernel`` and ``projected_kernel`` are entries.

Study files list both alike (``generations: [g0, g6, qsvm, iqp_kernel]``); leaderboards
show each row's kind. One :func:`register_family` call adds a family.

**Example**

>>> get_family("iqp_kernel").kind, get_family("g6").kind, get_family("g0").kind
('kernel', 'variational', 'classical')
>>> get_family("qsvm").validate({"C": 10.0})["C"]
10.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from hqray.errors import CircuitError, ConfigError, format_validation_error
from hqray.models import HybridConfig, get_generation, list_generations, make_config

__all__ = ["ModelFamily", "FamilyKind", "KernelOptions", "KitchenSinksOptions", "register_family", "get_family",
           "list_families"]

FamilyKind = Literal["variational", "kernel", "classical"]


@dataclass(frozen=True)
class ModelFamily:
    """One registered model family.

    Attributes:
        name: the id studies use. kind: ``variational``, ``kernel`` or ``classical``.
        title, description: what it is, for ``hqray families``.
        options: the pydantic model of its settings (``extra="forbid"``); ``None`` for a
            generation, whose settings are :class:`~hqray.models.HybridConfig`.
        defaults: settings this family fixes on top of the options' defaults.
        search_space: the default Tune-style search space (see ``hqray.tune.study``).
        estimator: builds a scikit-learn classifier from validated settings and a seed;
            ``None`` for a generation (trained by epochs, see :class:`~hqray.training.LockstepFolds`).
    """

    name: str
    kind: FamilyKind
    title: str
    description: str
    options: type[BaseModel] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, dict[str, list]] = field(default_factory=dict)
    estimator: Callable[[dict[str, Any], int], Any] | None = None

    @property
    def trains_by_epoch(self) -> bool:
        """Whether trials report per epoch (early-stoppable) or once per fold fit."""
        return self.estimator is None

    @property
    def is_quantum(self) -> bool:
        return self.kind != "classical"

    def parameters(self) -> list[str]:
        """The settings a study may search or fix."""
        if self.options is None:
            return [*HybridConfig.model_fields, "circuit.<part>"]
        return list(self.options.model_fields)

    def knows(self, parameter: str) -> bool:
        return HybridConfig.knows(parameter) if self.options is None else parameter in self.options.model_fields

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """The family's full settings with ``values`` on top; ConfigError names what is wrong."""
        if self.options is None:
            return make_config(self.name, **values).model_dump()
        try:
            return self.options(**{**self.defaults, **values}).model_dump()
        except ValidationError as error:
            raise ConfigError(f"{self.name}: {format_validation_error(error)}") from None

    def build(self, values: dict[str, Any], seed: int) -> Any:
        """An unfitted scikit-learn classifier with ``values`` on the family's defaults."""
        if self.estimator is None:
            raise ConfigError(f"{self.name!r} is a generation: build it with HybridClassifier.from_config")
        return self.estimator(self.validate(values), seed)


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Adds an estimator family; its name must not be taken by a generation or a family."""
    if family.estimator is None or family.options is None:
        raise ConfigError(f"family {family.name!r}: an estimator family needs options and an estimator "
                          "(generations are registered with register_generation)")
    if family.name in _FAMILIES or family.name in {g.id for g in list_generations()}:
        raise ConfigError(f"model family {family.name!r} is registered twice")
    unknown = sorted((set(family.defaults) | set(family.search_space)) - set(family.options.model_fields))
    if unknown:
        raise ConfigError(f"family {family.name!r} names unknown options {unknown}; "
                          f"expected some of {list(family.options.model_fields)}")
    family.validate({})
    _FAMILIES[family.name] = family
    return family


def _generation_family(generation_id: str) -> ModelFamily:
    generation = get_generation(generation_id)
    kind = "variational" if make_config(generation_id).use_quantum else "classical"
    return ModelFamily(name=generation.id, kind=kind, title=generation.title, description=generation.description,
                       defaults=dict(generation.defaults), search_space=dict(generation.search_space))


def get_family(name: str) -> ModelFamily:
    """The family or generation ``name``; ConfigError lists every known name otherwise."""
    if name in _FAMILIES:
        return _FAMILIES[name]
    if name in {g.id for g in list_generations()}:
        return _generation_family(name)
    raise ConfigError(f"unknown model family or generation {name!r}; expected one of "
                      f"{[family.name for family in list_families()]}")


def list_families() -> list[ModelFamily]:
    """Generations in order, then the estimator families in registration order."""
    return [*(_generation_family(g.id) for g in list_generations()), *_FAMILIES.values()]


class KernelOptions(BaseModel):
    """Settings of a quantum-kernel SVM (:class:`~hqray.training.QuantumKernelSVC`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    n_qubits: int = Field(4, ge=1, le=20)
    n_layers: int = Field(2, ge=1)
    embedding: str = "angle"
    embedding_options: dict[str, Any] | None = None
    repeats: int = Field(1, ge=1, le=10, description="repetitions of an embedding that repeats (iqp)")
    ansatz: str = "strongly_entangling"
    ansatz_options: dict[str, Any] | None = None
    reupload: bool = True
    kernel: Literal["fidelity", "projected"] = "fidelity"
    gamma: float = Field(1.0, gt=0)
    bandwidth: Literal["fixed", "scale"] = Field("fixed", description="projected kernel: 'scale' multiplies "
                                                                      "gamma by a scale fitted to the data")
    C: float = Field(1.0, gt=0)
    shots: int | None = Field(None, ge=1)

    @field_validator("embedding", "ansatz")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        from hqray.quantum.circuits import get_circuit

        try:
            entry = get_circuit(name)
        except CircuitError as error:
            raise ValueError(str(error)) from None
        if entry.kind != info.field_name:
            raise ValueError(f"{name!r} is an {entry.kind}, not an {info.field_name} (see hqray circuits)")
        return name

    @model_validator(mode="after")
    def _check_circuit(self) -> KernelOptions:
        from hqray.quantum.spec import CircuitSpec  # light: listings validate options without torch

        CircuitSpec.feature_map(self.n_qubits, self.n_layers, self.embedding, self.embedding_options, self.repeats,
                                self.ansatz, self.ansatz_options, self.reupload)
        return self


def _kernel_svc(settings: dict[str, Any], seed: int) -> Any:
    from hqray.training.kernel_svc import QuantumKernelSVC

    return QuantumKernelSVC(**settings, seed=seed)


_KERNEL_SPACE = {"C": {"loguniform": [0.1, 100.0]}, "n_layers": {"randint": [1, 4]}}

register_family(ModelFamily(
    name="qsvm", kind="kernel", title="quantum-kernel SVM",
    description="an SVC on a fidelity or projected quantum kernel of any registered feature map "
                "(Gram matrices in tiles)",
    options=KernelOptions, search_space=_KERNEL_SPACE, estimator=_kernel_svc))
# The IQP and separable kernels are their embedding's alone: a one-layer ansatz at its fixed
# zero weights, after the embedding and without re-uploading, is one fixed unitary U, and
# |<x|U^dagger U|x'>|^2 = |<x|x'>|^2 leaves the fidelity kernel unchanged.
register_family(ModelFamily(
    name="iqp_kernel", kind="kernel", title="IQP kernel",
    description="an SVC on the fidelity kernel of the IQP (ZZ) feature map, as in Havlicek et al. (2019)",
    options=KernelOptions, defaults={"embedding": "iqp", "ansatz": "ry_cnot", "n_layers": 1, "reupload": False},
    search_space={"C": {"loguniform": [0.1, 100.0]}, "repeats": {"choice": [1, 5, 10]}}, estimator=_kernel_svc))
register_family(ModelFamily(
    name="separable_kernel", kind="kernel", title="separable kernel (no entanglement)",
    description="the control for entanglement: an SVC on the fidelity kernel of the angle embedding alone, "
                "a product state per row (the benchmark paper repeats the encoding; hqray encodes once)",
    options=KernelOptions, defaults={"embedding": "angle", "ansatz": "ry_cnot", "n_layers": 1, "reupload": False},
    search_space={"C": {"choice": [0.1, 1.0, 10.0, 100.0]}}, estimator=_kernel_svc))
register_family(ModelFamily(
    name="projected_kernel", kind="kernel", title="projected quantum kernel",
    description="an SVC on an RBF kernel of each row's one-qubit reduced states after the hamiltonian "
                "embedding (fixed random rotations, then a Trotterised Heisenberg evolution driven by the "
                "features, on n_features + 1 qubits), as in Huang et al. (2021) and the benchmark paper; gamma "
                "multiplies the paper's data-fitted bandwidth 2 / (n_qubits * var)",
    options=KernelOptions,
    # The ansatz is the identity (RY(0) RZ(0), no entangler): the map is the embedding alone.
    defaults={"kernel": "projected", "bandwidth": "scale", "embedding": "hamiltonian", "n_layers": 1,
              "reupload": False, "ansatz": "hardware_efficient", "ansatz_options": {"entangler": "none"}},
    search_space={"C": {"loguniform": [0.1, 100.0]}, "gamma": {"loguniform": [0.1, 10.0]}},
    estimator=_kernel_svc))


class KitchenSinksOptions(BaseModel):
    """Settings of quantum kitchen sinks (:class:`~hqray.training.QuantumKitchenSinks`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    n_qubits: int = Field(4, ge=1, le=16, description="qubits of each episode's circuit")
    n_episodes: int = Field(100, ge=1, le=5000, description="random circuits (features = episodes x qubits)")
    scale: float = Field(1.0, gt=0, description="standard deviation of the random input maps")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")


def _kitchen_sinks(settings: dict[str, Any], seed: int) -> Any:
    from hqray.training.kitchen_sinks import QuantumKitchenSinks

    return QuantumKitchenSinks(**settings, seed=seed)


register_family(ModelFamily(
    name="quantum_kitchen_sinks", kind="kernel", title="quantum kitchen sinks (Wilson et al. 2018)",
    description="random linear maps of the features into a fixed circuit's angles, its <Z> values as features "
                "of a logistic regression (exact expectations, where the original reads single shots)",
    options=KitchenSinksOptions, search_space={"n_episodes": {"choice": [10, 100, 500]},
                                               "C": {"loguniform": [0.1, 100.0]}},
    estimator=_kitchen_sinks))
