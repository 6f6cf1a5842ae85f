"""Checkpoints restore identical probabilities and never unpickle."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from hqray.data import load_dataset
from hqray.errors import CheckpointError
from hqray.training import HybridClassifier, load_model, save_checkpoint


@pytest.fixture(scope="module")
def breast_cancer():
    return load_dataset("breast_cancer")


@pytest.mark.parametrize("generation", ["g0", "g2", "g4", "g6", "g9"])
def test_round_trip_gives_identical_probabilities(tmp_path, breast_cancer, generation):
    names = np.asarray(breast_cancer.class_names)[breast_cancer.labels]
    clf = HybridClassifier(generation, epochs=2).fit(breast_cancer.features, names,
                                                    list(breast_cancer.feature_names))
    save_checkpoint(clf, tmp_path / "ckpt", metrics={"roc_auc": 0.9})
    restored = load_model(tmp_path / "ckpt")
    assert np.array_equal(restored.predict_proba(breast_cancer.features), clf.predict_proba(breast_cancer.features))
    assert list(restored.classes_) == ["benign", "malignant"]
    assert restored.feature_names_ == list(breast_cancer.feature_names)
    assert restored.threshold_ == clf.threshold_


def test_a_registered_circuit_round_trips_as_names_and_options(tmp_path):
    data = load_dataset("iris")
    circuit = {"embedding": "iqp", "embedding_options": {"n_repeats": 2}, "ansatz": "hardware_efficient",
               "ansatz_options": {"entangler": "linear"}}
    clf = HybridClassifier("g6", epochs=10, options=circuit).fit(data.features, data.labels)
    save_checkpoint(clf, tmp_path / "ckpt")
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert {k: metadata["circuit_spec"][k] for k in circuit} == circuit  # the circuit as data, no code
    restored = load_model(tmp_path / "ckpt")
    assert restored.config_.ansatz == "hardware_efficient"
    assert np.array_equal(restored.predict_proba(data.features), clf.predict_proba(data.features))
    assert (clf.predict(data.features) == data.labels).mean() > 0.6  # it learned through the compiler


def test_files_load_without_pickle(tmp_path, breast_cancer):
    clf = HybridClassifier("g6", epochs=1).fit(breast_cancer.features, breast_cancer.labels)
    save_checkpoint(clf, tmp_path)
    torch.load(tmp_path / "weights.pt", weights_only=True)
    np.load(tmp_path / "preprocessing.npz", allow_pickle=False)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["circuit_spec"]["n_qubits"] == 4
    assert {"torch", "pennylane", "hqray"} <= set(metadata["versions"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_weights_file_that_would_run_code_is_refused(tmp_path, breast_cancer):
    clf = HybridClassifier("g6", epochs=1).fit(breast_cancer.features, breast_cancer.labels)
    save_checkpoint(clf, tmp_path)

    marker = tmp_path.parent / f"{tmp_path.name}-pwned"

    class Exploit:  # unpickling it would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "weights.pt").write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(CheckpointError, match="could not be read"):
        load_model(tmp_path)
    assert not marker.exists(), "the hostile payload ran"
    # The check can fail: plain pickle does run it.
    pickle.loads((tmp_path / "weights.pt").read_bytes())
    assert marker.exists()


def test_missing_files(tmp_path):
    (tmp_path / "metadata.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"lacks \['weights.pt', 'preprocessing.npz'\]"):
        load_model(tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is not a directory"):
        load_model(tmp_path / "nothing")


def test_foreign_format(tmp_path, breast_cancer):
    clf = HybridClassifier("g6", epochs=1).fit(breast_cancer.features, breast_cancer.labels)
    save_checkpoint(clf, tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["format"] = "something-else"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="format is 'something-else'"):
        load_model(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path, breast_cancer):
    clf = HybridClassifier("g6", epochs=1).fit(breast_cancer.features, breast_cancer.labels)
    save_checkpoint(clf, tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["config"]["n_layers"] = 5
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="weights do not fit the config"):
        load_model(tmp_path)
