"""Stratified k-fold cross-validation of a generation next to classical baselines.

Every fold fits its preprocessing on its training rows only. The hybrid model's folds
train in lock-step (one epoch of each fold at a time), so a caller can observe per-epoch
means across folds; the baselines see the same folds and every feature.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from hqray.data import Dataset, FoldPreprocessor
from hqray.errors import ConfigError, DataError
from hqray.models import HybridConfig, pca_width
from hqray.training.baselines import make_baseline
from hqray.training.classifier import HybridClassifier
from hqray.training.fit import epoch_metrics
from hqray.training.metrics import SCALAR_METRICS, classification_metrics, confusion, summarize

__all__ = ["fold_splits", "cross_validate", "CrossValidationResult", "DEFAULT_BASELINES",
           "LockstepFolds", "FoldScores", "run_baselines", "SAME_FEATURES_SUFFIX"]

DEFAULT_BASELINES = ("logreg", "svc", "random_forest")


def fold_splits(labels: np.ndarray, n_folds: int, seed: int,
                class_names: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled ``(train_index, test_index)`` pairs, identical for a given seed.

    Raises:
        ConfigError: ``n_folds < 2``.
        DataError: a class has fewer rows than folds (naming the class and its count).
    """
    if n_folds < 2:
        raise ConfigError(f"folds must be >= 2, got {n_folds}")
    counts = np.bincount(labels)
    for index, count in enumerate(counts):
        if 0 < count < n_folds:
            name = class_names[index] if class_names else index
            raise DataError(f"class {name!r} has {count} rows, fewer than folds={n_folds}")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(labels.size), labels))


@dataclass
class CrossValidationResult:
    """Per-fold metrics of a model and its baselines, and its out-of-fold predictions."""

    dataset: str
    generation: str
    config: dict[str, Any]
    class_names: tuple[str, ...]
    folds: list[dict[str, float]]
    confusion_matrices: list[list[list[int]]]
    mean: dict[str, float]
    std: dict[str, float]
    best_epochs: list[int]
    labels: np.ndarray
    probabilities: np.ndarray  # out-of-fold, (n_samples, n_classes)
    fold_of_row: np.ndarray
    seconds: float  # cross-validation, baselines included
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    refit_seconds: float | None = None  # the final refit on every row, where one was made

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` document (see the README for its shape)."""
        return {
            "dataset": self.dataset,
            "generation": self.generation,
            "folds": self.folds,
            "mean": self.mean,
            "std": self.std,
            "baselines": {name: {"features": b["features"], "mean": b["mean"], "std": b["std"],
                                 "folds": b["folds"]} for name, b in self.baselines.items()},
            "confusion_matrices": self.confusion_matrices,
            "best_epochs": self.best_epochs,
            "class_names": list(self.class_names),
            "config": self.config,
            "seconds": self.seconds,
            "refit_seconds": self.refit_seconds,
        }


def score_fold(labels: np.ndarray, probabilities: np.ndarray, threshold: float | None) -> dict[str, float]:
    metrics = classification_metrics(labels, probabilities, threshold)
    return {k: metrics[k] for k in metrics if k in SCALAR_METRICS or threshold is not None}


SAME_FEATURES_SUFFIX = " (same features)"


def run_baselines(dataset: Dataset, splits, names: Sequence[str], seed: int = 0,
                  same_features_as: HybridConfig | None = None) -> dict[str, dict[str, Any]]:
    """Runs each classical baseline on ``splits``; every fit happens inside its fold.

    Baselines see **every feature**, standardised on each fold's training rows: the
    strongest honest classical comparison. With ``same_features_as``, each baseline also
    runs on the model's own preprocessing (PCA to ``n_qubits``, SMOTE where the config
    says so) under the name ``"<name> (same features)"``, when that preprocessing keeps
    fewer features than the data has. Each entry says which features it saw.

    **Example**

    >>> from hqray.data import load_dataset
    >>> from hqray.models import make_config
    >>> data = load_dataset("breast_cancer")
    >>> splits = fold_splits(data.labels, 2, 0)
    >>> result = run_baselines(data, splits, ["logreg"], same_features_as=make_config("g6"))
    >>> {name: entry["features"] for name, entry in result.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'logreg': 'all 30 features, standardised in-fold',
     'logreg (same features)': "the model's 4 PCA components, fitted in-fold"}
    """
    variants = [("", f"all {dataset.n_features} features, standardised in-fold",
                 dict(n_components=None, smote=False))]
    width = pca_width(same_features_as) if same_features_as is not None else None
    if width is not None and width < dataset.n_features:
        variants.append((SAME_FEATURES_SUFFIX,
                         f"the model's {width} PCA components, fitted in-fold"
                         + (", SMOTE" if same_features_as.smote else ""),
                         dict(n_components=width, smote=same_features_as.smote)))
    results = {}
    for suffix, features, preprocessing in variants:
        for name in names:
            folds = [_baseline_fold(dataset, train_index, test_index, name, seed, preprocessing)
                     for train_index, test_index in splits]
            mean, std = summarize(folds)
            results[name + suffix] = {"folds": folds, "mean": mean, "std": std, "features": features}
    return results


def _baseline_fold(dataset: Dataset, train_index: np.ndarray, test_index: np.ndarray, name: str, seed: int,
                   preprocessing: dict[str, Any]) -> dict[str, float]:
    """One baseline fitted on one fold's training rows and scored on its test rows."""
    preprocessor = FoldPreprocessor(seed=seed, **preprocessing)
    train_x = preprocessor.fit_transform(dataset.features[train_index])
    train_x, train_y = preprocessor.resample(train_x, dataset.labels[train_index])
    estimator = make_baseline(name, seed).fit(train_x, train_y)
    probabilities = estimator.predict_proba(preprocessor.transform(dataset.features[test_index]))
    return score_fold(dataset.labels[test_index], probabilities, None)


@dataclass
class FoldScores:
    """The outer-test scores of k fitted folds."""

    folds: list[dict[str, float]]
    confusion_matrices: list[list[list[int]]]
    mean: dict[str, float]
    std: dict[str, float]
    best_epochs: list[int]
    probabilities: np.ndarray  # out-of-fold, (n_samples, n_classes)
    fold_of_row: np.ndarray


class LockstepFolds:
    """The k folds of one config, trained one epoch of every fold at a time.

    Each fold's model sees only its training rows (preprocessing, early-stopping hold-out
    and all); its test rows are scored after every epoch with cheap metrics (for progress
    and for Ray Tune's early stopping of weak trials) and fully by :meth:`finish`.
    :meth:`state_dict` / :meth:`load_state_dict` let an interrupted run continue where it
    stopped: the preprocessing is refitted deterministically, the training state restored.

    Args:
        dataset: the data.
        config: the model.
        splits: ``(train_index, test_index)`` pairs (see :func:`fold_splits`).
        test_metric: a metric to add to the per-epoch test scores (e.g. ``"roc_auc"``).

    **Example**

    >>> from hqray.data import load_dataset
    >>> from hqray.models import make_config
    >>> data = load_dataset("iris")
    >>> folds = LockstepFolds(data, make_config("g0", epochs=2), fold_splits(data.labels, 2, 0))
    >>> [sorted(record) for record in folds.step()][0][:3]
    ['epoch', 'test_accuracy', 'test_balanced_accuracy']
    >>> len(folds.finish().folds)
    2
    """

    def __init__(self, dataset: Dataset, config: HybridConfig, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                 test_metric: str | None = None):
        self.dataset = dataset
        self.config = config
        self.splits = list(splits)
        self.test_metric = test_metric
        self.epoch = 0
        self.estimators: list[HybridClassifier] = []
        self.trainers = []
        self._test_sets = []
        for train_index, test_index in self.splits:
            estimator = HybridClassifier.from_config(config)
            self.trainers.append(estimator.begin_fit(dataset.features[train_index], dataset.labels[train_index],
                                                     list(dataset.feature_names)))
            self.estimators.append(estimator)
            labels = dataset.labels[test_index]
            # Labels re-encoded into each fold's class order (a tiny fold may lack a class).
            encoded = np.searchsorted(estimator.classes_, labels)
            features = torch.as_tensor(estimator.transform_features(dataset.features[test_index]),
                                       dtype=torch.float32)
            self._test_sets.append((features, encoded))

    @property
    def stopped(self) -> bool:
        """True when every fold has stopped (early stopping or its epoch budget)."""
        return all(trainer.stopped for trainer in self.trainers)

    def step(self) -> list[dict[str, float]]:
        """One epoch of every fold; returns each fold's trainer record plus ``test_*`` scores."""
        self.epoch += 1
        records = []
        for trainer, (features, labels) in zip(self.trainers, self._test_sets, strict=True):
            record = dict(trainer.step())
            scores = epoch_metrics(trainer.model, features, labels, trainer.n_classes, trainer.loss_function,
                                   self.test_metric)
            record.update({f"test_{name}": value for name, value in scores.items()})
            records.append(record)
        return records

    def state_dict(self) -> dict[str, Any]:
        """The training state of every fold (tensors and plain values only)."""
        return {"epoch": self.epoch, "folds": [trainer.state_dict() for trainer in self.trainers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from :meth:`state_dict` of the same dataset, config and splits."""
        if len(state["folds"]) != len(self.trainers):
            raise ConfigError(f"saved state has {len(state['folds'])} folds, this run has {len(self.trainers)}")
        self.epoch = int(state["epoch"])
        for trainer, fold_state in zip(self.trainers, state["folds"], strict=True):
            trainer.load_state_dict(fold_state)

    def finish(self) -> FoldScores:
        """Restores each fold's best epoch and scores its test rows with every metric."""
        dataset = self.dataset
        probabilities = np.zeros((dataset.n_samples, dataset.n_classes))
        fold_of_row = np.zeros(dataset.n_samples, dtype=np.int64)
        fold_metrics, matrices, best_epochs = [], [], []
        for fold, (estimator, (_, test_index)) in enumerate(zip(self.estimators, self.splits, strict=True)):
            estimator.end_fit()
            fold_probabilities = np.zeros((test_index.size, dataset.n_classes))
            # A training fold may lack a class only if it is tiny; its column then stays 0.
            fold_probabilities[:, estimator.classes_] = estimator.predict_proba(dataset.features[test_index])
            probabilities[test_index] = fold_probabilities
            fold_of_row[test_index] = fold
            labels = dataset.labels[test_index]
            fold_metrics.append(score_fold(labels, fold_probabilities, estimator.threshold_))
            matrices.append(confusion(labels, fold_probabilities, estimator.threshold_))
            best_epochs.append(estimator.best_epoch_)
        mean, std = summarize(fold_metrics)
        return FoldScores(fold_metrics, matrices, mean, std, best_epochs, probabilities, fold_of_row)


def cross_validate(
    dataset: Dataset,
    config: HybridConfig,
    folds: int = 5,
    seed: int = 0,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    on_epoch: Callable[[int, list[dict[str, float]]], None] | None = None,
    same_feature_baselines: bool = False,
) -> CrossValidationResult:
    """k-fold cross-validation of ``config`` on ``dataset``.

    Args:
        dataset: the data.
        config: the model (see :func:`hqray.models.make_config`).
        folds: number of stratified folds.
        seed: seed of the fold assignment (identical folds for identical seeds).
        baselines: names of classical baselines to run on the same folds, on every
            feature (standardised in-fold).
        on_epoch: called after each lock-step epoch with the epoch number and every
            fold's latest trainer record (progress bars, Ray Tune reports).
        same_feature_baselines: also run each baseline on the model's own reduced
            features (``"<name> (same features)"``), see :func:`run_baselines`.

    Returns:
        A :class:`CrossValidationResult`.

    **Example**

    >>> from hqray.data import load_dataset
    >>> from hqray.models import make_config
    >>> result = cross_validate(load_dataset("iris"), make_config("g6", epochs=2), folds=2, baselines=())
    >>> len(result.folds)
    2
    """
    started = time.perf_counter()
    splits = fold_splits(dataset.labels, folds, seed, dataset.class_names)
    lockstep = LockstepFolds(dataset, config, splits)
    while not lockstep.stopped:
        records = lockstep.step()
        if on_epoch is not None:
            on_epoch(lockstep.epoch, records)
    scores = lockstep.finish()
    result = CrossValidationResult(
        dataset=dataset.name, generation=config.generation, config=config.model_dump(),
        class_names=dataset.class_names, folds=scores.folds, confusion_matrices=scores.confusion_matrices,
        mean=scores.mean, std=scores.std, best_epochs=scores.best_epochs, labels=dataset.labels,
        probabilities=scores.probabilities, fold_of_row=scores.fold_of_row, seconds=0.0,
    )
    result.baselines = run_baselines(dataset, splits, baselines, config.seed,
                                     same_features_as=config if same_feature_baselines else None)
    result.seconds = time.perf_counter() - started
    return result
