"""The training loop: mini-batches, Adam/AdamW, early stopping on a validation metric.

A :class:`Trainer` advances one epoch per :meth:`Trainer.step`, so k folds can be trained
in lock-step and report per-epoch means (what Ray Tune's ASHA scheduler needs).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hqray.models import HybridConfig
from hqray.training.metrics import classification_metrics

__all__ = ["Trainer", "class_weight_vector", "epoch_metrics"]


def class_weight_vector(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """``n / (k * count_c)`` per class (scikit-learn's "balanced" weights)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = labels.size / (n_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(weights, dtype=torch.float32)


def epoch_metrics(model: nn.Module, features: torch.Tensor, labels: np.ndarray, n_classes: int,
                  loss_function: nn.Module, extra_metric: str | None = None) -> dict[str, float]:
    """Loss, accuracy and balanced accuracy of ``model`` on some rows, plus ``extra_metric``.

    These run every epoch of every fold, so they are computed directly; scikit-learn is
    called only for a metric that needs it (its input checks cost milliseconds a call).
    """
    model.eval()
    with torch.no_grad():
        logits = model(features)
        loss = float(loss_function(logits, torch.as_tensor(labels)))
    probabilities = torch.softmax(logits, 1).numpy()
    correct = probabilities.argmax(axis=1) == labels
    per_class = np.bincount(labels, weights=correct, minlength=n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    record = {"loss": loss, "accuracy": float(correct.mean()),
              "balanced_accuracy": float(np.mean(per_class[counts > 0] / counts[counts > 0]))}
    if extra_metric is not None and extra_metric not in record:
        record[extra_metric] = classification_metrics(labels, probabilities)[extra_metric]
    return record


class Trainer:
    """Trains ``model`` on ``(features, labels)``, early-stopping on the validation rows.

    Args:
        model: the network (logits out).
        config: optimisation settings (optimizer, learning rate, batch size, patience, ...).
        train: ``(features, labels)`` training rows, already preprocessed.
        validation: ``(features, labels)`` rows used only for early stopping.
        n_classes: number of classes.
    """

    def __init__(self, model: nn.Module, config: HybridConfig,
                 train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
                 n_classes: int):
        self.model = model
        self.config = config
        self.n_classes = n_classes
        self.train_features = torch.as_tensor(train[0], dtype=torch.float32)
        self.train_labels = torch.as_tensor(train[1], dtype=torch.long)
        self.validation_features = torch.as_tensor(validation[0], dtype=torch.float32)
        self.validation_labels = np.asarray(validation[1])
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(parameters, lr=config.learning_rate,
                                         weight_decay=config.weight_decay)
        weight = class_weight_vector(train[1], n_classes) if config.class_weights else None
        self.loss_function = nn.CrossEntropyLoss(weight=weight)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_score = math.inf if config.early_stopping_metric == "loss" else -math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(model.state_dict())
        self.stopped = False

    def _train_one_epoch(self) -> float:
        self.model.train()
        order = torch.randperm(self.train_features.shape[0], generator=self.generator)
        total, batches = 0.0, 0
        for start in range(0, order.numel(), self.config.batch_size):
            index = order[start:start + self.config.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_function(self.model(self.train_features[index]), self.train_labels[index])
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            batches += 1
        return total / max(batches, 1)

    def validation_probabilities(self) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.validation_features)
        return torch.softmax(logits, dim=1).numpy()

    def _validation_metrics(self) -> dict[str, float]:
        return epoch_metrics(self.model, self.validation_features, self.validation_labels, self.n_classes,
                             self.loss_function, self.config.early_stopping_metric)

    def _improved(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.config.early_stopping_metric == "loss":
            return score < self.best_score - 1e-6
        return score > self.best_score + 1e-6

    def step(self) -> dict[str, float]:
        """Trains one epoch, validates, and updates early stopping; returns the epoch's record."""
        if self.stopped:
            return self.history[-1]
        train_loss = self._train_one_epoch()
        self.epoch += 1
        record = {"epoch": self.epoch, "train_loss": train_loss,
                  **{f"val_{k}": v for k, v in self._validation_metrics().items()}}
        self.history.append(record)
        score = record[f"val_{self.config.early_stopping_metric}"]
        if self._improved(score):
            self.best_score, self.best_epoch = score, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        if self.epoch - self.best_epoch >= self.config.patience or self.epoch >= self.config.epochs:
            self.stopped = True
        return record

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training later: weights, optimizer, early stopping.

        The dictionary holds only tensors and plain Python values, so it round-trips through
        ``torch.save`` / ``torch.load(weights_only=True)`` (no pickle).
        """
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_state": self.best_state,
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_score": float(self.best_score),
            "stopped": self.stopped,
            "history": [dict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues from a :meth:`state_dict` of a trainer built with the same config and data."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.best_state = state["best_state"]
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.best_epoch = int(state["best_epoch"])
        self.best_score = float(state["best_score"])
        self.stopped = bool(state["stopped"])
        self.history = [dict(record) for record in state["history"]]

    def finish(self) -> nn.Module:
        """Restores the best weights seen and returns the model in eval mode."""
        self.model.load_state_dict(self.best_state)
        self.stopped = True
        return self.model.eval()
