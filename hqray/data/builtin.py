"""The scikit-learn datasets: iris, breast_cancer (WDBC) and digits."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from hqray.data.registry import Dataset, DatasetOptions, register_dataset


class IrisOptions(DatasetOptions):
    """``task="binary"`` keeps setosa vs versicolor; ``"multiclass"`` keeps all three."""

    task: Literal["binary", "multiclass"] = "binary"


def _sklearn_datasets():
    """scikit-learn's loaders, imported when a dataset is loaded (a second of start-up)."""
    from sklearn import datasets

    return datasets


@register_dataset("iris", IrisOptions, "Fisher's iris: binary (setosa/versicolor) or 3-class")
def load_iris(options: IrisOptions) -> Dataset:
    raw = _sklearn_datasets().load_iris()
    features, labels = raw.data, raw.target
    class_names = tuple(str(name) for name in raw.target_names)
    if options.task == "binary":
        keep = labels < 2
        features, labels, class_names = features[keep], labels[keep], class_names[:2]
    return Dataset("iris", features, labels, tuple(raw.feature_names), class_names,
                   options.model_dump())


class NoOptions(DatasetOptions):
    """This dataset takes no options."""


@register_dataset("breast_cancer", NoOptions, "Wisconsin diagnostic breast cancer (WDBC), binary")
def load_breast_cancer(options: NoOptions) -> Dataset:
    raw = _sklearn_datasets().load_breast_cancer()
    # scikit-learn codes malignant as 0; the positive class of medical metrics is malignant.
    labels = 1 - raw.target
    return Dataset("breast_cancer", raw.data, labels, tuple(raw.feature_names),
                   ("benign", "malignant"), options.model_dump())


class DigitsOptions(DatasetOptions):
    """``n_classes`` keeps the digits ``0..n_classes-1``."""

    n_classes: int = Field(10, ge=2, le=10)


@register_dataset("digits", DigitsOptions, "8x8 handwritten digits, multi-class")
def load_digits(options: DigitsOptions) -> Dataset:
    raw = _sklearn_datasets().load_digits(n_class=options.n_classes)
    names = tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8))
    return Dataset("digits", raw.data.astype(np.float64), raw.target, names,
                   tuple(str(d) for d in range(options.n_classes)), options.model_dump())
