"""The function trainables: every fold of one sampled config, reported to Ray Tune.

A hybrid trial trains its k folds in lock-step (:class:`hqray.training.LockstepFolds`) on
splits that are identical for every trial of a study (same seed). After every epoch it
reports the mean and std over folds of the test-fold scores, so ASHA can stop weak
trials early, together with a checkpoint of every fold's training state, so a trial cut
off by a failure or a killed driver continues from its last epoch. When every fold has
stopped, each fold's best epoch is scored with every metric and reported with
``final=True``; that row is what the leaderboard reads.

Every final scoring is recorded in the study's storage (:mod:`hqray.tune.scoring`, local
or remote): a ledger record per scoring, which is how tests show that a resumed study
scores each trial's folds exactly once, and the trial's scores. The guard against scoring
twice does not depend on which checkpoint Tune's last experiment snapshot names (a driver
killed between a trial's end and the next snapshot restores the trial from an earlier
epoch): a trial that finds its scores recorded reports them and stops.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from hqray.cluster import close_shared_pools
from hqray.data import Dataset
from hqray.models import HybridConfig, make_config
from hqray.quantum.threads import use_threads
from hqray.training import LockstepFolds, fold_splits, summarize
from hqray.training.cv import score_fold
from hqray.training.families import ModelFamily, get_family
from hqray.tune.scoring import ScoringRecords

__all__ = ["TrialSettings", "train_folds", "trial_config", "FOLD_STATE_FILE"]

FOLD_STATE_FILE = "folds.pt"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares besides the data."""

    folds: int
    seed: int
    metric: str
    epochs: int | None = None
    storage: str | None = None  # the study's Tune storage (path or URI) holding the scoring records
    # The study's families as the driver resolved them: they travel to the trials with the
    # settings, so a family registered in the driver's script (not importable by a worker)
    # trains there too.
    families: dict[str, ModelFamily] = field(default_factory=dict)

    def family(self, name: str) -> ModelFamily:
        return self.families[name] if name in self.families else get_family(name)


def _mean_std(records: list[dict[str, float]], prefix: str) -> dict[str, float]:
    names = [key[len(prefix):] for key in records[0] if key.startswith(prefix)]
    out = {}
    for name in names:
        values = np.array([record[prefix + name] for record in records], dtype=np.float64)
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        out[f"{name}_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
    return out


def _final_metrics(folds: list[dict[str, float]]) -> dict[str, Any]:
    mean, std = summarize(folds)
    return {**mean, **{f"{name}_std": value for name, value in std.items()},
            "final": True, "fold_metrics": json.dumps(folds)}


def _records(settings: TrialSettings) -> ScoringRecords | None:
    return ScoringRecords(settings.storage) if settings.storage is not None else None


def _finish(settings: TrialSettings, final: dict[str, Any], folds: list[dict[str, float]],
            with_state: bool) -> None:
    """Records this scoring (ledger and scores) and reports the final scores."""
    records = _records(settings)
    if records is not None:
        records.record(tune.get_context().get_trial_id(), final, folds, settings.metric)
    _report_final(final, with_state)


def _report_final(final: dict[str, Any], with_state: bool) -> None:
    if with_state:
        # The final scores go into a checkpoint too, so Tune's trial state holds them.
        _report_with_state(final, {"final": json.dumps(final)})
    else:
        tune.report(final)


def trial_config(generation: str, params: dict[str, Any], epochs: int | None, seed: int) -> HybridConfig:
    """The HybridConfig of a trial: the generation's defaults, the study's epochs and seed,
    then the sampled values (which win, e.g. a searched ``epochs``)."""
    values = {k: v for k, v in params.items() if k != "generation"}
    return make_config(generation, **{**({"epochs": epochs} if epochs is not None else {}), "seed": seed, **values})


def _train_hybrid(params: dict[str, Any], dataset: Dataset, settings: TrialSettings) -> None:
    config = trial_config(params["generation"], params, settings.epochs, settings.seed)
    splits = fold_splits(dataset.labels, settings.folds, settings.seed, dataset.class_names)
    lockstep = LockstepFolds(dataset, config, splits, test_metric=settings.metric)

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = torch.load(Path(directory) / FOLD_STATE_FILE, map_location="cpu", weights_only=True)
        if "final" in state:  # scored before the interruption: report that, never score twice
            tune.report(json.loads(state["final"]))
            return
        lockstep.load_state_dict(state)

    while not lockstep.stopped:
        records = lockstep.step()
        if lockstep.stopped:
            break  # the last epoch is reported once, with the final scores: one Tune iteration per epoch
        metrics = {**_mean_std(records, "test_"), "epoch": lockstep.epoch, "final": False,
                   "folds_running": sum(not trainer.stopped for trainer in lockstep.trainers)}
        _report_with_state(metrics, lockstep.state_dict())

    scores = lockstep.finish()
    final = {**_final_metrics(scores.folds), "epoch": lockstep.epoch,
             "best_epoch_mean": float(np.mean(scores.best_epochs))}
    _finish(settings, final, scores.folds, with_state=True)


def _report_with_state(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="hqray-folds-") as directory:
        torch.save(state, Path(directory) / FOLD_STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _train_estimator(family: ModelFamily, params: dict[str, Any], dataset: Dataset,
                     settings: TrialSettings) -> None:
    """An estimator family's trial: one fit per fold, scored once (nothing to report per epoch)."""
    options = {k: v for k, v in params.items() if k != "generation"}
    folds = []
    for train_index, test_index in fold_splits(dataset.labels, settings.folds, settings.seed, dataset.class_names):
        model = family.build(options, settings.seed)
        model.fit(dataset.features[train_index], dataset.labels[train_index])
        probabilities = np.zeros((test_index.size, dataset.n_classes))
        probabilities[:, model.classes_] = model.predict_proba(dataset.features[test_index])
        folds.append(score_fold(dataset.labels[test_index], probabilities, None))
    _finish(settings, {**_final_metrics(folds), "epoch": 1}, folds, with_state=False)


def train_folds(params: dict[str, Any], dataset: Dataset, settings: TrialSettings) -> None:
    """Ray Tune function trainable: ``params`` holds ``generation`` and the sampled values.

    Bind the data and settings with ``tune.with_parameters(train_folds, dataset=...,
    settings=...)`` so the dataset travels once through the object store.
    """
    # One line per epoch checkpoint of every trial would drown the trial table.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    # One trial per CPU it was given: torch and BLAS would otherwise start a thread per core.
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    use_threads(int(cpus))
    try:
        records = _records(settings)
        scored = records.scored(tune.get_context().get_trial_id()) if records is not None else None
        family = settings.family(params["generation"])
        if scored is not None:  # scored before an interruption: report it, never score again
            _report_final(scored["final"], with_state=family.trains_by_epoch)
        elif family.trains_by_epoch:
            _train_hybrid(params, dataset, settings)
        else:
            _train_estimator(family, params, dataset, settings)
    finally:
        # A pool generation (g7) started CircuitWorkers and their placement groups from this
        # trial; placement groups outlive the trial's process, so release them explicitly.
        close_shared_pools()
