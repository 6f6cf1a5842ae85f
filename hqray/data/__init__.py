"""Datasets and in-fold preprocessing (no Ray here).

**Example**

>>> from hqray.data import load_dataset
>>> load_dataset("iris", task="multiclass").n_classes
3
"""

from hqray._lazy import lazy_exports
from hqray.data import benchmark, builtin, finance, genomics, table  # noqa: F401  (registers datasets)
from hqray.data.registry import (
    Dataset,
    DatasetOptions,
    dataset_entry,
    list_datasets,
    load_dataset,
    register_dataset,
)

# scikit-learn loads on first use of the preprocessing (a second of start-up).
__getattr__, __dir__ = lazy_exports(__name__, {"hqray.data.preprocessing": ["FoldPreprocessor"]})

__all__ = [
    "Dataset",
    "DatasetOptions",
    "FoldPreprocessor",
    "dataset_entry",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
