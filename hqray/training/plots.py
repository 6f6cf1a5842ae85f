"""ROC, precision-recall and confusion-matrix figures of a cross-validation result."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import auc, precision_recall_curve, roc_curve  # noqa: E402

__all__ = ["save_plots"]


def _curves(result, kind: str, axis) -> None:
    n_classes = result.probabilities.shape[1]
    positives = [1] if n_classes == 2 else list(range(n_classes))
    for positive in positives:
        truth = (result.labels == positive).astype(int)
        scores = result.probabilities[:, positive]
        label = result.class_names[positive]
        if kind == "roc":
            fpr, tpr, _ = roc_curve(truth, scores)
            axis.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
        else:
            precision, recall, _ = precision_recall_curve(truth, scores)
            axis.plot(recall, precision, label=f"{label} (AUC {auc(recall, precision):.3f})")
    if kind == "roc":
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axis.set(xlabel="false positive rate", ylabel="true positive rate")
    else:
        axis.set(xlabel="recall", ylabel="precision")
    axis.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)


def save_plots(result, directory: str | Path) -> list[Path]:
    """Writes ``roc.png``, ``pr.png`` and ``confusion.png`` (out-of-fold predictions)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    title = f"{result.dataset} {result.generation}, {len(result.folds)}-fold out-of-fold"
    for kind, name in (("roc", "roc.png"), ("pr", "pr.png")):
        figure, axis = plt.subplots(figsize=(5, 4.5))
        _curves(result, kind, axis)
        axis.set_title(title, fontsize=9)
        figure.tight_layout()
        figure.savefig(directory / name, dpi=110)
        plt.close(figure)
        paths.append(directory / name)
    matrix = np.sum(np.array(result.confusion_matrices), axis=0)
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(result.class_names))
    axis.set_xticks(ticks, result.class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, result.class_names)
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(column, row, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    axis.set(xlabel="predicted", ylabel="true")
    axis.set_title(f"confusion, summed over folds\n{title}", fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "confusion.png", dpi=110)
    plt.close(figure)
    paths.append(directory / "confusion.png")
    return paths
