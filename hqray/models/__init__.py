"""Torch models and the generation registry (no Ray here).

**Example**

>>> from hqray.models import make_config, HybridNet
>>> model = HybridNet(make_config("g6"), n_features=4, n_classes=2)
>>> type(model.quantum).__name__
'QuantumLayer'
"""

from hqray._lazy import lazy_exports
from hqray.models import benchmark_families  # noqa: F401  (registers the benchmark paper's families)
from hqray.models.config import METRIC_NAMES, HybridConfig
from hqray.models.generations import (
    Generation,
    get_generation,
    list_generations,
    make_config,
    register_generation,
)

# The torch modules load on first use: configs and the registry are enough to validate.
__getattr__, __dir__ = lazy_exports(__name__, {
    "hqray.models.modules": ["ClassicalLinear", "HybridNet", "Int8DynamicLinear", "circuit_spec", "pca_width",
                             "quantize_int8", "register_quantum_backend"],
})

__all__ = [
    "METRIC_NAMES",
    "ClassicalLinear",
    "Generation",
    "HybridConfig",
    "HybridNet",
    "Int8DynamicLinear",
    "circuit_spec",
    "get_generation",
    "list_generations",
    "make_config",
    "pca_width",
    "quantize_int8",
    "register_generation",
    "register_quantum_backend",
]
