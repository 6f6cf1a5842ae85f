"""HybridClassifier: a scikit-learn estimator over every generation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedShuffleSplit

from hqray.data.preprocessing import FoldPreprocessor, check_features, check_labels
from hqray.errors import ConfigError, DataError
from hqray.models import HybridConfig, HybridNet, make_config, pca_width
from hqray.training.fit import Trainer
from hqray.training.metrics import threshold_for_sensitivity
from hqray.training.predictor import HybridPredictions, column_names

__all__ = ["HybridClassifier"]


class HybridClassifier(HybridPredictions, ClassifierMixin, BaseEstimator):
    """Fits a generation's model with in-fit preprocessing and early stopping.

    ``fit`` standardises the features, reduces them with PCA to ``n_qubits`` (when there
    are more), optionally SMOTE-resamples, holds out ``validation_fraction`` of the rows
    (stratified) for early stopping, and trains. Everything is fitted on the rows given
    to ``fit`` only, so the estimator is leak-free inside ``cross_val_score``.

    Args:
        generation: generation id (``"g0"`` ... ``"g10"``).
        epochs, learning_rate, n_qubits, n_layers, batch_size, seed: common settings
            (``None`` keeps the generation's default).
        options: any other :class:`~hqray.models.HybridConfig` field, e.g. ``{"lora_rank": 4}``.

    **Example**

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = HybridClassifier("g6", epochs=3).fit(X[:100], y[:100])
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    #: scikit-learn checks this estimator does not pass, with the reason: pass it as
    #: ``check_estimator(..., expected_failed_checks=HybridClassifier.EXPECTED_FAILED_CHECKS)``.
    EXPECTED_FAILED_CHECKS = {
        "check_methods_subset_invariance": "predictions are computed in float32, the circuit's precision: the "
                                           "same row in batches of other sizes can differ by a few units in the "
                                           "last place (about 2e-7), beyond the check's 1e-7 tolerance",
    }

    def __init__(self, generation: str = "g6", epochs: int | None = None,
                 learning_rate: float | None = None, n_qubits: int | None = None,
                 n_layers: int | None = None, batch_size: int | None = None,
                 seed: int | None = None, options: dict[str, Any] | None = None):
        self.generation = generation
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.n_qubits = n_qubits
        self.n_layers = n_layers
        self.batch_size = batch_size
        self.seed = seed
        self.options = options

    @classmethod
    def from_config(cls, config: HybridConfig) -> HybridClassifier:
        """An estimator whose resolved config equals ``config``."""
        return cls(generation=config.generation, options=config.model_dump(exclude={"generation"}))

    def resolved_config(self) -> HybridConfig:
        """The generation's defaults with this estimator's settings on top."""
        explicit = {name: getattr(self, name) for name in
                    ("epochs", "learning_rate", "n_qubits", "n_layers", "batch_size", "seed")
                    if getattr(self, name) is not None}
        options = dict(self.options or {})
        clash = set(options) & set(explicit)
        if clash:
            raise ConfigError(f"{sorted(clash)} given both as arguments and in options")
        if "generation" in options:
            raise ConfigError("set the generation with the 'generation' argument, not in options")
        return make_config(self.generation, **explicit, **options)

    # -- fitting ---------------------------------------------------------------------------

    def begin_fit(self, features: Any, labels: Any, feature_names: list[str] | None = None) -> Trainer:
        """Validates the data, fits preprocessing, builds the model; returns its :class:`Trainer`.

        ``fit`` is ``begin_fit``, then ``Trainer.step`` until it stops, then ``end_fit``;
        cross-validation uses the parts to train folds in lock-step.
        """
        config = self.resolved_config()
        columns = column_names(features)
        if columns is not None and feature_names is None:
            feature_names = columns
        features = check_features(features, what="X")
        self.classes_, encoded = check_labels(labels, features.shape[0])
        counts = np.bincount(encoded)
        if counts.min() < 2:
            raise DataError(
                f"class {self.classes_[counts.argmin()]!r} has {counts.min()} row; at least 2 per "
                "class are needed to hold out validation rows"
            )
        self.config_ = config
        self.n_features_in_ = features.shape[1]
        # scikit-learn's convention: names only when fitted on a table with string column names.
        if columns is not None:
            self.feature_names_in_ = np.asarray(columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.feature_names_ = list(feature_names) if feature_names else [f"x{i}" for i in range(features.shape[1])]
        if len(self.feature_names_) != features.shape[1]:
            raise DataError(f"expected {features.shape[1]} feature names, got {len(self.feature_names_)}")

        splitter = StratifiedShuffleSplit(n_splits=1, test_size=config.validation_fraction,
                                          random_state=config.seed)
        n_val = int(np.ceil(config.validation_fraction * features.shape[0]))
        if n_val < self.classes_.size:  # too few rows to stratify a hold-out: validate on training rows
            train_index = validation_index = np.arange(features.shape[0])
        else:
            train_index, validation_index = next(splitter.split(features, encoded))
        self.preprocessor_ = FoldPreprocessor(
            n_components=pca_width(config), smote=config.smote, seed=config.seed,
        ).fit(features[train_index])
        train_x = self.preprocessor_.transform(features[train_index])
        train_x, train_y = self.preprocessor_.resample(train_x, encoded[train_index])
        validation = (self.preprocessor_.transform(features[validation_index]), encoded[validation_index])

        torch.manual_seed(config.seed)
        self.model_ = HybridNet(config, self.preprocessor_.n_features_out_, self.classes_.size)
        self._inference_model = None
        self.trainer_ = Trainer(self.model_, config, (train_x, train_y), validation, self.classes_.size)
        return self.trainer_

    def end_fit(self) -> HybridClassifier:
        """Restores the best epoch's weights and chooses the decision threshold (g9)."""
        trainer = self.trainer_
        trainer.finish()
        self.history_ = list(trainer.history)
        self.best_epoch_ = trainer.best_epoch
        self.threshold_ = None
        if self.config_.sensitivity_target is not None and self.classes_.size == 2:
            self.threshold_ = threshold_for_sensitivity(
                trainer.validation_labels, trainer.validation_probabilities()[:, 1],
                self.config_.sensitivity_target)
        del self.trainer_  # holds optimizer state and data copies; not part of the fitted model
        self.set_inference_model()
        return self

    def fit(self, X: Any, y: Any, feature_names: list[str] | None = None) -> HybridClassifier:
        """Fits the model; returns ``self``."""
        trainer = self.begin_fit(X, y, feature_names)
        while not trainer.stopped:
            trainer.step()
        return self.end_fit()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        # Dense numbers only: sparse matrices, strings and NaN are refused with a clear error
        # (the circuit's angles need every feature of every row).
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        return tags
