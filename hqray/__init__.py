"""hqray: hybrid quantum-classical machine learning on Ray.

The top level exposes the Ray-free core; ``hqray.cluster``, ``hqray.tune`` and
``hqray.serve`` add Ray on top.

**Example**

>>> import hqray
>>> data = hqray.load_dataset("iris")
>>> clf = hqray.HybridClassifier("g6", epochs=2).fit(data.features, data.labels)
>>> clf.predict(data.features[:3]).shape
(3,)
"""

__version__ = "0.1.0"

from hqray.data import Dataset, list_datasets, load_dataset  # noqa: E402
from hqray.errors import (  # noqa: E402
    CheckpointError,
    CircuitError,
    ConfigError,
    DataError,
    HqrayError,
    NotFittedError,
)
from hqray.models import HybridConfig, list_generations, make_config  # noqa: E402
from hqray.quantum import CircuitSpec, QuantumLayer, execute  # noqa: E402
from hqray.training import (  # noqa: E402
    CrossValidationResult,
    HybridClassifier,
    cross_validate,
    load_model,
    save_checkpoint,
)

__all__ = [
    "CheckpointError",
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
    "cross_validate",
    "execute",
    "list_datasets",
    "list_generations",
    "load_dataset",
    "load_model",
    "make_config",
    "save_checkpoint",
]
