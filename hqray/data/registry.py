"""Dataset record and the registry of named datasets.

A dataset is one registered loader plus a pydantic model of its options, so
``load_dataset("genomics", individuals_per_population=50)`` validates every option
(unknown names, wrong types) before anything is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from hqray.errors import ConfigError, DataError, format_validation_error

__all__ = [
    "Dataset",
    "DatasetOptions",
    "DatasetEntry",
    "register_dataset",
    "load_dataset",
    "list_datasets",
    "dataset_entry",
]


class DatasetOptions(BaseModel):
    """Base of every dataset's options: unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Dataset:
    """A labelled feature matrix, validated on construction.

    Attributes:
        name: registry name of the dataset.
        features: float64 array of shape ``(n_samples, n_features)``, all finite.
        labels: int64 array of shape ``(n_samples,)`` with values ``0..n_classes-1``.
        feature_names: one name per feature column.
        class_names: one name per class; ``labels`` index into it.
        options: the options the dataset was loaded with.

    **Example**

    >>> import numpy as np
    >>> data = Dataset("toy", np.zeros((4, 2)), np.array([0, 1, 0, 1]), ("a", "b"), ("no", "yes"))
    >>> data.n_samples, data.n_features, data.n_classes
    (4, 2, 2)
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        features = np.asarray(self.features)
        labels = np.asarray(self.labels)
        if features.ndim != 2:
            raise DataError(f"dataset {self.name!r}: features must be 2-D, got shape {features.shape}")
        if not np.issubdtype(features.dtype, np.number):
            raise DataError(f"dataset {self.name!r}: features must be numeric, got dtype {features.dtype}")
        features = features.astype(np.float64, copy=False)
        bad = ~np.isfinite(features)
        if bad.any():
            column = int(np.argmax(bad.any(axis=0)))
            raise DataError(
                f"dataset {self.name!r}: feature {self.feature_names[column]!r} has "
                f"{int(bad[:, column].sum())} NaN/inf values; expected finite numbers"
            )
        if labels.shape != (features.shape[0],):
            raise DataError(
                f"dataset {self.name!r}: expected {features.shape[0]} labels, got shape {labels.shape}"
            )
        if len(self.feature_names) != features.shape[1]:
            raise DataError(
                f"dataset {self.name!r}: expected {features.shape[1]} feature names, "
                f"got {len(self.feature_names)}"
            )
        labels = labels.astype(np.int64, copy=False)
        present = np.unique(labels)
        if present.size < 2:
            raise DataError(
                f"dataset {self.name!r}: needs at least 2 classes, found {present.size} "
                f"({[self.class_names[i] for i in present]})"
            )
        if labels.min() < 0 or labels.max() >= len(self.class_names):
            raise DataError(
                f"dataset {self.name!r}: labels must lie in 0..{len(self.class_names) - 1}"
            )
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "feature_names", tuple(str(f) for f in self.feature_names))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        """Number of rows per class name."""
        counts = np.bincount(self.labels, minlength=self.n_classes)
        return {name: int(count) for name, count in zip(self.class_names, counts, strict=True)}


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: its loader, options model and a one-line description."""

    name: str
    loader: Callable[[Any], Dataset]
    options_model: type[DatasetOptions]
    description: str


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(name: str, options_model: type[DatasetOptions], description: str):
    """Decorator that registers ``loader(options) -> Dataset`` under ``name``."""

    def decorator(loader: Callable[[Any], Dataset]) -> Callable[[Any], Dataset]:
        if name in _REGISTRY:
            raise ConfigError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = DatasetEntry(name, loader, options_model, description)
        return loader

    return decorator


def list_datasets() -> list[DatasetEntry]:
    """All registered datasets, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``; raises ConfigError listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; expected one of {sorted(_REGISTRY)}"
        ) from None


def parse_dataset_options(name: str, options: dict[str, Any]) -> DatasetOptions:
    """Validates ``options`` against the dataset's options model."""
    entry = dataset_entry(name)
    try:
        return entry.options_model(**options)
    except ValidationError as error:
        raise ConfigError(
            f"dataset {name!r} options: " + format_validation_error(error)
            + f"; allowed options: {sorted(entry.options_model.model_fields)}"
        ) from None


def load_dataset(name: str, **options: Any) -> Dataset:
    """Loads a registered dataset.

    Args:
        name: registry name (see :func:`list_datasets`).
        **options: dataset options, validated by the dataset's options model.

    Returns:
        The validated :class:`Dataset`.

    Raises:
        ConfigError: unknown dataset or option, or an option of the wrong type.
        DataError: the data itself is unusable (missing file, NaN, one class, ...).

    **Example**

    >>> data = load_dataset("iris", task="binary")
    >>> data.n_samples, data.class_names
    (100, ('setosa', 'versicolor'))
    """
    parsed = parse_dataset_options(name, options)
    dataset = dataset_entry(name).loader(parsed)
    return dataset
