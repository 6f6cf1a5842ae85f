"""HybridClassifier behaves like a scikit-learn estimator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from hqray.errors import ConfigError, DataError, NotFittedError
from hqray.training import HybridClassifier

FEATURES, LABELS = load_iris(return_X_y=True)


def test_fit_returns_self_and_sets_learned_attributes():
    clf = HybridClassifier("g6", epochs=3)
    assert clf.fit(FEATURES[:100], LABELS[:100]) is clf
    assert list(clf.classes_) == [0, 1]
    assert clf.n_features_in_ == 4 and clf.best_epoch_ >= 0


def test_clone_and_params():
    clf = HybridClassifier("g2", epochs=4, options={"lora_rank": 3})
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert copy.resolved_config().lora_rank == 3


def test_works_inside_cross_val_score():
    scores = cross_val_score(HybridClassifier("g6", epochs=15), FEATURES[:100], LABELS[:100], cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.9


def test_string_labels_and_probabilities():
    names = np.array(["setosa", "versicolor", "virginica"])[LABELS]
    clf = HybridClassifier("g6", epochs=3).fit(FEATURES, names)
    probabilities = clf.predict_proba(FEATURES[:5])
    assert probabilities.shape == (5, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert set(clf.predict(FEATURES)) <= set(names)


def test_fitted_estimator_pickles_for_ray_and_joblib():
    clf = HybridClassifier("g6", epochs=2).fit(FEATURES[:100], LABELS[:100])
    restored = pickle.loads(pickle.dumps(clf))
    assert np.allclose(restored.predict_proba(FEATURES[:10]), clf.predict_proba(FEATURES[:10]))


def test_passes_scikit_learns_estimator_checks():
    # Every check, at the generation's default training length; the one declared failure is
    # listed with its reason on the class (float32 rounding across batch sizes).
    results = check_estimator(HybridClassifier("g6"),
                              expected_failed_checks=HybridClassifier.EXPECTED_FAILED_CHECKS, on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:300] for r in results if r["status"] == "failed"}
    assert failed == {}
    assert {r["check_name"] for r in results if r["status"] == "xfail"} <= set(HybridClassifier.EXPECTED_FAILED_CHECKS)
    assert len([r for r in results if r["status"] == "passed"]) >= 45


def test_feature_names_in_after_fitting_a_dataframe():
    import pandas as pd

    frame = pd.DataFrame(FEATURES[:100], columns=["sl", "sw", "pl", "pw"])
    clf = HybridClassifier("g6", epochs=1).fit(frame, LABELS[:100])
    assert clf.feature_names_in_.tolist() == ["sl", "sw", "pl", "pw"]
    with pytest.raises(DataError, match=r"X has columns \['pw', 'pl', 'sw', 'sl'\], but this model was fitted on"):
        clf.predict(frame[["pw", "pl", "sw", "sl"]])
    assert not hasattr(HybridClassifier("g6", epochs=1).fit(FEATURES[:100], LABELS[:100]), "feature_names_in_")


class TestErrors:
    def test_not_fitted(self):
        import sklearn.exceptions

        with pytest.raises(NotFittedError, match="not fitted yet") as caught:
            HybridClassifier().predict(FEATURES)
        assert isinstance(caught.value, sklearn.exceptions.NotFittedError)

    @pytest.mark.parametrize(("features", "error", "message"), [
        (FEATURES[:100] + 1j, DataError, "Complex data not supported"),
        (np.array([[{"a": 1}, 2.0, 3.0, 4.0]] * 100, dtype=object), TypeError, "must be numeric"),
        (np.array([["x", 2.0, 3.0, 4.0]] * 100, dtype=object), DataError, "must be numeric"),
    ])
    def test_complex_and_object_inputs_are_refused_by_name(self, features, error, message):
        with pytest.raises(error, match=message):
            HybridClassifier("g6", epochs=1).fit(features, LABELS[:100])

    def test_sparse_input_is_refused_by_name(self):
        from scipy import sparse

        with pytest.raises(TypeError, match="sparse input is not supported"):
            HybridClassifier("g6", epochs=1).fit(sparse.csr_matrix(FEATURES[:100]), LABELS[:100])

    def test_continuous_target_is_an_unknown_label_type(self):
        with pytest.raises(DataError, match="Unknown label type: continuous"):
            HybridClassifier("g6", epochs=1).fit(FEATURES[:100], FEATURES[:100, 0])

    def test_width_mismatch(self):
        clf = HybridClassifier("g6", epochs=1).fit(FEATURES[:100], LABELS[:100])
        with pytest.raises(DataError, match="has 3 features, but .* is expecting 4 features as input"):
            clf.predict(FEATURES[:5, :3])

    def test_nan(self):
        bad = FEATURES[:100].copy()
        bad[7, 2] = np.nan
        with pytest.raises(DataError, match=r"first rows: \[7\]"):
            HybridClassifier("g6", epochs=1).fit(bad, LABELS[:100])

    def test_single_class(self):
        with pytest.raises(DataError, match="y has 1 class"):
            HybridClassifier("g6").fit(FEATURES[:10], LABELS[:10])

    def test_label_count_mismatch(self):
        with pytest.raises(DataError, match="expected 100 labels"):
            HybridClassifier("g6").fit(FEATURES[:100], LABELS[:90])

    def test_option_given_twice(self):
        with pytest.raises(ConfigError, match=r"\['epochs'\] given both"):
            HybridClassifier("g6", epochs=2, options={"epochs": 3}).fit(FEATURES[:100], LABELS[:100])
