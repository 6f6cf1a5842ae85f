"""Preprocessing fitted inside each fold: scaling, PCA to the qubit count, SMOTE.

Everything is fitted on the training part of a fold only. The fitted state is a handful
of plain arrays (no pickled estimators), so it goes into checkpoints as ``.npz`` and is
loaded back with ``allow_pickle=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hqray import errors
from hqray.errors import ConfigError, DataError, DataTypeError

__all__ = ["FoldPreprocessor", "check_features", "check_labels", "feature_names_of"]


def check_features(features: Any, n_features: int | None = None, what: str = "features",
                   model: str = "the model") -> np.ndarray:
    """Validates a 2-D finite numeric array, naming what is wrong.

    Args:
        features: array-like of shape ``(n_samples, n_features)``.
        n_features: expected width, if known.
        what: the name used in error messages.
        model: what expects ``n_features`` (named when the width is wrong).

    Returns:
        The array as float64.

    **Example**

    >>> check_features([[1.0, 2.0]], n_features=2).shape
    (1, 2)
    """
    if type(features).__module__.startswith("scipy.sparse"):
        raise DataTypeError(f"{what}: sparse input is not supported; pass a dense array (e.g. {what}.toarray())")
    try:
        array = np.asarray(features)
        is_complex = array.dtype.kind == "c"  # float64 would silently keep only the real part
        if not is_complex:
            array = array.astype(np.float64, copy=False)
    except TypeError as error:  # objects such as dicts: a type problem, as scikit-learn says
        raise DataTypeError(f"{what} must be numeric: {error}") from None
    except ValueError as error:  # strings that are not numbers, ragged rows
        raise DataError(f"{what} must be numeric: {error}") from None
    if is_complex:
        raise DataError(f"{what}: Complex data not supported; expected real numbers")
    if array.ndim != 2:
        hint = "; Reshape your data with X.reshape(1, -1) for a single sample" if array.ndim == 1 else ""
        raise DataError(f"{what} must be 2-D (n_samples, n_features), got shape {array.shape}{hint}")
    if array.shape[0] == 0:
        raise DataError(f"{what} is empty: expected at least one row")
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(f"{what} has {array.shape[1]} features, but {model} is expecting {n_features} features "
                        "as input")
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"{what} has NaN/inf values in {rows.size} rows (first rows: {rows[:5].tolist()}); "
            "expected finite numbers"
        )
    return array


def feature_names_of(table: Any, width: int) -> list[str]:
    """A table's column names (a DataFrame's), else ``x0 .. x{width-1}``.

    >>> feature_names_of([[1.0, 2.0]], 2)
    ['x0', 'x1']
    """
    columns = getattr(table, "columns", None)
    return [str(c) for c in columns] if columns is not None else [f"x{i}" for i in range(width)]


def check_labels(labels: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Validates labels for ``n_rows`` rows; returns ``(classes, encoded)`` like ``np.unique``.

    **Example**

    >>> classes, encoded = check_labels(["b", "a", "b"], 3)
    >>> classes.tolist(), encoded.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    if labels is None:
        raise DataError("this estimator requires y to be passed, but the target y is None")
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn("A column-vector y was passed when a 1d array was expected; using y.ravel()",
                      DataConversionWarning, stacklevel=3)
        labels = labels.ravel()
    if labels.shape != (n_rows,):
        raise DataError(f"y: expected {n_rows} labels, got shape {labels.shape}")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise DataError("Unknown label type: continuous (y holds non-integer numbers); a classifier needs class "
                        "labels: integers or strings")
    if labels.dtype.kind == "c":
        raise DataError("Unknown label type: complex; a classifier needs class labels: integers or strings")
    try:
        classes, encoded = np.unique(labels, return_inverse=True)
    except TypeError:  # mixed types in an object array
        raise DataTypeError("Unknown label type: y mixes types that cannot be ordered; use one type of "
                            "class label") from None
    if classes.size < 2:
        raise DataError(f"y has 1 class ({classes.tolist()}); expected at least 2")
    return classes, encoded


class FoldPreprocessor:
    """Standard scaling, then PCA (whitened) to ``n_components`` when there are more features.

    Args:
        n_components: target width (usually ``n_qubits``); ``None`` keeps every feature.
        smote: oversample minority classes of the training data with SMOTE.
        seed: seed for PCA's solver and SMOTE.

    **Example**

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pre = FoldPreprocessor(n_components=2).fit(rng.normal(size=(20, 5)))
    >>> pre.transform(rng.normal(size=(3, 5))).shape
    (3, 2)
    """

    def __init__(self, n_components: int | None = None, smote: bool = False, seed: int = 0):
        if n_components is not None and n_components < 1:
            raise ConfigError(f"n_components must be >= 1, got {n_components}")
        self.n_components = n_components
        self.smote = smote
        self.seed = seed

    def fit(self, features: np.ndarray, labels: np.ndarray | None = None) -> FoldPreprocessor:
        # Imported here: a loaded model only transforms, and scikit-learn with SciPy takes
        # seconds to import in each fresh scoring actor or replica.
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        features = check_features(features)
        scaler = StandardScaler().fit(features)
        self.mean_ = scaler.mean_.astype(np.float64)
        # Constant columns keep scale 1 so they map to 0 instead of dividing by zero.
        self.scale_ = np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float64)
        scaled = (features - self.mean_) / self.scale_
        n_out = features.shape[1]
        if self.n_components is not None and features.shape[1] > self.n_components:
            if features.shape[0] < self.n_components:
                raise DataError(
                    f"PCA to {self.n_components} components needs at least {self.n_components} "
                    f"training rows, got {features.shape[0]}"
                )
            pca = PCA(n_components=self.n_components, whiten=True, random_state=self.seed).fit(scaled)
            variance = np.maximum(pca.explained_variance_, 1e-12)
            self.projection_ = (pca.components_ / np.sqrt(variance)[:, None]).T
            self.projection_mean_ = pca.mean_.astype(np.float64)
            n_out = self.n_components
        else:
            self.projection_ = np.eye(features.shape[1])
            self.projection_mean_ = np.zeros(features.shape[1])
        self.n_features_in_ = int(features.shape[1])
        self.n_features_out_ = int(n_out)
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Applies the fitted scaling and projection to ``features``."""
        if not hasattr(self, "mean_"):
            raise errors.NotFittedError("FoldPreprocessor.transform called before fit")
        features = check_features(features, self.n_features_in_)
        return ((features - self.mean_) / self.scale_ - self.projection_mean_) @ self.projection_

    def fit_transform(self, features: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return self.fit(features, labels).transform(features)

    def resample(self, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SMOTE-oversamples already transformed training rows (identity when ``smote=False``)."""
        if not self.smote:
            return features, labels
        from imblearn.over_sampling import SMOTE

        counts = np.bincount(labels)
        present = np.where(counts > 0, counts, np.iinfo(np.int64).max)
        smallest_class = int(np.argmin(present))
        smallest = int(counts[smallest_class])
        if smallest < 2:
            raise DataError(f"SMOTE needs at least 2 training rows per class; class {smallest_class} has {smallest}")
        smote = SMOTE(k_neighbors=min(5, smallest - 1), random_state=self.seed)
        return smote.fit_resample(features, labels)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays (for ``np.savez``)."""
        if not hasattr(self, "mean_"):
            raise errors.NotFittedError("FoldPreprocessor.state_dict called before fit")
        return {"mean": self.mean_, "scale": self.scale_, "projection": self.projection_,
                "projection_mean": self.projection_mean_}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray], smote: bool = False) -> FoldPreprocessor:
        """Rebuilds a fitted preprocessor from :meth:`state_dict` arrays."""
        missing = {"mean", "scale", "projection", "projection_mean"} - set(state)
        if missing:
            raise DataError(f"preprocessing state lacks arrays {sorted(missing)}")
        projection = np.asarray(state["projection"], dtype=np.float64)
        reduced = projection.shape[1] if projection.shape[1] != projection.shape[0] else None
        pre = cls(n_components=reduced, smote=smote)
        pre.mean_ = np.asarray(state["mean"], dtype=np.float64)
        pre.scale_ = np.asarray(state["scale"], dtype=np.float64)
        pre.projection_ = projection
        pre.projection_mean_ = np.asarray(state["projection_mean"], dtype=np.float64)
        pre.n_features_in_ = int(pre.mean_.shape[0])
        pre.n_features_out_ = int(projection.shape[1])
        return pre
