"""hqray: hybrid quantum-classical machine learning on Ray.

The top level exposes the Ray-free core; ``hqray.cluster``, ``hqray.tune`` and
``hqray.serve`` add Ray on top. Names load on first use, so ``import hqray`` (and the
command line's help) does not pay for torch or PennyLane until they are needed.

**Example**

>>> import hqray
>>> data = hqray.load_dataset("iris")
>>> clf = hqray.HybridClassifier("g6", epochs=2).fit(data.features, data.labels)
>>> clf.predict(data.features[:3]).shape
(3,)
"""

from hqray._lazy import lazy_exports
from hqray.errors import (
    CheckpointError,
    CircuitError,
    ConfigError,
    DataError,
    HqrayError,
)

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "hqray.data": ["Dataset", "list_datasets", "load_dataset"],
    "hqray.errors": ["NotFittedError"],  # derives from scikit-learn's: made on first use
    "hqray.models": ["HybridConfig", "list_generations", "make_config"],
    "hqray.quantum": ["Circuit", "CircuitSpec", "QuantumLayer", "execute", "list_circuits", "register_circuit"],
    "hqray.serve.batch": ["batch_predict"],  # Ray Data
    "hqray.training": ["CrossValidationResult", "HybridClassifier", "cross_validate", "load_model",
                       "save_checkpoint"],
})

__all__ = [
    "CheckpointError",
    "Circuit",
    "CircuitError",
    "CircuitSpec",
    "ConfigError",
    "CrossValidationResult",
    "DataError",
    "Dataset",
    "HqrayError",
    "HybridClassifier",
    "HybridConfig",
    "NotFittedError",
    "QuantumLayer",
    "__version__",
    "batch_predict",
    "cross_validate",
    "execute",
    "list_circuits",
    "list_datasets",
    "list_generations",
    "load_dataset",
    "load_model",
    "make_config",
    "register_circuit",
    "save_checkpoint",
]
