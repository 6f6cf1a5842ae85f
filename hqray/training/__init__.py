"""Fitting, k-fold cross-validation, metrics, baselines and checkpoints (no Ray here).

**Example**

>>> from hqray.data import load_dataset
>>> from hqray.models import make_config
>>> from hqray.training import cross_validate
>>> result = cross_validate(load_dataset("iris"), make_config("g6", epochs=2), folds=2, baselines=())
>>> sorted(result.mean)[:2]
['accuracy', 'balanced_accuracy']
"""

from hqray._lazy import lazy_exports

# Everything here needs torch or scikit-learn: it loads on first use.
__getattr__, __dir__ = lazy_exports(__name__, {
    "hqray.training.baselines": ["BASELINES", "make_baseline", "register_baseline"],
    "hqray.training.checkpoint": ["checkpoint_files", "checkpoint_id", "load_model", "read_metadata",
                                  "save_checkpoint"],
    "hqray.training.classifier": ["HybridClassifier"],
    "hqray.training.cv": ["DEFAULT_BASELINES", "CrossValidationResult", "FoldScores", "LockstepFolds",
                          "cross_validate", "fold_splits", "run_baselines", "SAME_FEATURES_SUFFIX"],
    "hqray.training.fit": ["Trainer"],
    "hqray.training.kernel_svc": ["QuantumKernelSVC"],
    "hqray.training.kitchen_sinks": ["QuantumKitchenSinks"],
    "hqray.training.metrics": ["classification_metrics", "summarize"],
    "hqray.training.plots": ["save_plots"],
    "hqray.training.workflow": ["train_and_save"],
})

__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "CrossValidationResult",
    "FoldScores",
    "HybridClassifier",
    "LockstepFolds",
    "QuantumKernelSVC",
    "QuantumKitchenSinks",
    "SAME_FEATURES_SUFFIX",
    "Trainer",
    "classification_metrics",
    "cross_validate",
    "fold_splits",
    "checkpoint_files",
    "checkpoint_id",
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
