"""Quantum kitchen sinks: random quantum features and a linear classifier (model family "quantum_kitchen_sinks")."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from hqray.data.preprocessing import FoldPreprocessor, check_features, check_labels, feature_names_of
from hqray.errors import NotFittedError
from hqray.quantum import CircuitSpec
from hqray.quantum.engine import execute

__all__ = ["QuantumKitchenSinks"]

# Complex128 amplitudes of the circuits one engine call simulates (64 MiB: 4096 rows at 10 qubits).
_STATE_BYTES_PER_CHUNK = 64 * 2**20


class QuantumKitchenSinks(ClassifierMixin, BaseEstimator):
    """Random quantum features (Wilson et al. 2018, "Quantum kitchen sinks"), then logistic regression.

    Each of ``n_episodes`` episodes maps the standardised features linearly to ``n_qubits``
    angles, ``theta = Omega_e x + beta_e`` with Gaussian ``Omega_e`` (standard deviation
    ``scale``) and uniform ``beta_e`` in [0, 2 pi), drawn once from ``seed``; a fixed circuit
    (RX of each angle, then a CNOT chain) turns them into ``<Z>`` on every wire. The
    ``n_episodes x n_qubits`` values are the features of an L2-regularised logistic
    regression (``C``). The original reads single-shot bit strings; hqray reads the exact
    expectations, a deterministic feature map of the same circuits.

    **Example**

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> QuantumKitchenSinks(n_qubits=2, n_episodes=20).fit(X[:100], y[:100]).score(X[:100], y[:100]) > 0.9
    True
    """

    def __init__(self, n_qubits: int = 4, n_episodes: int = 100, scale: float = 1.0, C: float = 1.0, seed: int = 0):
        self.n_qubits = n_qubits
        self.n_episodes = n_episodes
        self.scale = scale
        self.C = C
        self.seed = seed

    def circuit_spec(self) -> CircuitSpec:
        """The fixed circuit every episode runs: RX angles, a CNOT chain, <Z> on every wire."""
        return CircuitSpec(n_qubits=self.n_qubits, n_layers=1, embedding="angle", embedding_rotation="X",
                           ansatz="ry_cnot", precision="double")

    def _quantum_features(self, X: np.ndarray) -> np.ndarray:
        scaled = self.preprocessor_.transform(X)
        angles = np.einsum("nd,eqd->neq", scaled, self.omega_) + self.beta_  # (rows, episodes, qubits)
        spec = self.circuit_spec()
        weights = torch.zeros(spec.weight_shape, dtype=torch.float64)  # RY(0): only the CNOT chain acts
        flat = torch.from_numpy(angles.reshape(-1, self.n_qubits))
        # rows x episodes circuits at once would hold rows x episodes state vectors (8 GB for
        # 240 rows x 2000 episodes at 10 qubits): run them in chunks of bounded state memory.
        chunk = max(1, _STATE_BYTES_PER_CHUNK // (16 * 2**self.n_qubits))
        with torch.no_grad():
            values = torch.cat([execute(spec, flat[start:start + chunk], weights)
                                for start in range(0, flat.shape[0], chunk)])
        return values.numpy().reshape(X.shape[0], -1)

    def fit(self, X: Any, y: Any) -> QuantumKitchenSinks:
        features = check_features(X, what="X")
        self.classes_, encoded = check_labels(y, features.shape[0])
        self.n_features_in_ = features.shape[1]
        self.feature_names_ = feature_names_of(X, features.shape[1])
        self.preprocessor_ = FoldPreprocessor(n_components=None, seed=self.seed).fit(features)
        rng = np.random.default_rng(self.seed)
        self.omega_ = rng.normal(0.0, self.scale, size=(self.n_episodes, self.n_qubits, features.shape[1]))
        self.beta_ = rng.uniform(0.0, 2 * math.pi, size=(self.n_episodes, self.n_qubits))
        self.linear_ = LogisticRegression(C=self.C, max_iter=5000, random_state=self.seed)
        self.linear_.fit(self._quantum_features(features), encoded)
        return self

    def _check(self, X: Any) -> np.ndarray:
        if not hasattr(self, "linear_"):
            raise NotFittedError("this QuantumKitchenSinks is not fitted yet; call fit first")
        return check_features(X, self.n_features_in_, what="X")

    def predict_proba(self, X: Any) -> np.ndarray:
        features = self._quantum_features(self._check(X))  # checks that the model is fitted first
        return self.linear_.predict_proba(features)

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_from_proba(self.predict_proba(X))

    def predict_from_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """The class of each row of ``predict_proba``'s output."""
        return self.classes_[np.asarray(probabilities).argmax(axis=1)]

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """The random maps and the linear model's coefficients (arrays only)."""
        if not hasattr(self, "linear_"):
            raise NotFittedError("this QuantumKitchenSinks is not fitted yet; call fit first")
        return {"omega": self.omega_, "beta": self.beta_, "coef": self.linear_.coef_,
                "intercept": self.linear_.intercept_, "linear_classes": self.linear_.classes_}

    def restore_state(self, preprocessor: FoldPreprocessor, state: dict[str, np.ndarray], classes: np.ndarray,
                      feature_names: list[str]) -> QuantumKitchenSinks:
        """Fitted again from :meth:`checkpoint_state` (no pickle, no refit)."""
        self.classes_, self.feature_names_ = np.asarray(classes), list(feature_names)
        self.preprocessor_, self.n_features_in_ = preprocessor, preprocessor.n_features_in_
        self.omega_, self.beta_ = state["omega"], state["beta"]
        if self.omega_.shape != (self.n_episodes, self.n_qubits, self.n_features_in_):
            raise ValueError(f"random maps of shape {self.omega_.shape}, expected "
                             f"{(self.n_episodes, self.n_qubits, self.n_features_in_)}")
        self.linear_ = LogisticRegression(C=self.C)
        self.linear_.coef_, self.linear_.intercept_ = state["coef"], state["intercept"]
        self.linear_.classes_ = state["linear_classes"]
        return self
