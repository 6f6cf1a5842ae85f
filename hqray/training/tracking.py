"""MLflow tracking of training runs and studies (optional: ``pip install 'hqray[mlflow]'``).

Where runs go: the URI given, else ``$MLFLOW_TRACKING_URI``, else MLflow's own local
default (MLflow 3: a SQLite file ``mlflow.db`` in the working directory, artifacts under
``mlruns/``; no server). MLflow 3.18 refuses ``file:`` stores unless
``MLFLOW_ALLOW_FILE_STORE=true`` is set: its file store is in maintenance mode.

Checkpoints are logged as their own files (``weights.pt``, ``preprocessing.npz``,
``metadata.json``), never as a pickled MLflow model, so a downloaded checkpoint loads
with :func:`hqray.load_model` without running code.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from hqray.errors import ConfigError

__all__ = ["Tracker", "log_training_run", "flat_params", "metric_key", "require_mlflow",
           "tracking_uri"]

MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def require_mlflow():
    """The mlflow module, or a ConfigError saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("MLflow tracking needs MLflow: pip install 'hqray[mlflow]'") from None
    return mlflow


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as flat ``a.b`` parameters with string values (MLflow's form).

    >>> flat_params({"n_qubits": 4, "dataset": {"name": "iris", "options": {"task": "binary"}}})
    {'n_qubits': '4', 'dataset.name': 'iris', 'dataset.options.task': 'binary'}
    """
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


def tracking_uri(uri: str | None = None) -> str:
    """The URI runs go to: ``uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's local default."""
    return uri or require_mlflow().get_tracking_uri()


class Tracker:
    """One MLflow run: parameters, metrics and artifacts, through an explicit client.

    No global MLflow state is changed (the fluent API's active run and URI are untouched).
    """

    def __init__(self, experiment: str, run_name: str, uri: str | None = None,
                 tags: dict[str, str] | None = None):
        require_mlflow()
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={"hqray.kind": "run", **(tags or {})})
        self.run_id = run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flat_params(params)
        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def log_training_run(result, output: str | Path, uri: str | None = None, experiment: str = "hqray-train") -> str:
    """Logs an ``hqray train`` run: config, k-fold metrics (per fold as steps), baselines, files.

    Args:
        result: the :class:`~hqray.training.CrossValidationResult`.
        output: the run's output directory (``metrics.json``, plots, ``checkpoint/``).
        uri: MLflow tracking URI (default: see the module's docstring).
        experiment: MLflow experiment name.

    Returns:
        The MLflow run id.
    """
    tracker = Tracker(experiment, f"{result.dataset}-{result.generation}", uri,
                      tags={"hqray.kind": "train", "hqray.dataset": result.dataset,
                            "hqray.generation": result.generation})
    try:
        tracker.log_params({"dataset": result.dataset, "generation": result.generation,
                            "folds": len(result.folds), "config": result.config})
        tracker.log_metrics({f"{k}_mean": v for k, v in result.mean.items()}
                            | {f"{k}_std": v for k, v in result.std.items()})
        for step, fold in enumerate(result.folds):
            tracker.log_metrics({f"fold_{k}": v for k, v in fold.items()}, step=step)
        for name, baseline in result.baselines.items():
            tracker.log_metrics({f"baseline.{metric_key(name)}.{k}_mean": v for k, v in baseline["mean"].items()})
        output = Path(output)
        for name in ("metrics.json", "roc.png", "pr.png", "confusion.png"):
            tracker.log_artifacts(output / name)
        tracker.log_artifacts(output / "checkpoint", "checkpoint")
    except BaseException:
        tracker.end(failed=True)
        raise
    tracker.end()
    return tracker.run_id


def metric_key(name: str) -> str:
    """A baseline's name as MLflow allows in a metric key (letters, digits, _ - . / and spaces)."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name).strip()
