"""Checkpoints restore identical probabilities and never unpickle."""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from hqray.data import load_dataset
from hqray.errors import CheckpointError
from hqray.training import HybridClassifier, load_model, save_checkpoint
from tests.user_circuits import LADDER_MODULE


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
    # Loaded for scoring only (no scikit-learn): the same predictions; it saves as it loaded.
    scorer = load_model(tmp_path / "ckpt", scoring=True)
    assert type(scorer).__name__ == "HybridPredictor" and scorer.threshold_ == clf.threshold_
    assert np.array_equal(scorer.predict_proba(breast_cancer.features), clf.predict_proba(breast_cancer.features))
    assert np.array_equal(scorer.predict(breast_cancer.features), clf.predict(breast_cancer.features))
    save_checkpoint(scorer, tmp_path / "again")
    assert np.array_equal(load_model(tmp_path / "again").predict_proba(breast_cancer.features),
                          clf.predict_proba(breast_cancer.features))


def test_a_registered_circuit_round_trips_as_names_and_options(tmp_path):
    data = load_dataset("iris")
    circuit = {"embedding": "iqp", "embedding_options": {"n_repeats": 2}, "ansatz": "hardware_efficient",
               "ansatz_options": {"entangler": "linear"}}
    clf = HybridClassifier("g6", epochs=10, options={"circuit": circuit}).fit(data.features, data.labels)
    save_checkpoint(clf, tmp_path / "ckpt")
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert {k: metadata["circuit_spec"][k] for k in circuit} == circuit  # the circuit as data, no code
    restored = load_model(tmp_path / "ckpt")
    assert restored.config_.circuit.model_dump() == {**circuit, "reupload": False}
    assert np.array_equal(restored.predict_proba(data.features), clf.predict_proba(data.features))
    assert (clf.predict(data.features) == data.labels).mean() > 0.6  # it learned through the compiler


TRAIN = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import hqray
data = hqray.load_dataset("iris")
clf = hqray.HybridClassifier("g6", epochs=3, options={{"circuit": "t_user_circuits:ladder"}})
clf.fit(data.features, data.labels)
hqray.save_checkpoint(clf, {root!r} + "/ckpt")
np.save({root!r} + "/probabilities.npy", clf.predict_proba(data.features))
"""

LOAD = """
import sys, numpy as np
sys.path.insert(0, {root!r})
import hqray
try:
    hqray.load_model({root!r} + "/ckpt")
except hqray.CheckpointError as error:
    print("REFUSED:", error)
print("IMPORTED" if "t_user_circuits" in sys.modules else "NOT IMPORTED")
model = hqray.load_model({root!r} + "/ckpt", trust_code=True)
data = hqray.load_dataset("iris")
assert np.array_equal(model.predict_proba(data.features), np.load({root!r} + "/probabilities.npy"))
print("LOADED WITH TRUST")
"""


def test_a_circuit_from_a_users_module_loads_only_with_trust(tmp_path):
    (tmp_path / "t_user_circuits.py").write_text(LADDER_MODULE)
    run = [sys.executable, "-c"]
    trained = subprocess.run([*run, TRAIN.format(root=str(tmp_path))], capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    metadata = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert metadata["circuit_spec"]["ansatz"] == "t_user_circuits:ladder"  # a name, not code
    loaded = subprocess.run([*run, LOAD.format(root=str(tmp_path))], capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert "REFUSED:" in loaded.stdout and "trust_code=True" in loaded.stdout and "t_user_circuits" in loaded.stdout
    assert "NOT IMPORTED" in loaded.stdout  # refused before any of the user's code ran
    assert "LOADED WITH TRUST" in loaded.stdout


def test_files_load_without_pickle(tmp_path, breast_cancer):
    clf = HybridClassifier("g6", epochs=1).fit(breast_cancer.features, breast_cancer.labels)
    save_checkpoint(clf, tmp_path)
    torch.load(tmp_path / "weights.pt", weights_only=True)
    np.load(tmp_path / "preprocessing.npz", allow_pickle=False)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["circuit_spec"]["n_qubits"] == 4
    assert {"torch", "pennylane", "hqray"} <= set(metadata["versions"])


SCORE = """
import sys, numpy as np
import hqray
model = hqray.load_model({path!r}, scoring=True)
model.predict_proba(np.zeros((3, {width})))
print(sorted(name for name in ("pennylane", "jax", "matplotlib", "sklearn", "scipy") if name in sys.modules))
"""


@pytest.mark.parametrize("circuit", [None, {"embedding": "iqp", "ansatz": "qcnn"}])
def test_scoring_imports_pennylane_only_for_circuits_that_need_its_compiler(tmp_path, circuit):
    """A fresh scoring actor or Serve replica (``load_model(..., scoring=True)``) never imports
    scikit-learn, and PennyLane (with JAX: seconds) only when its circuit goes through the
    tape compiler; g6's own runs on a hand-written strategy."""
    data = load_dataset("iris")
    options = {"circuit": circuit} if circuit else {}
    save_checkpoint(HybridClassifier("g6", epochs=1, options=options).fit(data.features, data.labels), tmp_path)
    scored = subprocess.run([sys.executable, "-c", SCORE.format(path=str(tmp_path), width=data.features.shape[1])],
                            capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    imported = ast.literal_eval(scored.stdout.strip().splitlines()[-1])
    if circuit is None:
        assert imported == []
    else:  # the compiler's circuits do bring PennyLane (the check can fail), never scikit-learn
        assert "pennylane" in imported and "sklearn" not in imported, imported


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


def test_a_format_1_checkpoint_with_separate_circuit_fields_loads_unchanged(tmp_path):
    """Checkpoints written before HybridConfig held one ``circuit`` keep loading."""
    data = load_dataset("iris")
    clf = HybridClassifier("g1", epochs=3, options={"circuit.embedding_options": {"rotation": "X"}})
    clf.fit(data.features, data.labels)
    save_checkpoint(clf, tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "metadata.json"
    metadata = json.loads(path.read_text())
    config = metadata["config"]
    config.pop("circuit")
    # What version 1 wrote: the circuit's parts as separate fields.
    config.update(embedding="angle", embedding_options={}, ansatz="ry_cnot", ansatz_options={},
                  embedding_rotation="X", reupload=False)
    path.write_text(json.dumps({**metadata, "format_version": 1}))
    restored = load_model(tmp_path / "ckpt")
    assert restored.config_.circuit == clf.config_.circuit
    assert np.array_equal(restored.predict_proba(data.features), clf.predict_proba(data.features))


def test_a_kernel_family_round_trips_without_pickle(tmp_path):
    """A kernel family's checkpoint keeps its training rows' states; the restored SVC scores alike."""
    from hqray.training.families import get_family

    data = load_dataset("iris", task="binary")
    names = np.asarray(data.class_names)[data.labels]
    model = get_family("iqp_kernel").build({"n_qubits": 3, "C": 3.0}, seed=2).fit(data.features, names)
    path = save_checkpoint(model, tmp_path / "ckpt", metrics={"note": "t"}, family="iqp_kernel")
    loaded = load_model(path)
    assert type(loaded).__name__ == "QuantumKernelSVC"
    np.testing.assert_allclose(loaded.predict_proba(data.features), model.predict_proba(data.features), atol=1e-12)
    assert list(loaded.predict(data.features)) == list(model.predict(data.features))
    metadata = json.loads((path / "metadata.json").read_text())
    assert (metadata["model"], metadata["generation"], metadata["config"]["embedding"]) == (
        "estimator", "iqp_kernel", "iqp")
    assert metadata["feature_names"] == ["x0", "x1", "x2", "x3"] and metadata["seed"] == 2
    with pytest.raises(CheckpointError, match="could not be read"):  # weights.pt is tensors only
        (path / "weights.pt").write_bytes(pickle.dumps({"train_states": object()}))
        load_model(path)
