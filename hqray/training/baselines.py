"""Classical scikit-learn baselines, registered by name, run on the same folds."""

from __future__ import annotations

from collections.abc import Callable

from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Perceptron
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from hqray.errors import ConfigError

__all__ = ["BASELINES", "make_baseline", "register_baseline"]

BASELINES: dict[str, Callable[[int], ClassifierMixin]] = {}


def register_baseline(name: str, factory: Callable[[int], ClassifierMixin]) -> None:
    """Registers ``factory(seed) -> estimator`` under ``name``."""
    BASELINES[name] = factory


def make_baseline(name: str, seed: int = 0) -> ClassifierMixin:
    """A fresh estimator of the baseline ``name``."""
    try:
        return BASELINES[name](seed)
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}") from None


register_baseline("logreg", lambda seed: LogisticRegression(max_iter=5000, random_state=seed))
# SVC(probability=True) is deprecated (scikit-learn 1.9); this is its documented replacement.
register_baseline("svc", lambda seed: CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed),
                                                             ensemble=False))
# The benchmark paper's classical controls (Bowles, Ahmed & Schuld 2024) at scikit-learn's
# defaults; a perceptron has no probabilities, so it is calibrated like the SVC.
register_baseline("mlp", lambda seed: MLPClassifier(max_iter=2000, random_state=seed))
register_baseline("perceptron", lambda seed: CalibratedClassifierCV(Perceptron(random_state=seed), ensemble=False))
register_baseline("random_forest",
                  lambda seed: RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1))
