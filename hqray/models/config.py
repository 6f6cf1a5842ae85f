"""HybridConfig: one validated object for every option of every generation (generation g10)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from hqray.errors import ConfigError
from hqray.validated import ValidatedModel, nested_message

__all__ = ["HybridConfig", "METRIC_NAMES"]

METRIC_NAMES = ("loss", "accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc")


class HybridConfig(ValidatedModel):
    """Architecture, data handling and optimisation of a (hybrid) classifier.

    A generation is a named set of defaults for these fields (``hqray.models.generations``);
    any field can still be set on top. Fields are grouped below by concern.

    **Example**

    >>> config = HybridConfig(n_qubits=4, ansatz="basic_entangler", learning_rate=0.01)
    >>> config.use_quantum, config.n_qubits
    (True, 4)
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
    embedding: str = Field("angle", description="a registered embedding (hqray circuits): angle, amplitude, iqp")
    embedding_options: dict[str, Any] = Field(default_factory=dict)
    ansatz: str = Field("strongly_entangling", description="a registered ansatz (hqray circuits)")
    ansatz_options: dict[str, Any] = Field(default_factory=dict)
    embedding_rotation: Literal["X", "Y", "Z"] = "Y"
    reupload: bool = False
    quantum_device: str = Field("engine", description="'engine', 'lightning' or a PennyLane device")
    diff_method: str = "best"
    shots: int | None = Field(None, ge=1)
    pool_tiers: list[str] = Field(default_factory=lambda: ["gpu", "cpu"], min_length=1,
                                  description="QuantumPool fallback order for quantum_device='pool' (g7)")
    input_scale: float = Field(1.0, gt=0.0, description="angle = pi/2 * (1 + tanh(input_scale * feature))")

    # Data handling (fitted inside each fold).
    pca: bool = Field(True, description="PCA to n_qubits when there are more features")
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

    @model_validator(mode="after")
    def _check_circuit(self) -> HybridConfig:
        if self.use_quantum:
            from hqray.errors import CircuitError
            from hqray.quantum.spec import CircuitSpec  # the registry validates names and options

            try:
                CircuitSpec(n_qubits=self.n_qubits, n_layers=self.n_layers, embedding=self.embedding,
                            embedding_options=self.embedding_options, ansatz=self.ansatz,
                            ansatz_options=self.ansatz_options, embedding_rotation=self.embedding_rotation,
                            reupload=self.reupload)
            except CircuitError as error:
                raise ConfigError(nested_message(error, "CircuitSpec")) from None
        return self

