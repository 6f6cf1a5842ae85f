"""k-fold cross-validation: identical folds, in-fold fitting, baselines side by side."""

from __future__ import annotations

import numpy as np
import pytest

from hqray.data import load_dataset
from hqray.errors import ConfigError, DataError
from hqray.models import make_config
from hqray.training import cross_validate, fold_splits


def test_folds_are_identical_for_a_seed_and_stratified():
    labels = load_dataset("iris", task="multiclass").labels
    first, second = fold_splits(labels, 5, seed=0), fold_splits(labels, 5, seed=0)
    for (_, a_test), (_, b_test) in zip(first, second, strict=True):
        assert np.array_equal(a_test, b_test)
        assert np.bincount(labels[a_test]).tolist() == [10, 10, 10]
    other = fold_splits(labels, 5, seed=1)
    assert not np.array_equal(first[0][1], other[0][1])
    assert np.array_equal(np.sort(np.concatenate([test for _, test in first])), np.arange(150))


def test_fewer_rows_than_folds_names_the_class():
    labels = np.array([0] * 10 + [1] * 3)
    with pytest.raises(DataError, match=r"class 'rare' has 3 rows, fewer than folds=5"):
        fold_splits(labels, 5, seed=0, class_names=["common", "rare"])


def test_folds_below_two():
    with pytest.raises(ConfigError, match="folds must be >= 2, got 1"):
        fold_splits(np.array([0, 1, 0, 1]), 1, seed=0)


def test_cross_validate_reports_folds_means_and_baselines():
    data = load_dataset("iris", task="multiclass")
    result = cross_validate(data, make_config("g6", epochs=8), folds=3, seed=0)
    assert len(result.folds) == 3
    assert set(result.mean) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1",
                                "roc_auc", "pr_auc"}
    assert np.isclose(result.mean["accuracy"], np.mean([f["accuracy"] for f in result.folds]))
    assert set(result.baselines) == {"logreg", "svc", "random_forest"}
    assert result.baselines["logreg"]["mean"]["accuracy"] > 0.85
    # Out-of-fold probabilities cover every row exactly once.
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.bincount(result.fold_of_row).tolist() == [50, 50, 50]
    assert sum(np.array(m).sum() for m in result.confusion_matrices) == 150


def test_on_epoch_sees_every_fold_in_lock_step():
    seen = []
    cross_validate(load_dataset("iris"), make_config("g6", epochs=3, patience=10), folds=2,
                   baselines=(), on_epoch=lambda epoch, records: seen.append((epoch, len(records))))
    assert seen == [(1, 2), (2, 2), (3, 2)]


def test_medical_generation_reports_sensitivity_and_specificity():
    result = cross_validate(load_dataset("breast_cancer"), make_config("g9", epochs=4), folds=3, baselines=())
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert 0.0 <= result.mean[key] <= 1.0


def test_smote_inside_folds_leaves_test_folds_untouched():
    data = load_dataset("breast_cancer")
    result = cross_validate(data, make_config("g8", epochs=2), folds=3, baselines=("logreg",))
    assert sum(np.array(m).sum() for m in result.confusion_matrices) == data.n_samples
