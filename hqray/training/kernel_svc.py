"""QuantumKernelSVC: a support-vector classifier on a quantum kernel (model family "qsvm")."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC

from hqray.data.preprocessing import FoldPreprocessor, check_features, check_labels, feature_names_of
from hqray.errors import NotFittedError
from hqray.quantum import CircuitSpec
from hqray.quantum.kernels import QuantumKernel, kernel_executor

__all__ = ["QuantumKernelSVC"]


class QuantumKernelSVC(ClassifierMixin, BaseEstimator):
    """SVC with a precomputed quantum kernel; scikit-learn compatible.

    ``fit`` scales the features, reduces them with PCA to what the feature map takes
    (``n_qubits`` for most embeddings; fitted on the rows given to ``fit`` only), maps them
    to angles ``pi/2 * (1 + tanh(x))``, simulates each row's feature-map state once and
    trains an SVC on the Gram matrix. Prediction needs the test-train kernel only.

    Args:
        n_qubits, n_layers, embedding, ansatz, reupload: the feature map (see ``CircuitSpec``;
            any registered embedding and ansatz, ``hqray circuits``); ``reupload=True``
            interleaves the embedding with entangling layers.
        repeats: repetitions of an embedding that repeats (``iqp``'s ``n_repeats``).
        embedding_options, ansatz_options: the circuits' registered options (``None``: defaults),
            e.g. ``ansatz_options={"entangler": "none"}`` for a feature map without entangling gates.
        kernel: ``"fidelity"`` or ``"projected"``; gamma: projected-kernel bandwidth.
        bandwidth: ``"fixed"``: the projected kernel is ``exp(-gamma * d)``; ``"scale"``:
            ``gamma`` multiplies a scale fitted to the training rows, ``2 / (n_qubits *
            var)`` with ``var`` the variance of their one-qubit Bloch-vector components (the
            benchmark paper's default bandwidth, whose ``gamma_factor`` is ``gamma`` here),
            so one ``gamma`` grid suits any width and data.
        C: SVC regularisation. shots: finite-shot kernel estimate (``None``: exact).
        executor: ``"local"`` or ``"pool"`` (tiles on the QuantumPool, needs hqray.cluster).
        pool_tiers: the pool tiers for ``executor="pool"``.
        tile_rows: Gram tile edge (memory bound). seed: shot sampling and PCA.

    ``predict_proba`` returns a softmax of the decision values: monotonic scores for ROC
    and PR curves, not calibrated probabilities.

    **Example**

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> QuantumKernelSVC(n_qubits=2).fit(X[:100], y[:100]).score(X[:100], y[:100]) > 0.9
    True
    """

    def __init__(self, n_qubits: int = 4, n_layers: int = 2, ansatz: str = "strongly_entangling",
                 reupload: bool = True, kernel: Literal["fidelity", "projected"] = "fidelity",
                 gamma: float = 1.0, C: float = 1.0, shots: int | None = None, executor: str = "local",
                 pool_tiers: tuple[str, ...] = ("gpu", "cpu"), tile_rows: int = 2048, seed: int = 0,
                 embedding: str = "angle", repeats: int = 1, bandwidth: Literal["fixed", "scale"] = "fixed",
                 embedding_options: dict | None = None, ansatz_options: dict | None = None):
        self.n_qubits = n_qubits
        self.embedding_options = embedding_options
        self.ansatz_options = ansatz_options
        self.bandwidth = bandwidth
        self.embedding = embedding
        self.repeats = repeats
        self.n_layers = n_layers
        self.ansatz = ansatz
        self.reupload = reupload
        self.kernel = kernel
        self.gamma = gamma
        self.C = C
        self.shots = shots
        self.executor = executor
        self.pool_tiers = pool_tiers
        self.tile_rows = tile_rows
        self.seed = seed

    def circuit_spec(self) -> CircuitSpec:
        """The feature map's circuit (recorded in checkpoints)."""
        return self.quantum_kernel().state_spec()

    def quantum_kernel(self, gamma: float | None = None) -> QuantumKernel:
        """The kernel; ``gamma``: the bandwidth to use (default ``self.gamma``)."""
        if self.bandwidth not in ("fixed", "scale"):
            raise ValueError(f"bandwidth must be 'fixed' or 'scale', got {self.bandwidth!r}")
        spec = CircuitSpec.feature_map(self.n_qubits, self.n_layers, self.embedding, self.embedding_options,
                                       self.repeats, self.ansatz, self.ansatz_options, self.reupload)
        return QuantumKernel(spec, kind=self.kernel, gamma=self.gamma if gamma is None else gamma,
                             shots=self.shots, tile_rows=self.tile_rows, seed=self.seed)

    def _fitted_kernel(self) -> QuantumKernel:
        """The kernel with its bandwidth fitted to ``train_states_`` when ``bandwidth="scale"``."""
        kernel = self.quantum_kernel()
        if self.bandwidth == "fixed" or kernel.kind != "projected":
            return kernel
        variance = float(np.var(self.train_states_))
        if variance <= 0:
            raise ValueError("bandwidth='scale': the training rows' Bloch vectors do not vary; use a fixed gamma")
        return self.quantum_kernel(gamma=self.gamma * 2.0 / (self.n_qubits * variance))

    def _angles(self, features: np.ndarray) -> np.ndarray:
        return (math.pi / 2) * (1.0 + np.tanh(self.preprocessor_.transform(features)))

    def _gram(self, left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
        options = {"tiers": tuple(self.pool_tiers)}
        return kernel_executor(self.executor)(self.kernel_, left, right, options)

    def fit(self, X: Any, y: Any) -> QuantumKernelSVC:
        features = check_features(X, what="X")
        self.classes_, encoded = check_labels(y, features.shape[0])
        kernel_executor(self.executor)  # unknown executors fail before any work
        self.n_features_in_ = features.shape[1]
        self.feature_names_ = feature_names_of(X, features.shape[1])
        self.kernel_ = self.quantum_kernel()
        # PCA (when the data is wider) to what the feature map takes: n_qubits for most, n_qubits - 1
        # for the hamiltonian embedding, 2^n for amplitude.
        width = self.kernel_.spec.n_features
        self.preprocessor_ = FoldPreprocessor(n_components=width, seed=self.seed).fit(features)
        self.train_states_ = self.kernel_.states(self._angles(features))
        self.train_labels_ = encoded
        self.kernel_ = self._fitted_kernel()
        self._fit_svc()
        return self

    def _fit_svc(self) -> None:
        gram = self._gram(self.train_states_, None)
        self.svc_ = SVC(kernel="precomputed", C=self.C, random_state=self.seed).fit(gram, self.train_labels_)

    def checkpoint_state(self) -> dict[str, np.ndarray]:
        """What a checkpoint keeps (arrays only): the training rows' feature-map states and labels."""
        if not hasattr(self, "svc_"):
            raise NotFittedError("this QuantumKernelSVC is not fitted yet; call fit first")
        return {"train_states": self.train_states_, "train_labels": self.train_labels_}

    def restore_state(self, preprocessor: FoldPreprocessor, state: dict[str, np.ndarray], classes: np.ndarray,
                      feature_names: list[str]) -> QuantumKernelSVC:
        """Fitted again from :meth:`checkpoint_state` (no pickle): the SVC is refitted on the
        kept states' Gram matrix, which is what ``fit`` did."""
        self.classes_, self.feature_names_ = np.asarray(classes), list(feature_names)
        self.n_features_in_ = preprocessor.n_features_in_
        self.preprocessor_ = preprocessor
        self.train_states_, self.train_labels_ = state["train_states"], state["train_labels"]
        self.kernel_ = self._fitted_kernel()  # the same scale fit found: it depends on the kept states only
        self._fit_svc()
        return self

    def predict_from_proba(self, probabilities: np.ndarray) -> np.ndarray:
        """The class of each row of ``predict_proba``'s output (the largest score)."""
        return self.classes_[np.asarray(probabilities).argmax(axis=1)]

    def _test_kernel(self, X: Any) -> np.ndarray:
        if not hasattr(self, "svc_"):
            raise NotFittedError("this QuantumKernelSVC is not fitted yet; call fit first")
        features = check_features(X, self.n_features_in_, what="X")
        return self._gram(self.kernel_.states(self._angles(features)), self.train_states_)

    def decision_function(self, X: Any) -> np.ndarray:
        return self.svc_.decision_function(self._test_kernel(X))

    def predict(self, X: Any) -> np.ndarray:
        kernel = self._test_kernel(X)  # checks that the model is fitted
        return self.classes_[self.svc_.predict(kernel)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of decision values (binary: sigmoid): scores for ranking, not calibrated."""
        decision = self.decision_function(X)
        if decision.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-decision))
            return np.stack([1.0 - positive, positive], axis=1)
        shifted = np.exp(decision - decision.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
