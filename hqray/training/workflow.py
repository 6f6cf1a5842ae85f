"""The `hqray train` workflow: cross-validate, refit on all rows, write results.

Output directory::

    metrics.json        per-fold metrics, mean/std, baselines (shape in the README)
    roc.png pr.png confusion.png
    checkpoint/         the model refitted on every row (see hqray.training.checkpoint)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hqray.data import Dataset
from hqray.models import HybridConfig
from hqray.ownership import claim_directory
from hqray.training.checkpoint import save_checkpoint
from hqray.training.classifier import HybridClassifier
from hqray.training.cv import DEFAULT_BASELINES, CrossValidationResult, cross_validate
from hqray.training.plots import save_plots

__all__ = ["train_and_save", "json_safe"]


def json_safe(value: Any) -> Any:
    """Replaces NaN/inf floats with ``None`` so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def train_and_save(
    dataset: Dataset,
    config: HybridConfig,
    output: str | Path,
    folds: int = 5,
    seed: int = 0,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    on_epoch: Callable[[int, list[dict[str, float]]], None] | None = None,
    same_feature_baselines: bool = False,
    overwrite: bool = False,
) -> CrossValidationResult:
    """Cross-validates ``config``, refits it on every row, writes metrics, plots and the checkpoint.

    ``result.seconds`` is the cross-validation's wall time (baselines included) and
    ``result.refit_seconds`` the final refit's; both are in ``metrics.json``. An ``output``
    that holds files hqray did not write is refused unless ``overwrite`` (see
    :func:`hqray.ownership.claim_directory`); nothing in it is ever deleted.
    """
    output = claim_directory(output, "training run", "train", overwrite)
    result = cross_validate(dataset, config, folds=folds, seed=seed, baselines=baselines, on_epoch=on_epoch,
                            same_feature_baselines=same_feature_baselines)
    refit_started = time.perf_counter()
    # Fitted on class names, so the checkpoint (and a server) answers with names.
    names = np.asarray(dataset.class_names)[dataset.labels]
    final = HybridClassifier.from_config(config).fit(dataset.features, names, list(dataset.feature_names))
    result.refit_seconds = time.perf_counter() - refit_started
    (output / "metrics.json").write_text(json.dumps(json_safe(result.to_json()), indent=2))
    save_plots(result, output)
    save_checkpoint(final, output / "checkpoint", metrics={"mean": result.mean, "std": result.std,
                                                             "folds": folds, "dataset": dataset.name,
                                                             "dataset_options": dataset.options})
    return result
