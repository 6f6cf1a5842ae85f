"""k-fold cross-validation: identical folds, in-fold fitting, baselines side by side."""

from __future__ import annotations

import numpy as np
import pytest

from hqray.data import load_dataset
from hqray.errors import ConfigError, DataError
from hqray.models import make_config
from hqray.training import cross_validate, fold_splits, run_baselines


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


def test_baselines_see_every_standardised_feature_not_the_models_pca():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    data = load_dataset("breast_cancer")
    result = cross_validate(data, make_config("g6", epochs=1), folds=3, seed=0, baselines=("logreg",))
    assert set(result.baselines) == {"logreg"}
    assert result.baselines["logreg"]["features"] == "all 30 features, standardised in-fold"
    # The same folds, scored by hand on all 30 standardised features.
    expected = []
    for train_index, test_index in fold_splits(data.labels, 3, 0):
        scaler = StandardScaler().fit(data.features[train_index])
        model = LogisticRegression(max_iter=5000, random_state=0).fit(
            scaler.transform(data.features[train_index]), data.labels[train_index])
        expected.append(model.score(scaler.transform(data.features[test_index]), data.labels[test_index]))
    assert [fold["accuracy"] for fold in result.baselines["logreg"]["folds"]] == pytest.approx(expected)
    assert result.to_json()["baselines"]["logreg"]["features"].startswith("all 30 features")


def test_same_feature_baselines_are_labelled_and_see_the_models_components():
    data = load_dataset("breast_cancer")
    result = cross_validate(data, make_config("g6", epochs=1), folds=3, seed=0, baselines=("logreg",),
                            same_feature_baselines=True)
    assert set(result.baselines) == {"logreg", "logreg (same features)"}
    same = result.baselines["logreg (same features)"]
    assert same["features"] == "the model's 4 PCA components, fitted in-fold"
    # Four components lose information that thirty features hold: the scores differ.
    assert same["folds"] != result.baselines["logreg"]["folds"]
    # Where the model keeps every feature, there is no reduced variant to show.
    iris = cross_validate(load_dataset("iris"), make_config("g6", epochs=1), folds=2, baselines=("logreg",),
                          same_feature_baselines=True)
    assert set(iris.baselines) == {"logreg"}


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


def test_lockstep_folds_resume_from_a_saved_state_exactly(tmp_path):
    """Stopping after 2 epochs, saving through torch.save and loading with weights_only=True,
    then continuing gives the same scores as training straight through."""
    import torch

    from hqray.training import LockstepFolds

    data = load_dataset("iris", task="multiclass")
    config = make_config("g6", epochs=5, patience=100)
    splits = fold_splits(data.labels, 3, seed=1)
    straight = LockstepFolds(data, config, splits)
    while not straight.stopped:
        straight.step()
    expected = straight.finish()

    first = LockstepFolds(data, config, splits)
    first.step(), first.step()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = LockstepFolds(data, config, splits)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert resumed.epoch == 2
    records = []
    while not resumed.stopped:
        records.append(resumed.step())
    assert [r[0]["epoch"] for r in records] == [3, 4, 5]
    scores = resumed.finish()
    assert scores.folds == expected.folds
    np.testing.assert_array_equal(scores.probabilities, expected.probabilities)


def test_lockstep_folds_report_test_fold_scores_every_epoch():
    from hqray.training import LockstepFolds

    data = load_dataset("breast_cancer")
    folds = LockstepFolds(data, make_config("g0", epochs=2), fold_splits(data.labels, 2, 0), test_metric="roc_auc")
    records = folds.step()
    assert len(records) == 2
    assert {"test_loss", "test_accuracy", "test_balanced_accuracy", "test_roc_auc", "val_loss"} <= set(records[0])
    assert 0.5 < records[0]["test_roc_auc"] <= 1.0
    with pytest.raises(ConfigError, match="saved state has 1 folds, this run has 2"):
        folds.load_state_dict({"epoch": 1, "folds": [folds.trainers[0].state_dict()]})


def test_the_benchmark_papers_classical_controls_are_baselines():
    data = load_dataset("iris")  # setosa vs versicolor: linearly separable
    result = run_baselines(data, fold_splits(data.labels, 2, 0), ["mlp", "perceptron"], 0)
    for name in ("mlp", "perceptron"):
        assert result[name]["mean"]["accuracy"] > 0.95, (name, result[name]["mean"])
        assert 0.0 <= result[name]["mean"]["roc_auc"] <= 1.0  # probabilities: the perceptron is calibrated
