"""Fitting, k-fold cross-validation, metrics, baselines and checkpoints (no Ray here).

**Example**

>>> from hqray.data import load_dataset
>>> from hqray.models import make_config
>>> from hqray.training import cross_validate
>>> result = cross_validate(load_dataset("iris"), make_config("g6", epochs=2), folds=2, baselines=())
>>> sorted(result.mean)[:2]
['accuracy', 'balanced_accuracy']
"""

from hqray.training.baselines import BASELINES, make_baseline, register_baseline
from hqray.training.checkpoint import load_model, read_metadata, save_checkpoint
from hqray.training.classifier import HybridClassifier
from hqray.training.cv import (
    DEFAULT_BASELINES,
    CrossValidationResult,
    FoldScores,
    LockstepFolds,
    cross_validate,
    fold_splits,
    run_baselines,
)
from hqray.training.fit import Trainer
from hqray.training.kernel_svc import QuantumKernelSVC
from hqray.training.metrics import classification_metrics, summarize
from hqray.training.plots import save_plots
from hqray.training.workflow import train_and_save

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "CrossValidationResult",
    "FoldScores",
    "HybridClassifier",
    "LockstepFolds",
    "QuantumKernelSVC",
    "Trainer",
    "classification_metrics",
    "cross_validate",
    "fold_splits",
    "load_model",
    "make_baseline",
    "read_metadata",
    "register_baseline",
    "run_baselines",
    "save_checkpoint",
    "save_plots",
    "summarize",
    "train_and_save",
]
