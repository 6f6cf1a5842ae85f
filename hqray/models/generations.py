"""The generation registry: named model families with defaults and search spaces.

A generation is one :func:`register_generation` call: an id, what it adds, defaults for
:class:`HybridConfig` fields, and a Tune-style search space. Study files name generations
(``generations: [g0, g1, g6]``) and compare them on the same folds.

Search-space entries are plain data, e.g. ``{"loguniform": [0.001, 0.1]}``,
``{"uniform": [0, 1]}``, ``{"choice": [2, 4]}``, ``{"randint": [1, 4]}`` or
``{"grid": [1, 2]}``; the tune layer turns them into Ray Tune domains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hqray.errors import CircuitError, ConfigError
from hqray.models.config import HybridConfig

__all__ = ["Generation", "register_generation", "get_generation", "list_generations", "make_config"]


@dataclass(frozen=True)
class Generation:
    """A registered model family."""

    id: str
    title: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, dict[str, list]] = field(default_factory=dict)


_GENERATIONS: dict[str, Generation] = {}


def register_generation(generation: Generation) -> Generation:
    """Adds a generation; its defaults must form a valid :class:`HybridConfig`."""
    if generation.id in _GENERATIONS:
        raise ConfigError(f"generation {generation.id!r} is registered twice")
    unknown = {key for key in [*generation.defaults, *generation.search_space] if not HybridConfig.knows(key)}
    if unknown:
        raise ConfigError(f"generation {generation.id!r} names unknown config fields {sorted(unknown)}")
    _GENERATIONS[generation.id] = generation
    return generation


def get_generation(generation_id: str) -> Generation:
    """The generation ``generation_id``; ConfigError lists the known ids otherwise."""
    try:
        return _GENERATIONS[generation_id]
    except KeyError:
        raise ConfigError(
            f"unknown generation {generation_id!r}; expected one of {list(_GENERATIONS)}"
        ) from None


def list_generations() -> list[Generation]:
    """All generations, in numeric order (g0, g1, ..., g10), then any others registered."""
    def key(generation: Generation) -> tuple:
        digits = generation.id.lstrip("g")
        return (0, int(digits)) if digits.isdigit() else (1, generation.id)

    return sorted(_GENERATIONS.values(), key=key)


def layer_options(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``; a circuit *name* over a base circuit sets only that part.

    So ``--set circuit=iqp`` on g1 (ry_cnot) gives the IQP embedding with g1's ry_cnot ansatz,
    while a full mapping (``circuit: {embedding: iqp, ansatz: qcnn}``) replaces the circuit.

    >>> layer_options({"circuit": "ry_cnot"}, {"circuit": "iqp"})
    {'circuit': 'ry_cnot', 'circuit.embedding': 'iqp'}
    """
    from hqray.quantum.circuits import get_circuit

    values = dict(base)
    for key, value in overrides.items():
        if key == "circuit" and isinstance(value, str) and "circuit" in values:
            try:
                key = f"circuit.{get_circuit(value).kind}"
            except CircuitError as error:
                raise ConfigError(f"circuit: {error}") from None
        values[key] = value
    return values


def make_config(generation_id: str = "g6", **overrides: Any) -> HybridConfig:
    """The generation's defaults, with ``overrides`` on top, validated.

    **Example**

    >>> make_config("g2").lora_rank
    2
    >>> make_config("g6", n_layers=3).n_layers
    3
    """
    generation = get_generation(generation_id)
    values = layer_options(generation.defaults, {**overrides, "generation": generation_id})
    try:
        return HybridConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"generation {generation_id!r}: {error}") from None


_COMMON_SPACE = {
    "learning_rate": {"loguniform": [0.005, 0.1]},
    "batch_size": {"choice": [8, 16, 32]},
}
_QUANTUM_SPACE = {**_COMMON_SPACE, "n_layers": {"randint": [1, 5]}}
_HYBRID = {"pre_net": True, "circuit": "ry_cnot", "n_layers": 2}

for _generation in [
    Generation("g0", "classical MLP",
               "Classical MLP with threshold sparsification: the control group.",
               {"use_quantum": False, "hidden_units": 16, "hidden_layers": 2,
                "sparsity_threshold": 0.01, "learning_rate": 0.01},
               {**_COMMON_SPACE, "hidden_units": {"choice": [8, 16, 32]},
                "sparsity_threshold": {"uniform": [0.0, 0.05]}}),
    Generation("g1", "hybrid RY + CNOT",
               "Classical pre-net -> quantum layer (RY + CNOT chain) -> post-net, trained end to end.",
               dict(_HYBRID), dict(_QUANTUM_SPACE)),
    Generation("g2", "LoRA",
               "g1 with low-rank (LoRA) adapters on the classical layers; base weights frozen.",
               {**_HYBRID, "post_hidden": 8, "lora_rank": 2, "lora_alpha": 4.0},
               {**_QUANTUM_SPACE, "lora_rank": {"choice": [1, 2, 4]}}),
    Generation("g3", "mixed precision",
               "g1 with autocast: classical layers in bf16 on CPU (fp16 on CUDA); circuit in float32.",
               {**_HYBRID, "autocast": True}, dict(_QUANTUM_SPACE)),
    Generation("g4", "INT8 inference",
               "g1 whose classical layers are INT8 dynamically quantized for inference.",
               {**_HYBRID, "post_hidden": 8, "int8_inference": True}, dict(_QUANTUM_SPACE)),
    Generation("g5", "lightning adjoint",
               "g1 on PennyLane lightning (lightning.gpu when present) with adjoint "
               "differentiation: the device-simulator comparison point.",
               {**_HYBRID, "quantum_device": "lightning", "diff_method": "adjoint"},
               dict(_COMMON_SPACE)),
    Generation("g6", "entangling templates",
               "AngleEmbedding + StronglyEntanglingLayers (or BasicEntanglerLayers) on the "
               "PCA features, linear read-out.",
               {"circuit": "strongly_entangling", "n_layers": 2},
               {**_QUANTUM_SPACE, "circuit": {"choice": ["strongly_entangling", "basic_entangler"]}}),
    # g7 is data like the others; its quantum layer (quantum_device="pool") is built by
    # hqray.cluster, which registers the "pool" backend, so studies can name g7 without Ray.
    Generation("g7", "pool-backed quantum layer",
               "g6 whose circuits run on the QuantumPool's CircuitWorker actors (tiers QPU/GPU/CPU, "
               "retries, fallback); defaults to the exact GPU -> CPU tiers, add 'qpu' for the "
               "hardware-like tier. Needs hqray.cluster (Ray).",
               {"quantum_device": "pool", "pool_tiers": ["gpu", "cpu"]},
               {"learning_rate": {"loguniform": [0.005, 0.1]}, "batch_size": {"choice": [16, 32, 64]}}),
    Generation("g8", "class imbalance",
               "g6 with SMOTE inside folds and class-weighted loss.",
               {"smote": True, "class_weights": True},
               {**_QUANTUM_SPACE, "smote": {"choice": [True, False]}}),
    Generation("g9", "medical evaluation",
               "g6 with ROC-AUC early stopping and a decision threshold chosen on validation "
               "rows for 95% sensitivity; reports sensitivity, specificity, PPV and NPV.",
               {"early_stopping_metric": "roc_auc", "sensitivity_target": 0.95, "class_weights": True},
               {**_QUANTUM_SPACE, "early_stopping_metric": {"choice": ["roc_auc", "pr_auc"]}}),
    Generation("g10", "one config",
               "Every option of g0-g9 on one HybridConfig; the search space spans the main ones.",
               {},
               {**_QUANTUM_SPACE, "circuit": {"choice": ["strongly_entangling", "basic_entangler", "ry_cnot"]},
                "pre_net": {"choice": [True, False]}, "circuit.reupload": {"choice": [True, False]},
                "weight_decay": {"loguniform": [1e-5, 1e-2]}}),
]:
    register_generation(_generation)
