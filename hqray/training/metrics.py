"""Classification metrics per fold: the usual ones, and medical ones for binary tasks."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

__all__ = ["classification_metrics", "confusion", "threshold_for_sensitivity", "summarize",
           "SCALAR_METRICS"]

SCALAR_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


def _predictions(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is not None and probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(np.int64)
    return probabilities.argmax(axis=1)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray,
                           threshold: float | None = None) -> dict[str, float]:
    """Accuracy, balanced accuracy, precision, recall, F1, ROC-AUC and PR-AUC.

    Binary tasks score the positive class (index 1); multi-class tasks use macro averages
    and one-vs-rest AUCs. A binary ``threshold`` on ``P(class 1)`` replaces argmax and adds
    sensitivity, specificity, PPV and NPV. An AUC that is undefined (one class only) is NaN.

    **Example**

    >>> import numpy as np
    >>> m = classification_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.6, .4]]))
    >>> round(m["accuracy"], 3), m["roc_auc"]
    (0.667, 1.0)
    """
    labels = np.asarray(labels)
    n_classes = probabilities.shape[1]
    predicted = _predictions(probabilities, threshold)
    binary = n_classes == 2
    average = "binary" if binary else "macro"
    result = {
        "accuracy": sk.accuracy_score(labels, predicted),
        "balanced_accuracy": sk.balanced_accuracy_score(labels, predicted),
        "precision": sk.precision_score(labels, predicted, average=average, zero_division=0,
                                        labels=None if binary else list(range(n_classes))),
        "recall": sk.recall_score(labels, predicted, average=average, zero_division=0,
                                  labels=None if binary else list(range(n_classes))),
        "f1": sk.f1_score(labels, predicted, average=average, zero_division=0,
                          labels=None if binary else list(range(n_classes))),
    }
    present = np.unique(labels)
    if present.size < 2:
        result["roc_auc"] = result["pr_auc"] = math.nan
    elif binary:
        result["roc_auc"] = sk.roc_auc_score(labels, probabilities[:, 1])
        result["pr_auc"] = sk.average_precision_score(labels, probabilities[:, 1])
    else:
        onehot = label_binarize(labels, classes=list(range(n_classes)))
        columns = [c for c in range(n_classes) if onehot[:, c].any() and not onehot[:, c].all()]
        result["roc_auc"] = float(np.mean([sk.roc_auc_score(onehot[:, c], probabilities[:, c]) for c in columns]))
        result["pr_auc"] = float(np.mean([sk.average_precision_score(onehot[:, c], probabilities[:, c])
                                          for c in columns]))
    if binary and threshold is not None:
        tn, fp, fn, tp = sk.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
        result.update({
            "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
            "specificity": tn / (tn + fp) if tn + fp else math.nan,
            "ppv": tp / (tp + fp) if tp + fp else math.nan,
            "npv": tn / (tn + fn) if tn + fn else math.nan,
            "threshold": float(threshold),
        })
    return {key: float(value) for key, value in result.items()}


def confusion(labels: np.ndarray, probabilities: np.ndarray, threshold: float | None = None) -> list[list[int]]:
    """Confusion matrix (rows: true class, columns: predicted class) as nested lists."""
    n_classes = probabilities.shape[1]
    predicted = _predictions(probabilities, threshold)
    return sk.confusion_matrix(labels, predicted, labels=list(range(n_classes))).tolist()


def threshold_for_sensitivity(labels: np.ndarray, positive_scores: np.ndarray, target: float) -> float:
    """Largest threshold on ``P(positive)`` whose sensitivity on these rows is >= ``target``."""
    scores = np.sort(positive_scores[np.asarray(labels) == 1])
    if scores.size == 0:
        return 0.5
    allowed_misses = int(math.floor((1.0 - target) * scores.size + 1e-9))
    return float(scores[min(allowed_misses, scores.size - 1)])


def summarize(fold_metrics: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and standard deviation (ddof=0) of every metric across folds, NaN-aware."""
    keys = [k for k in fold_metrics[0] if k != "threshold"]
    table = np.array([[fold.get(k, math.nan) for k in keys] for fold in fold_metrics], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (undefined AUCs)
        means, stds = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
    mean = {k: float(v) for k, v in zip(keys, means, strict=True)}
    std = {k: float(v) for k, v in zip(keys, stds, strict=True)}
    return mean, std
