"""`hqray sweep`: run a study with Ray Tune, one Tuner per generation, and write its results.

The dataset is loaded once by the driver and shared with every trial through the object
store. Each generation gets its own Tune experiment under ``<storage>/<generation>``, so
``resume=True`` restores exactly the generations that did not finish and never re-runs
a finished trial. The classical baselines run on the same folds, and the leaderboard,
trial table, plots and a refitted best checkpoint go to ``results/<study>/``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from hqray.cluster import close_shared_pools, connect
from hqray.data import Dataset, load_dataset
from hqray.errors import ConfigError
from hqray.models import make_config
from hqray.ownership import claim_directory, remove_owned
from hqray.training import HybridClassifier, fold_splits, run_baselines, save_checkpoint
from hqray.training.families import get_family
from hqray.training.metrics import SCALAR_METRICS
from hqray.training.tracking import require_mlflow
from hqray.training.workflow import json_safe
from hqray.tune.leaderboard import BASELINE_PREFIX, build_leaderboard, leaderboard_markdown, save_sweep_plots
from hqray.tune.spaces import param_space
from hqray.tune.study import StudyConfig
from hqray.tune.tracking import StudyTracking
from hqray.tune.trainable import TrialSettings, train_folds, trial_config

__all__ = ["run_study", "SweepResult", "smoke_study", "DEFAULT_QPU_PER_TRIAL", "SMOKE_MAX_ROWS",
           "prune_trial_checkpoints", "PruneSupersededCheckpoints"]

logger = logging.getLogger(__name__)

DEFAULT_QPU_PER_TRIAL = 0.5
SMOKE_MAX_ROWS = 240
# How often Tune snapshots the experiment (what --resume restores; each snapshot names every
# running trial's newest checkpoint). Tune's default is every 10 s or more, with a forced
# snapshot per checkpoint only when num_to_keep is set, which cannot be used (see the
# CheckpointConfig below). A resumed trial continues from an epoch at most this old.
# TUNE_GLOBAL_CHECKPOINT_S set in the environment wins.
SNAPSHOT_SECONDS = 1.0


@dataclass
class SweepResult:
    """What a sweep wrote: the leaderboard, every trial, and where the files are."""

    study: StudyConfig
    directory: Path
    leaderboard: pd.DataFrame
    trials: pd.DataFrame
    best_checkpoint: Path | None
    markdown: str


def smoke_study(study: StudyConfig) -> StudyConfig:
    """The study shrunk to seconds for CI: 2 folds, 2 epochs, one sample, no early stopping."""
    return study.model_copy(update={"folds": 2, "epochs": 2, "num_samples": 1, "scheduler": "none",
                                    "search_alg": "random", "time_budget_s": None})


def _smoke_rows(dataset: Dataset, seed: int) -> Dataset:
    """At most SMOKE_MAX_ROWS rows, stratified, so a smoke sweep of any dataset takes seconds."""
    if dataset.n_samples <= SMOKE_MAX_ROWS:
        return dataset
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(dataset.n_samples), train_size=SMOKE_MAX_ROWS,
                               stratify=dataset.labels, random_state=seed)
    keep = np.sort(keep)
    return Dataset(dataset.name, dataset.features[keep], dataset.labels[keep], dataset.feature_names,
                   dataset.class_names, {**dataset.options, "smoke_rows": SMOKE_MAX_ROWS})


def _is_local(path: str) -> bool:
    return "://" not in path


def _claim_outputs(study: StudyConfig, directory: Path, storage: str | None, resume: bool,
                   overwrite: bool) -> tuple[Path, str]:
    """The study's results directory and its own Tune storage, both checked before anything is written.

    Storage is ``<storage>/<study>`` (default ``<results>/<study>/tune``), so studies can
    share one. See :func:`_prepare_storage` for what a fresh run may remove.
    """
    if storage is None:
        claim_directory(directory, "study results", study.name, overwrite)
        return directory, _prepare_storage(study, str(directory / "tune"), resume)
    if _is_local(storage):
        storage_path = _prepare_storage(study, str(Path(storage).resolve() / study.name), resume)
    else:
        storage_path = _prepare_storage(study, f"{storage.rstrip('/')}/{study.name}", resume)
    return claim_directory(directory, "study results", study.name, overwrite), storage_path


def _prepare_storage(study: StudyConfig, storage_path: str, resume: bool) -> str:
    """Makes ``storage_path`` ready for a fresh run or checks it holds one to resume.

    A fresh run removes an earlier run's local storage only when hqray created it for this
    study (its marker); anything else there is refused, never deleted. Remote storage is
    never deleted: a fresh run refuses storage that already holds a run of the study.
    """
    if not _is_local(storage_path):
        earlier = [g for g in study.generations if tune.Tuner.can_restore(f"{storage_path}/{g}")]
        if resume and not earlier:
            raise ConfigError(f"--resume: no earlier run of study {study.name!r} at {storage_path}")
        if not resume and earlier:
            raise ConfigError(f"storage {storage_path} already holds a run of study {study.name!r} "
                              f"(generations {earlier}); finish it with --resume, or choose another --storage")
        return storage_path
    if resume and not Path(storage_path).is_dir():
        raise ConfigError(f"--resume: no earlier run of study {study.name!r} at {storage_path}")
    if not resume and Path(storage_path).exists():
        logger.warning("starting study %s afresh: removing its earlier run at %s (use --resume to finish it)",
                       study.name, storage_path)
        remove_owned(storage_path, "sweep storage", study.name)
    claim_directory(storage_path, "sweep storage", study.name)
    return storage_path


def _trial_resources(study: StudyConfig, generation: str, cluster_resources: dict[str, float]):
    resources = {"CPU": study.resources_per_trial.cpu}
    if study.resources_per_trial.gpu:
        resources["GPU"] = study.resources_per_trial.gpu
    qpu = study.resources_per_trial.qpu
    if get_family(generation).is_quantum:
        has_qpu = cluster_resources.get("QPU", 0.0) > 0
        if qpu is None:
            qpu = DEFAULT_QPU_PER_TRIAL if has_qpu else 0.0
            if not has_qpu:
                logger.warning("the cluster declares no QPU resource: quantum trials of %s run without one",
                               generation)
        elif qpu > 0 and cluster_resources.get("QPU", 0.0) < qpu:
            raise ConfigError(f"resources_per_trial.qpu = {qpu}, but the cluster has "
                              f"{cluster_resources.get('QPU', 0.0)} QPU; no trial could start")
        if qpu:
            resources["QPU"] = qpu
    return tune.PlacementGroupFactory([resources])


def _max_epochs(study: StudyConfig, generation: str) -> int:
    domain = study.space_for(generation).get("epochs")
    if domain is not None:
        (kind, arguments), = domain.items()
        return int(max(arguments))
    return make_config(generation, **({"epochs": study.epochs} if study.epochs else {})).epochs


def _tune_config(study: StudyConfig, generation: str, time_budget_s: float | None):
    search_alg = None
    if study.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=study.metric, mode=study.mode, seed=study.seed)
    else:
        from ray.tune.search import BasicVariantGenerator

        # Tune ignores max_concurrent_trials for a SearchGenerator (with a warning): the
        # generator enforces the limit itself.
        search_alg = BasicVariantGenerator(random_state=study.seed, max_concurrent=study.max_concurrent_trials)
    scheduler = None
    if study.scheduler == "asha" and get_family(generation).trains_by_epoch:
        from ray.tune.schedulers import ASHAScheduler

        max_t = _max_epochs(study, generation)  # one report per epoch; the last carries the final scores
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t,
                                  grace_period=min(3, max_t), reduction_factor=3)
    return tune.TuneConfig(metric=study.metric, mode=study.mode, search_alg=search_alg, scheduler=scheduler,
                           num_samples=study.num_samples,
                           max_concurrent_trials=study.max_concurrent_trials if study.search_alg == "optuna" else None,
                           time_budget_s=time_budget_s,
                           # A trial's actor takes the next trial (same resources) instead of a new
                           # process paying seconds of imports (torch, scikit-learn, Tune) per trial.
                           reuse_actors=True)


def _trial_rows(generation: str, grid) -> list[dict[str, Any]]:
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        if metrics.get("final"):
            status = "finished"
        elif result.error is not None:
            status = "error"
        else:
            status = "stopped early"
        row = {"generation": generation, "trial_id": metrics.get("trial_id", Path(result.path).name),
               "status": status, "epochs": metrics.get("epoch"), "iterations": metrics.get("training_iteration"),
               "time_s": metrics.get("time_total_s"),
               "error": None if result.error is None else str(result.error).splitlines()[0][:300]}
        config = {name: value for name, value in (result.config or {}).items() if name != "generation"}
        row.update({f"config.{name}": value for name, value in config.items()})
        # The settings as the trial got them: in the table's columns an integer setting that
        # another family lacks turns into a float (NaN elsewhere), which strict options refuse.
        row["config"] = json.dumps(config, sort_keys=True, default=str)
        for name in (*SCALAR_METRICS, "loss"):
            row[name] = metrics.get(name, math.nan)
            row[f"{name}_std"] = metrics.get(f"{name}_std", math.nan)
        row["fold_metrics"] = metrics.get("fold_metrics")
        rows.append(row)
    return rows


def _refit_best(study: StudyConfig, dataset: Dataset, board: pd.DataFrame, directory: Path) -> tuple[Path | None, str]:
    """Refits the best model family (any kind; not a baseline) on every row; returns the
    checkpoint and a note."""
    candidates = board[~board["model"].str.startswith(BASELINE_PREFIX) & board[study.metric].notna()]
    if candidates.empty:
        return None, "No finished model-family trial: no best checkpoint written."
    best = candidates.iloc[0]
    family = get_family(best["model"])
    params = json.loads(best["config"])
    names = np.asarray(dataset.class_names)[dataset.labels]
    if family.trains_by_epoch:
        config = trial_config(best["model"], params, study.epochs, study.seed)
        model = HybridClassifier.from_config(config).fit(dataset.features, names, list(dataset.feature_names))
    else:
        model = family.build({k: v for k, v in params.items() if k != "generation"}, study.seed)
        model.fit(dataset.features, names)
        model.feature_names_ = list(dataset.feature_names)
    metrics = {"mean": {m: best[m] for m in SCALAR_METRICS}, "std": {m: best[f"{m}_std"] for m in SCALAR_METRICS},
               "folds": study.folds, "dataset": dataset.name, "dataset_options": dataset.options,
               "study": study.name}
    path = save_checkpoint(model, directory / "best", metrics=json_safe(metrics), name=study.name,
                           family=best["model"])
    # A pool generation (g7) refitted here started CircuitWorkers in this process; they hold
    # cluster resources that later sweeps (or other jobs) need.
    close_shared_pools()
    note = f"`best/` holds `{best['model']}` (its best trial's config) refitted on all {dataset.n_samples} rows."
    if board.iloc[0]["model"].startswith(BASELINE_PREFIX):
        note += (f" The top row `{board.iloc[0]['model']}` is a baseline, so `best/` holds the best model "
                 "family instead.")
    return path, note


def _checkpoint_dirs(filesystem: Any, trial_path: str) -> list[Any]:
    """A trial's ``checkpoint_*`` directories (pyarrow FileInfo), oldest first."""
    from pyarrow import fs

    entries = filesystem.get_file_info(fs.FileSelector(trial_path))
    found = [entry for entry in entries if entry.type == fs.FileType.Directory
             and entry.path.rstrip("/").rsplit("/", 1)[-1].startswith("checkpoint_")]
    return sorted(found, key=lambda entry: entry.path)


def _delete(filesystem: Any, entries: list[Any]) -> None:
    for entry in entries:
        try:
            filesystem.delete_dir(entry.path)
        except OSError as error:
            logger.warning("could not delete %s: %s", entry.path, error)


class PruneSupersededCheckpoints(tune.Callback):
    """Bounds a running trial's checkpoints without the race of ``num_to_keep``: deletes
    only checkpoints older than the newest one that is at least ``lag_s`` old. Tune
    snapshots the experiment every ``SNAPSHOT_SECONDS``, so its last snapshot names that
    checkpoint or a newer one, and resume never needs the deleted ones."""

    def __init__(self, lag_s: float):
        self.lag_s = lag_s

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        try:
            entries = _checkpoint_dirs(checkpoint.filesystem, trial.path)
        except OSError as error:
            logger.warning("could not list %s to prune its checkpoints: %s", trial.path, error)
            return
        now = time.time()
        settled = [i for i, entry in enumerate(entries)
                   if entry.mtime is not None and now - entry.mtime.timestamp() >= self.lag_s]
        if settled:
            _delete(checkpoint.filesystem, entries[:settled[-1]])


def _pruning_lag_s() -> float:
    """Ten snapshot periods, at least 10 s: a snapshot is written every period."""
    try:
        period = float(os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", SNAPSHOT_SECONDS))
    except ValueError:  # "auto": Tune's adaptive period, 10 s or more
        period = 60.0
    return max(10.0, 10 * period)


def prune_trial_checkpoints(grid: Any) -> None:
    """Deletes each finished trial's epoch checkpoints except its last (which holds its
    final scores). Runs after a generation's ``fit`` returns, once Tune's final snapshot
    names those last checkpoints: pruning earlier could delete the checkpoint that the
    snapshot a killed driver left behind still names."""
    for result in grid:
        if result.error is not None or result.checkpoint is None:
            continue  # an errored trial may be resumed from any of its checkpoints
        keep = result.checkpoint.path.rstrip("/")
        try:
            entries = _checkpoint_dirs(result.filesystem, result.path)
        except OSError as error:
            logger.warning("could not list %s to prune its checkpoints: %s", result.path, error)
            continue
        _delete(result.filesystem, [entry for entry in entries if entry.path.rstrip("/") != keep])


def run_study(study: StudyConfig, *, address: str | None = None, resume: bool = False, smoke_test: bool = False,
              storage: str | None = None, results_dir: str | Path = "results", num_cpus: int | None = None,
              verbose: int = 1, on_generation: Callable[[str, int, int], None] | None = None,
              callbacks: Sequence[Any] = (), overwrite: bool = False, mlflow: bool | str = False) -> SweepResult:
    """Runs ``study`` and writes ``results_dir/<study>/``; returns the :class:`SweepResult`.

    Args:
        study: the validated study (see :func:`hqray.tune.load_study`).
        address: Ray cluster to join; default ``$RAY_ADDRESS``, else an embedded local Ray.
        resume: restore an interrupted run from ``storage`` and finish it (finished trials
            are kept, unfinished ones continue from their last epoch checkpoint).
        smoke_test: shrink the study to seconds (:func:`smoke_study`, at most 240 rows).
        storage: Tune storage (a local path or a ``s3://``/``gs://`` URI, which multi-node
            clusters need); the study writes to ``<storage>/<study>``, so studies can share
            one. Default ``results_dir/<study>/tune``.
        results_dir: where ``<study>/`` is written.
        num_cpus: CPUs of the embedded local Ray (default: all of this machine's).
        verbose: Ray Tune's verbosity (0 silent, 1 the trial table).
        on_generation: called with ``(generation, index, count)`` before each generation.
        callbacks: Ray Tune callbacks (``ray.tune.Callback``) added to every generation's
            run, e.g. a logger or an observer of trial starts and ends.
        overwrite: write into a ``results_dir/<study>`` that holds files hqray did not
            write (nothing there is deleted).
        mlflow: track the study in MLflow (``True``: the default tracking URI; a string:
            that URI): a parent run with the leaderboard, plots and best checkpoint, and a
            child run per trial with its config and per-epoch metrics
            (:class:`hqray.tune.tracking.StudyTracking`).

    Raises:
        ConfigError: ``resume`` with nothing to resume, resources the cluster lacks, or
            results / storage directories holding data hqray did not create.
    """
    if mlflow:
        require_mlflow()  # before any work: a missing extra is named at once
    if smoke_test:
        study = smoke_study(study)
    directory, storage_path = _claim_outputs(study, Path(results_dir).resolve() / study.name, storage, resume,
                                             overwrite)

    dataset = load_dataset(study.dataset.name, **study.dataset.options)
    if smoke_test:
        dataset = _smoke_rows(dataset, study.seed)
    # The trials draw these same splits (same seed); computing them here fails before Ray on tiny classes.
    splits = fold_splits(dataset.labels, study.folds, study.seed, dataset.class_names)

    # Every epoch checkpoint snapshots the experiment on purpose (resume loses at most one
    # epoch); Tune's warning about frequent snapshots is expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    info = connect(address=address, num_cpus=num_cpus)
    settings = TrialSettings(folds=study.folds, seed=study.seed, metric=study.metric, epochs=study.epochs,
                             storage=storage_path,
                             families={name: get_family(name) for name in study.generations})
    (directory / "study.json").write_text(json.dumps({**study.model_dump(), "smoke_test": smoke_test,
                                                      "rows": dataset.n_samples}, indent=2))

    tracking = StudyTracking(study, mlflow, smoke_test) if mlflow else None
    started = time.monotonic()
    try:
        rows, seconds, notes = _run_generations(
            study, dataset, settings, info.resources, storage_path, resume, verbose, on_generation,
            [*callbacks, *(tracking.callbacks() if tracking else [])], directory / GENERATION_SECONDS_FILE)
        result = _write_results(study, dataset, splits, rows, seconds, notes, directory, smoke_test)
    except BaseException:
        if tracking:
            tracking.fail()
        raise
    if tracking:
        tracking.finish(result)
    logger.info("study %s: %d trials in %.0f s; results in %s", study.name, len(result.trials),
                time.monotonic() - started, directory)
    return result


# Each generation's wall seconds, kept as it finishes (a resumed study adds them up).
GENERATION_SECONDS_FILE = "generation_seconds.json"


def _run_generations(study: StudyConfig, dataset: Dataset, settings: TrialSettings, resources: dict[str, float],
                     storage_path: str, resume: bool, verbose: int,
                     on_generation: Callable[[str, int, int], None] | None,
                     callbacks: Sequence[Any], seconds_file: Path,
                     ) -> tuple[list[dict[str, Any]], dict[str, float], list[str]]:
    """One Tune run per generation, within the study's time budget: trial rows, seconds, notes.

    Each generation's wall seconds are kept in ``seconds_file`` as it finishes, so a resumed
    study adds what the interrupted run spent instead of reporting a restore's seconds.
    """
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    spent_before = json.loads(seconds_file.read_text()) if resume and seconds_file.is_file() else {}
    seconds: dict[str, float] = {}
    notes: list[str] = []
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(SNAPSHOT_SECONDS))  # read by Tuner.fit
    for index, generation in enumerate(study.generations):
        if on_generation is not None:
            on_generation(generation, index, len(study.generations))
        remaining = None
        if study.time_budget_s is not None:
            remaining = study.time_budget_s - (time.monotonic() - started)
            if remaining <= 0:
                notes.append(f"`{generation}` not run: the study's time budget ({study.time_budget_s} s) was spent.")
                continue
        trainable = tune.with_resources(tune.with_parameters(train_folds, dataset=dataset, settings=settings),
                                        _trial_resources(study, generation, resources))
        generation_started = time.monotonic()
        grid = _tuner(study, generation, trainable, storage_path, resume, remaining, verbose, callbacks).fit()
        prune_trial_checkpoints(grid)
        seconds[generation] = spent_before.get(generation, 0.0) + time.monotonic() - generation_started
        seconds_file.write_text(json.dumps({**spent_before, **seconds}, indent=2))
        rows.extend(_trial_rows(generation, grid))
    return rows, seconds, notes


def _tuner(study: StudyConfig, generation: str, trainable: Any, storage_path: str, resume: bool,
           time_budget_s: float | None, verbose: int, callbacks: Sequence[Any]) -> Any:
    """The generation's Tuner: restored from storage on ``resume`` when it ran before, else new."""
    experiment = str(Path(storage_path) / generation) if _is_local(storage_path) else f"{storage_path}/{generation}"
    if resume and tune.Tuner.can_restore(experiment):
        return tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space={"generation": generation, **param_space(study, generation)},
        tune_config=_tune_config(study, generation, time_budget_s),
        run_config=tune.RunConfig(
            name=generation, storage_path=storage_path, verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=2),
            # Keep every checkpoint of a running trial: with num_to_keep, Tune deletes
            # the checkpoint its last experiment snapshot names as soon as a newer one
            # arrives, so a driver killed before the next snapshot leaves a study that
            # cannot resume ("Could not recover from checkpoint as it does not exist";
            # ray-project/ray#27790). Old ones go once no snapshot can name them,
            # and finished trials keep their last (prune_trial_checkpoints).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=[PruneSupersededCheckpoints(lag_s=_pruning_lag_s()), *callbacks],
        ),
    )


def _write_results(study: StudyConfig, dataset: Dataset, splits, rows: list[dict[str, Any]],
                   seconds: dict[str, float], notes: list[str], directory: Path, smoke_test: bool) -> SweepResult:
    """Baselines on the same folds, the leaderboard, the refitted best model, tables and plots."""
    trials = pd.DataFrame(rows)
    if trials.empty:
        trials = pd.DataFrame(columns=["generation", "trial_id", "status", *SCALAR_METRICS])
    baselines_started = time.monotonic()
    baselines = run_baselines(dataset, splits, study.baselines, study.seed)
    baseline_seconds = time.monotonic() - baselines_started

    kinds = {generation: get_family(generation).kind for generation in study.generations}
    board = build_leaderboard(trials, baselines, study.metric, study.mode, seconds, kinds, baseline_seconds)
    best_path, best_note = _refit_best(study, dataset, board, directory)
    notes = [*notes, best_note,
             "Baselines use every feature, standardised inside each fold; so do the generations, except "
             "circuits fed directly, which get PCA to what their embedding takes (fitted in-fold). Scores are "
             "outer-fold test scores of each fold's best epoch.",
             f"A generation's row is the best of its {study.num_samples} sampled configs, chosen on these same "
             "folds, so it is optimistic; baselines run once with default settings. Confirm a close call on "
             "data the sweep did not see."]
    if smoke_test:
        notes.append(f"Smoke test: {study.folds} folds, {study.epochs} epochs, at most {SMOKE_MAX_ROWS} rows; "
                     "not a result.")
    markdown = leaderboard_markdown(board, study.name, study.metric, study.mode, study.folds,
                                    f"{dataset.name} ({dataset.n_samples} rows)", notes)
    trials.to_parquet(directory / "trials.parquet", index=False)
    board.to_csv(directory / "leaderboard.csv", index=False)
    (directory / "leaderboard.md").write_text(markdown)
    save_sweep_plots(trials, board, study.metric, directory / "plots")
    return SweepResult(study, directory, board, trials, best_path, markdown)

