"""Quantum kitchen sinks: the random circuits' features are exact, seeded, and checkpoint without pickle."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest

from hqray.data import load_dataset
from hqray.errors import NotFittedError
from hqray.training import QuantumKitchenSinks, load_model, save_checkpoint


@pytest.fixture(scope="module")
def iris():
    data = load_dataset("iris", task="multiclass")
    return data.features, np.asarray(data.class_names)[data.labels]


def test_each_episode_is_the_circuit_pennylane_runs(iris):
    features, labels = iris
    model = QuantumKitchenSinks(n_qubits=3, n_episodes=4, scale=0.7, seed=5).fit(features, labels)
    ours = model._quantum_features(features[:2]).reshape(2, 4, 3)
    scaled = model.preprocessor_.transform(features[:2])

    @qml.qnode(qml.device("default.qubit", wires=3))
    def circuit(angles):
        for wire in range(3):
            qml.RX(angles[wire], wires=wire)
        qml.CNOT(wires=[0, 1])
        qml.CNOT(wires=[1, 2])
        return [qml.expval(qml.PauliZ(w)) for w in range(3)]

    for row in range(2):
        for episode in range(4):
            angles = model.omega_[episode] @ scaled[row] + model.beta_[episode]
            np.testing.assert_allclose(ours[row, episode], np.array(circuit(angles)), atol=1e-10)


def test_the_seed_draws_the_sinks_and_the_model_learns(iris):
    features, labels = iris
    a = QuantumKitchenSinks(n_episodes=50, seed=1).fit(features, labels)
    b = QuantumKitchenSinks(n_episodes=50, seed=1).fit(features, labels)
    np.testing.assert_array_equal(a.omega_, b.omega_)
    np.testing.assert_allclose(a.predict_proba(features), b.predict_proba(features))
    assert a.score(features, labels) > 0.85  # 3-class iris from 200 random quantum features
    with pytest.raises(NotFittedError):
        QuantumKitchenSinks().predict(features)


def test_a_checkpoint_restores_the_same_probabilities(iris, tmp_path):
    features, labels = iris
    model = QuantumKitchenSinks(n_qubits=2, n_episodes=30, C=3.0, seed=2).fit(features, labels)
    path = save_checkpoint(model, tmp_path / "qks", family="quantum_kitchen_sinks")
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features), atol=1e-12)
    assert list(loaded.classes_) == list(model.classes_) and loaded.metadata_["config"]["n_episodes"] == 30


def test_features_in_bounded_chunks_equal_one_call(iris, monkeypatch):
    # Rows x episodes circuits run in chunks of bounded state memory (2000 episodes of 10
    # qubits at once ran a 24 GiB machine out of memory); chunking must not change a value
    # beyond rounding: a batch of another size may take another SIMD path (on an AMD EPYC,
    # 128 of 1,800 values differed in the last bit), while a misplaced chunk would differ by O(1).
    from hqray.training import kitchen_sinks

    features, labels = iris
    model = QuantumKitchenSinks(n_qubits=3, n_episodes=4, seed=3).fit(features, labels)
    whole = model._quantum_features(features)
    monkeypatch.setattr(kitchen_sinks, "_STATE_BYTES_PER_CHUNK", 16 * 2**3 * 7)  # 7 circuits per call
    np.testing.assert_allclose(model._quantum_features(features), whole, rtol=0, atol=1e-14)
