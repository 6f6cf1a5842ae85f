"""HybridConfig: one validated object for every option of every generation (generation g10)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from hqray.errors import ConfigError
from hqray.quantum.circuits import CircuitChoice
from hqray.validated import ValidatedModel, nested_message

__all__ = ["HybridConfig", "METRIC_NAMES"]

# Fields of HybridConfig before it held one circuit: named in the error that says where they went.
_MOVED_INTO_CIRCUIT = {"embedding": "circuit.embedding", "embedding_options": "circuit.embedding_options",
                       "ansatz": "circuit.ansatz", "ansatz_options": "circuit.ansatz_options",
                       "reupload": "circuit.reupload", "embedding_rotation": "circuit.embedding_options.rotation"}
METRIC_NAMES = ("loss", "accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc")


class HybridConfig(ValidatedModel):
    """Architecture, data handling and optimisation of a (hybrid) classifier.

    A generation is a named set of defaults for these fields (``hqray.models.generations``);
    any field can still be set on top. Fields are grouped below by concern.

    **Example**

    >>> config = HybridConfig(n_qubits=4, circuit="basic_entangler", learning_rate=0.01)
    >>> config.use_quantum, config.circuit.ansatz
    (True, 'basic_entangler')

    Search spaces and ``--set`` reach inside the circuit with dotted keys:

    >>> HybridConfig(**{"circuit": "iqp", "circuit.reupload": True}).circuit.label
    'iqp+strongly_entangling+reupload'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation: str = "g10"

    # Classical parts.
    use_quantum: bool = True
    hidden_units: int = Field(16, ge=1, le=4096, description="width of MLP / post-net hidden layers")
    hidden_layers: int = Field(2, ge=0, le=8, description="hidden layers of the classical MLP (g0)")
    pre_net: bool = Field(False, description="trainable Linear(features -> n_qubits) before the circuit")
    post_hidden: int = Field(0, ge=0, le=4096, description="hidden units after the circuit; 0: one Linear")
    sparsity_threshold: float = Field(0.0, ge=0.0, description="zero weights below this magnitude")
    lora_rank: int = Field(0, ge=0, le=256, description="LoRA adapter rank; 0 disables LoRA")
    lora_alpha: float = Field(8.0, gt=0.0)
    autocast: bool = Field(False, description="classical layers in bf16 (CPU) / fp16 (CUDA)")
    int8_inference: bool = Field(False, description="INT8 dynamic quantization when predicting")

    # Quantum part.
    n_qubits: int = Field(4, ge=1, le=24)
    n_layers: int = Field(2, ge=1, le=50)
    circuit: CircuitChoice = Field(default_factory=CircuitChoice,
                                   description="embedding + ansatz by registered name with options (hqray circuits); "
                                               "a name alone sets that part: circuit=qcnn")
    quantum_device: str = Field("engine", description="'engine', 'lightning' or a PennyLane device")
    diff_method: str = "best"
    shots: int | None = Field(None, ge=1)
    pool_tiers: list[str] = Field(default_factory=lambda: ["gpu", "cpu"], min_length=1,
                                  description="QuantumPool fallback order for quantum_device='pool' (g7)")
    input_scale: float = Field(1.0, gt=0.0, description="angle = pi/2 * (1 + tanh(input_scale * feature))")

    # Data handling (fitted inside each fold).
    pca: bool | None = Field(None, description="PCA in each fold: true: to n_qubits; false: never; "
                                               "null (default): only to fit a circuit without pre_net "
                                               "(to what its embedding takes); see pca_width")
    smote: bool = False
    class_weights: bool = False

    # Optimisation.
    optimizer: Literal["adam", "adamw"] = "adam"
    learning_rate: float = Field(0.05, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(16, ge=1)
    epochs: int = Field(40, ge=1, le=10_000)
    patience: int = Field(10, ge=1)
    validation_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    early_stopping_metric: Literal["loss", "accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc"] = "loss"
    sensitivity_target: float | None = Field(None, gt=0.0, lt=1.0,
                                             description="pick the decision threshold for this sensitivity")
    seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _nest_dotted_keys(cls, values: Any) -> Any:
        """``{"circuit.reupload": True}`` -> ``{"circuit": {..., "reupload": True}}`` (after ``circuit``)."""
        if not isinstance(values, dict):
            return values
        moved = sorted(set(values) & set(_MOVED_INTO_CIRCUIT))
        if moved:
            raise ConfigError(f"{moved} belong to the circuit now: set circuit=<name> (e.g. circuit=qcnn) or "
                              f"{[_MOVED_INTO_CIRCUIT[key] for key in moved]}")
        values = dict(values)
        for key in [key for key in values if isinstance(key, str) and "." in key]:
            field, _, part = key.partition(".")
            if field != "circuit" or part not in CircuitChoice.model_fields:
                raise ConfigError(f"no option {key!r}; dotted keys reach the circuit's "
                                  f"{['circuit.' + name for name in CircuitChoice.model_fields]}")
            base = CircuitChoice.model_validate(values.get("circuit", CircuitChoice()))
            values["circuit"] = CircuitChoice.model_validate({**base.model_dump(), part: values.pop(key)})
        return values

    @classmethod
    def knows(cls, key: str) -> bool:
        """Whether ``key`` can be set (a field, or ``circuit.<part>``), e.g. in a search space."""
        field, dot, part = key.partition(".")
        return key in cls.model_fields or (dot and field == "circuit" and part in CircuitChoice.model_fields)

    @model_validator(mode="after")
    def _check_circuit(self) -> HybridConfig:
        if self.use_quantum:
            from hqray.errors import CircuitError
            from hqray.quantum.spec import CircuitSpec  # the registry validates options and widths

            try:
                CircuitSpec.from_choice(self.circuit, self.n_qubits, self.n_layers)
            except CircuitError as error:
                raise ConfigError(nested_message(error, "CircuitSpec")) from None
        return self
