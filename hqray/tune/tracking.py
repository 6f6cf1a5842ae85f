"""A study in MLflow: a parent run for the study, a child run per trial (Ray Tune's MLflow
integration: the trial's config and its per-epoch fold-mean metrics), and the leaderboard,
plots and best checkpoint as the parent's artifacts. See :mod:`hqray.training.tracking`
for where runs go."""

from __future__ import annotations

import math
from typing import Any

from hqray.training.metrics import SCALAR_METRICS
from hqray.training.tracking import Tracker, metric_key

__all__ = ["StudyTracking"]


class StudyTracking:
    """The MLflow side of one :func:`~hqray.tune.run_study` call.

    Args:
        study: the study (its name is the MLflow experiment).
        target: ``True`` for the default tracking URI, or a URI.
        smoke_test: logged as a parameter and tag, so smoke runs are told apart.
    """

    def __init__(self, study, target: bool | str, smoke_test: bool = False):
        self.study = study
        uri = target if isinstance(target, str) else None
        self.tracker = Tracker(study.name, f"{study.name} (study)", uri,
                               tags={"hqray.kind": "study", "hqray.smoke_test": str(smoke_test).lower()})
        self.tracker.log_params({"study": study.model_dump(), "smoke_test": smoke_test})

    @property
    def run_id(self) -> str:
        return self.tracker.run_id

    def callbacks(self) -> list[Any]:
        """Ray Tune's MLflow logger, making each trial a child run of the study's run."""
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        return [MLflowLoggerCallback(tracking_uri=self.tracker.uri, experiment_name=self.study.name,
                                     tags={"mlflow.parentRunId": self.run_id, "hqray.kind": "trial",
                                           "hqray.study": self.study.name})]

    def finish(self, result) -> None:
        """Logs the leaderboard (each row's scores as metrics) and the study's files; ends the run."""
        metrics = {}
        for row in result.leaderboard.to_dict("records"):
            for key, value in row.items():  # "roc_auc" (the mean over folds), "roc_auc_std", ...
                scored = key.removesuffix("_std") in SCALAR_METRICS
                if scored and isinstance(value, (int, float)) and math.isfinite(value):
                    metrics[f"{metric_key(str(row['model']))}.{key}"] = value
        self.tracker.log_metrics(metrics)
        for name in ("leaderboard.md", "leaderboard.csv", "trials.parquet", "study.json"):
            self.tracker.log_artifacts(result.directory / name)
        self.tracker.log_artifacts(result.directory / "plots", "plots")
        if result.best_checkpoint is not None:
            self.tracker.log_artifacts(result.best_checkpoint, "best_checkpoint")
        self.tracker.end()

    def fail(self) -> None:
        self.tracker.end(failed=True)
