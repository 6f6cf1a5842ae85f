"""Predictions of a fitted hybrid model, without scikit-learn.

:class:`HybridClassifier` is a scikit-learn estimator; importing scikit-learn (with SciPy)
takes about a second, which every fresh Serve replica and batch-scoring actor would pay
before its first answer. The prediction half lives here: :class:`HybridClassifier` inherits
it, and ``load_model(directory, scoring=True)`` restores a checkpoint as a
:class:`HybridPredictor`, which predicts exactly as the classifier it was saved from.

**Example**

>>> import numpy as np, tempfile
>>> from hqray.training import HybridClassifier, load_model, save_checkpoint
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(40, 4)), np.array([0, 1] * 20)
>>> directory = save_checkpoint(HybridClassifier("g6", epochs=1).fit(X, y), tempfile.mkdtemp())
>>> predictor = load_model(directory, scoring=True)
>>> type(predictor).__name__, np.array_equal(predictor.predict_proba(X), load_model(directory).predict_proba(X))
('HybridPredictor', True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hqray import errors
from hqray.data.preprocessing import check_features
from hqray.errors import DataError
from hqray.models import quantize_int8

__all__ = ["HybridPredictions", "HybridPredictor", "PREDICT_CHUNK_ROWS"]

PREDICT_CHUNK_ROWS = 8192  # bounds memory of predict_proba on large inputs


class HybridPredictions:
    """Prediction methods of a fitted hybrid model (``model_``, ``preprocessor_``, ``classes_``,
    ``config_``, ``n_features_in_``, ``threshold_``)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise errors.NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def set_inference_model(self) -> None:
        """Builds the model used for prediction from ``model_`` (once, so ``predict`` changes no state)."""
        self._inference_model = quantize_int8(self.model_) if self.config_.int8_inference else self.model_.eval()

    def inference_model(self) -> torch.nn.Module:
        """The model used for prediction (INT8-quantized copy for ``int8_inference``)."""
        self._check_fitted()
        return self._inference_model

    def transform_features(self, X: Any) -> np.ndarray:
        """Validated, preprocessed features, as the model sees them."""
        self._check_fitted()
        columns = column_names(X)
        expected = getattr(self, "feature_names_in_", None)
        if columns is not None and expected is not None and columns != list(expected):
            raise DataError(f"X has columns {columns}, but this model was fitted on columns {list(expected)}")
        return self.preprocessor_.transform(check_features(X, self.n_features_in_, what="X",
                                                           model=type(self).__name__))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        model = self.inference_model()
        features = torch.as_tensor(self.transform_features(X), dtype=torch.float32)
        with torch.no_grad():
            chunks = [torch.softmax(model(features[start:start + PREDICT_CHUNK_ROWS]), dim=1)
                      for start in range(0, features.shape[0], PREDICT_CHUNK_ROWS)]
        return torch.cat(chunks).numpy().astype(np.float64)

    def predict_from_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """Class labels for given probabilities (applies the g9 threshold when set)."""
        if getattr(self, "threshold_", None) is not None:
            return self.classes_[(probabilities[:, 1] >= self.threshold_).astype(int)]
        return self.classes_[probabilities.argmax(axis=1)]

    def predict(self, X: Any) -> np.ndarray:
        """Class labels of ``X``."""
        return self.predict_from_proba(self.predict_proba(X))


class HybridPredictor(HybridPredictions):
    """A fitted hybrid model restored for scoring only (``load_model(..., scoring=True)``): the
    classifier's predictions, attributes and metadata, without scikit-learn's estimator API."""

    def __repr__(self) -> str:
        return f"HybridPredictor(generation={self.config_.generation!r}, classes={self.classes_.tolist()})"


def column_names(table: Any) -> list[str] | None:
    """A DataFrame's column names when they are all strings (scikit-learn's rule), else ``None``."""
    columns = getattr(table, "columns", None)
    if columns is None or not all(isinstance(column, str) for column in columns):
        return None
    return list(columns)
