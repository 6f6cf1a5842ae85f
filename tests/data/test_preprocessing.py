"""Preprocessing is fitted on training rows only, and round-trips as plain arrays."""

from __future__ import annotations

import numpy as np
import pytest

from hqray.data import FoldPreprocessor, load_dataset
from hqray.errors import DataError, NotFittedError
from hqray.training import fold_splits


class TestInFoldFitting:
    def test_fold_statistics_come_from_training_rows_only(self):
        data = load_dataset("breast_cancer")
        for train, _ in fold_splits(data.labels, 5, seed=0):
            pre = FoldPreprocessor(n_components=4).fit(data.features[train])
            assert np.allclose(pre.mean_, data.features[train].mean(axis=0))
            # A leak (fitting on all rows) would give the whole-data mean instead.
            assert not np.allclose(pre.mean_, data.features.mean(axis=0))

    def test_test_rows_cannot_move_the_fit(self):
        rng = np.random.default_rng(0)
        train = rng.normal(size=(50, 6))
        test = rng.normal(size=(10, 6))
        test_outlier = test.copy()
        test_outlier[0] = 1e6
        a = FoldPreprocessor(n_components=3).fit(train)
        b = FoldPreprocessor(n_components=3).fit(train)
        assert np.allclose(a.transform(test[1:]), b.transform(test_outlier[1:]))

    def test_pca_only_when_wider_than_target(self):
        rng = np.random.default_rng(0)
        assert FoldPreprocessor(4).fit(rng.normal(size=(30, 10))).n_features_out_ == 4
        assert FoldPreprocessor(4).fit(rng.normal(size=(30, 3))).n_features_out_ == 3

    def test_whitened_training_projection(self):
        rng = np.random.default_rng(0)
        features = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
        projected = FoldPreprocessor(3).fit_transform(features)
        assert np.allclose(projected.std(axis=0, ddof=1), 1.0, atol=1e-6)

    def test_smote_balances_training_rows(self):
        rng = np.random.default_rng(0)
        features = rng.normal(size=(60, 3))
        labels = np.array([0] * 50 + [1] * 10)
        pre = FoldPreprocessor(smote=True).fit(features)
        resampled, resampled_labels = pre.resample(pre.transform(features), labels)
        assert np.bincount(resampled_labels).tolist() == [50, 50]


class TestValidation:
    def test_width_mismatch_names_both_counts(self):
        pre = FoldPreprocessor().fit(np.zeros((5, 4)) + np.arange(4))
        with pytest.raises(DataError, match="has 7 features, but .* is expecting 4 features as input"):
            pre.transform(np.zeros((2, 7)))

    def test_nan_rows_are_named(self):
        with pytest.raises(DataError, match=r"NaN/inf values in 1 rows \(first rows: \[1\]\)"):
            FoldPreprocessor().fit(np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]]))

    def test_not_fitted(self):
        with pytest.raises(NotFittedError):
            FoldPreprocessor().transform(np.zeros((1, 2)))

    def test_state_round_trip(self):
        rng = np.random.default_rng(0)
        features = rng.normal(size=(40, 6))
        pre = FoldPreprocessor(3).fit(features)
        restored = FoldPreprocessor.from_state_dict(pre.state_dict())
        assert np.array_equal(pre.transform(features), restored.transform(features))
