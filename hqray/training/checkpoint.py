"""Checkpoints without pickle: weights, JSON metadata and preprocessing arrays.

Layout of a checkpoint directory::

    weights.pt          model state_dict, loaded with torch.load(weights_only=True); for a
                        kernel family, its training rows' feature-map states and labels
    preprocessing.npz   scaler / PCA arrays, loaded with np.load(allow_pickle=False)
    metadata.json       model family ("generation"), config, circuit spec, features, classes,
                        metrics, versions

A checkpoint from elsewhere cannot run code when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hqray.data.preprocessing import FoldPreprocessor
from hqray.errors import CheckpointError, ConfigError, HqrayError
from hqray.models import HybridConfig, HybridNet, circuit_spec
from hqray.training.families import get_family
from hqray.training.predictor import HybridPredictions, HybridPredictor

__all__ = ["save_checkpoint", "load_model", "read_metadata", "checkpoint_files", "checkpoint_id", "FORMAT",
           "FORMAT_VERSION", "checkpoint_config"]

FORMAT = "hqray-checkpoint"
FORMAT_VERSION = 3  # 3: estimator families too ("model"); 2: the config holds one `circuit`; 1 is upgraded
READABLE_VERSIONS = (1, 2, 3)
FILES = ("weights.pt", "preprocessing.npz", "metadata.json")


def _versions() -> dict[str, str]:
    import pennylane
    import sklearn

    from hqray import __version__

    return {"hqray": __version__, "torch": torch.__version__, "pennylane": pennylane.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_checkpoint(classifier: Any, directory: str | Path, metrics: dict[str, Any] | None = None,
                    name: str | None = None, family: str | None = None) -> Path:
    """Writes a fitted classifier to ``directory`` (created if needed); returns the path.

    A :class:`HybridClassifier` records its generation. Any other model is an estimator
    family's (``family`` names it: ``qsvm``, ``iqp_kernel``, ``quantum_kitchen_sinks``, ...)
    and is kept as its family's settings and its ``checkpoint_state()`` arrays.
    """
    directory = Path(directory)
    if not isinstance(classifier, HybridPredictions):  # a HybridClassifier, or one loaded for scoring
        if family is None:
            raise ConfigError(f"save_checkpoint: name the model family of this {type(classifier).__name__} "
                              "(family=...; see hqray families)")
        return _save_estimator(classifier, directory, metrics, name, family)
    classifier._check_fitted()
    directory.mkdir(parents=True, exist_ok=True)
    config = classifier.config_
    torch.save(classifier.model_.state_dict(), directory / "weights.pt")
    np.savez(directory / "preprocessing.npz", **classifier.preprocessor_.state_dict())
    _write_metadata(directory, name, metrics, model="hybrid", generation=config.generation,
                    config=config.model_dump(),
                    circuit_spec=circuit_spec(config).model_dump() if config.use_quantum else None,
                    feature_names=classifier.feature_names_, classes=classifier.classes_,
                    n_features_model=classifier.preprocessor_.n_features_out_, threshold=classifier.threshold_,
                    best_epoch=classifier.best_epoch_)
    return directory


def _save_estimator(model: Any, directory: Path, metrics: dict[str, Any] | None, name: str | None,
                    family: str) -> Path:
    entry = get_family(family)
    if entry.trains_by_epoch:
        raise ConfigError(f"{family!r} is a generation; its checkpoints hold a HybridClassifier")
    state = model.checkpoint_state()  # NotFittedError before fit
    settings = entry.validate({k: getattr(model, k) for k in entry.options.model_fields})
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({key: torch.as_tensor(value) for key, value in state.items()}, directory / "weights.pt")
    np.savez(directory / "preprocessing.npz", **model.preprocessor_.state_dict())
    spec = model.circuit_spec() if hasattr(model, "circuit_spec") else None
    _write_metadata(directory, name, metrics, model="estimator", generation=family, config=settings,
                    seed=int(model.seed), circuit_spec=spec.model_dump() if spec is not None else None,
                    feature_names=model.feature_names_, classes=model.classes_,
                    n_features_model=model.preprocessor_.n_features_out_, threshold=None, best_epoch=None)
    return directory


def _write_metadata(directory: Path, name: str | None, metrics: dict[str, Any] | None, *, classes: np.ndarray,
                    **fields: Any) -> None:
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, **fields,
                "classes": [_jsonable(c) for c in np.asarray(classes).tolist()],
                "metrics": _jsonable(metrics or {}), "versions": _versions(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=2, allow_nan=True))


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The parsed ``metadata.json`` of a checkpoint, after checking that all files exist."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {str(directory)!r} is not a directory")
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {str(directory)!r} lacks {missing}")
    try:
        metadata = json.loads((directory / "metadata.json").read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"checkpoint {str(directory)!r}: metadata.json is not JSON: {error}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(directory)!r}: format is {metadata.get('format')!r}, "
                              f"expected {FORMAT!r}")
    if metadata.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"checkpoint {str(directory)!r}: format_version "
                              f"{metadata.get('format_version')!r} is not supported (expected one of "
                              f"{list(READABLE_VERSIONS)})")
    return _upgraded(metadata)


def _upgraded(metadata: dict[str, Any]) -> dict[str, Any]:
    """Version-1 metadata with its config's separate circuit fields folded into ``circuit``.

    >>> _upgraded({"format_version": 1, "config": {"ansatz": "ry_cnot", "embedding_rotation": "X"}})["config"]
    {'circuit': {'ansatz': 'ry_cnot', 'embedding_options': {'rotation': 'X'}}}
    """
    if metadata.get("format_version") != 1 or not isinstance(metadata.get("config"), dict):
        return metadata
    config = dict(metadata["config"])
    circuit = {key: config.pop(key) for key in ("embedding", "embedding_options", "ansatz", "ansatz_options",
                                                  "reupload") if key in config}
    rotation = config.pop("embedding_rotation", "Y")
    if rotation != "Y" and circuit.get("embedding", "angle") == "angle":
        circuit["embedding_options"] = {**circuit.get("embedding_options", {}), "rotation": rotation}
    return {**metadata, "format_version": FORMAT_VERSION, "config": {**config, "circuit": circuit}}


def checkpoint_files(directory: str | Path) -> dict[str, bytes]:
    """The checkpoint's files as bytes, after :func:`read_metadata`'s checks (to ship to other machines)."""
    read_metadata(directory)
    return {name: (Path(directory) / name).read_bytes() for name in FILES}


def checkpoint_id(files: dict[str, bytes]) -> str:
    """A short content hash of a checkpoint's files: names the exact model behind a prediction.

    >>> checkpoint_id({"weights.pt": b"w", "preprocessing.npz": b"p", "metadata.json": b"{}"})
    '8b3ec13dbf3e494c'
    """
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def checkpoint_config(directory: str | Path, metadata: dict[str, Any],
                      trust_code: bool = False) -> HybridConfig | dict[str, Any]:
    """The checkpoint's validated config (a kernel family's: its settings); a circuit from a
    user's module needs ``trust_code``.

    Raises:
        CheckpointError: the config is invalid, or names a ``"package.module:name"``
            circuit while ``trust_code`` is false (nothing is imported then).
    """
    from hqray.quantum.circuits import circuit_imports_blocked

    refusal = ("loading the checkpoint would import and run that module; pass trust_code=True "
               "(--trust-code on the command line) if you trust it")
    def validated() -> HybridConfig | dict[str, Any]:
        if metadata.get("model", "hybrid") == "estimator":
            return get_family(metadata["generation"]).validate(metadata["config"])
        return HybridConfig(**metadata["config"])

    try:
        if trust_code:
            return validated()
        with circuit_imports_blocked(refusal):
            return validated()
    except (ConfigError, TypeError, KeyError) as error:
        raise CheckpointError(f"checkpoint {str(directory)!r}: invalid config: {error}") from None


def load_model(directory: str | Path, trust_code: bool = False, scoring: bool = False) -> Any:
    """Restores a fitted :class:`HybridClassifier` (or an estimator family's model, such as a
    :class:`~hqray.training.QuantumKernelSVC`) from a checkpoint directory.

    No pickle is involved: weights load with ``weights_only=True`` and arrays with
    ``allow_pickle=False``. The restored model gives the probabilities it gave when saved.
    A checkpoint whose circuit lives in a user's module (``"package.module:name"``) loads
    only with ``trust_code=True``, which imports (runs) that module.

    With ``scoring=True`` a network model comes back as a
    :class:`~hqray.training.predictor.HybridPredictor`: the same predictions, without
    importing scikit-learn (a second less start-up in each Serve replica and scoring actor).
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    config = checkpoint_config(directory, metadata, trust_code)
    try:
        with np.load(directory / "preprocessing.npz", allow_pickle=False) as arrays:
            preprocessor = FoldPreprocessor.from_state_dict({k: arrays[k] for k in arrays.files},
                                                            smote=getattr(config, "smote", False))
        state = torch.load(directory / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # corrupted or foreign files
        raise CheckpointError(f"checkpoint {str(directory)!r} could not be read: {error}") from error
    classes = np.asarray(metadata["classes"])
    if isinstance(config, dict):  # an estimator family's model: its settings, then its arrays
        try:
            model = get_family(metadata["generation"]).build(config, int(metadata.get("seed", 0)))
            model.restore_state(preprocessor, {key: value.numpy() for key, value in state.items()}, classes,
                                metadata["feature_names"])
        except (KeyError, ValueError, AttributeError, HqrayError) as error:
            raise CheckpointError(f"checkpoint {str(directory)!r}: its arrays do not fit the "
                                  f"{metadata.get('generation')!r} settings: {error}") from None
        model.metadata_ = metadata
        return model
    model = HybridNet(config, preprocessor.n_features_out_, classes.size)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {str(directory)!r}: weights do not fit the config: {error}") from None
    if scoring:
        classifier = HybridPredictor()
    else:
        from hqray.training.classifier import HybridClassifier  # scikit-learn's estimator API

        classifier = HybridClassifier.from_config(config)
    classifier.config_ = config
    classifier.model_ = model.eval()
    classifier.preprocessor_ = preprocessor
    classifier.classes_ = classes
    classifier.n_features_in_ = preprocessor.n_features_in_
    classifier.feature_names_ = list(metadata["feature_names"])
    classifier.threshold_ = metadata.get("threshold")
    classifier.best_epoch_ = metadata.get("best_epoch")
    classifier.metadata_ = metadata
    classifier.set_inference_model()
    return classifier
