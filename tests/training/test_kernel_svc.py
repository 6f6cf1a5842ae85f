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
