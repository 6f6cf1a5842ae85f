"""QuantumKernelSVC is a scikit-learn classifier on a quantum kernel."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from hqray.data import load_dataset
from hqray.errors import CircuitError, DataError, NotFittedError
from hqray.training import QuantumKernelSVC, fold_splits


def test_breast_cancer_next_to_rbf_svc_on_the_same_folds():
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    data = load_dataset("breast_cancer")
    splits = fold_splits(data.labels, 5, seed=0)
    quantum = cross_val_score(QuantumKernelSVC(n_qubits=4), data.features, data.labels, cv=splits)
    classical = cross_val_score(make_pipeline(StandardScaler(), PCA(4), SVC()), data.features, data.labels, cv=splits)
    assert quantum.mean() > 0.9 and classical.mean() > 0.9


def test_decision_function_probabilities_and_clone():
    data = load_dataset("iris", task="multiclass")
    model = QuantumKernelSVC(n_qubits=2, n_layers=1).fit(data.features, data.labels)
    assert model.decision_function(data.features[:5]).shape == (5, 3)
    probabilities = model.predict_proba(data.features[:5])
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert clone(model).get_params() == model.get_params()
    assert model.score(data.features, data.labels) > 0.8


def test_any_registered_embedding_is_a_feature_map():
    data = load_dataset("iris")
    model = QuantumKernelSVC(n_qubits=2, n_layers=1, embedding="iqp", ansatz="hardware_efficient", reupload=False)
    model.fit(data.features, data.labels)
    assert model.kernel_.spec.embedding == "iqp" and model.score(data.features, data.labels) > 0.9
    with pytest.raises(CircuitError, match="unknown circuit 'zz'"):
        QuantumKernelSVC(embedding="zz").fit(data.features, data.labels)


def test_errors():
    data = load_dataset("iris")
    with pytest.raises(NotFittedError):
        QuantumKernelSVC().predict(data.features)
    model = QuantumKernelSVC(n_qubits=2, n_layers=1).fit(data.features, data.labels)
    with pytest.raises(DataError, match="has 3 features, but .* is expecting 4 features as input"):
        model.predict(data.features[:, :3])
    with pytest.raises(CircuitError, match="unknown kernel executor 'gpu-farm'"):
        QuantumKernelSVC(executor="gpu-farm").fit(data.features, data.labels)


def test_scaled_bandwidth_is_fitted_to_the_training_states_and_survives_a_checkpoint(tmp_path):
    from hqray.training import load_model, save_checkpoint

    data = load_dataset("breast_cancer")
    model = QuantumKernelSVC(n_qubits=6, n_layers=1, kernel="projected", bandwidth="scale", gamma=0.5)
    model.fit(data.features, data.labels)
    # The paper's default bandwidth: 1 / (n_qubits * var) of the Bloch components, in
    # hqray's exp(-gamma * |r_a - r_b|^2 / 2) convention, times gamma.
    expected = 0.5 * 2.0 / (6 * np.var(model.train_states_))
    assert model.kernel_.gamma == pytest.approx(expected)
    rows = model.kernel_.states(model._angles(data.features[:3]))  # (3, 3 * 6) Bloch components
    gram = model.kernel_.gram_from_states(rows)
    distances = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(gram, np.exp(-expected * distances / 2), atol=1e-12)
    loaded = load_model(save_checkpoint(model, tmp_path / "pqk", family="projected_kernel"))
    assert loaded.kernel_.gamma == pytest.approx(expected)
    np.testing.assert_allclose(loaded.predict_proba(data.features[:20]), model.predict_proba(data.features[:20]))
    with pytest.raises(ValueError, match="bandwidth must be 'fixed' or 'scale', got 'auto'"):
        QuantumKernelSVC(kernel="projected", bandwidth="auto").fit(data.features, data.labels)
