"""`run_study` end to end on a real Ray session (2 CPUs, shared by the module)."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

import hqray.cluster as cluster
from hqray.data import load_dataset
from hqray.errors import ConfigError
from hqray.training import fold_splits, load_model, run_baselines
from hqray.training.families import get_family
from hqray.tune import StudyConfig, run_study
from hqray.tune.leaderboard import build_leaderboard, comparison
from hqray.tune.scoring import ScoringRecords
from hqray.tune.trainable import FOLD_STATE_FILE

STUDY = StudyConfig(name="t_sweep", dataset={"name": "iris", "options": {"task": "binary"}},
                    generations=["g0", "g6", "qsvm"], folds=3, epochs=3, num_samples=2, scheduler="none",
                    search_alg="random", max_concurrent_trials=2, seed=3,
                    search_space={"qsvm": {"n_qubits": {"choice": [2]}},
                                  # circuits are searched like any option, parts by dotted key
                                  "g6": {"learning_rate": {"loguniform": [0.005, 0.1]},
                                         "circuit": {"choice": ["hardware_efficient"]},
                                         "circuit.reupload": {"choice": [True]}}})


@pytest.fixture(scope="module")
def ray_session():
    import ray

    cluster.connect(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return run_study(STUDY, results_dir=results, verbose=0)


def ledger_lines(result, storage=None) -> list[dict]:
    """One line per (scoring, fold): a trial scored twice shows its folds twice."""
    records = ScoringRecords(storage or result.directory / "tune").scorings()
    return [{"trial_id": record["trial_id"], "time": record["time"], **fold} for record in records
            for fold in record["folds"]]


def test_every_trial_of_every_generation_is_scored_on_every_fold_once(sweep):
    trials = sweep.trials
    assert Counter(trials["generation"]) == {"g0": 2, "g6": 2, "qsvm": 2}
    assert set(trials["status"]) == {"finished"}
    for fold_metrics in trials["fold_metrics"]:
        assert len(json.loads(fold_metrics)) == STUDY.folds
    scored = Counter((line["trial_id"], line["fold"]) for line in ledger_lines(sweep))
    assert set(scored.values()) == {1}
    assert {trial for trial, _ in scored} == set(trials["trial_id"])
    # The sampled values reached the models: two trials of a generation differ.
    g6 = trials[trials["generation"] == "g6"]
    assert g6["config.learning_rate"].nunique() == 2
    assert set(g6["config.circuit"]) == {"hardware_efficient"} and set(g6["config.circuit.reupload"]) == {True}


def test_finished_trials_keep_only_their_last_checkpoint_and_a_scored_record(sweep):
    # Trials keep every epoch checkpoint while their generation runs (a killed driver can
    # always resume); then a finished trial keeps its last, which holds its final scores.
    tune_dir = sweep.directory / "tune"
    for generation in ("g0", "g6"):
        trial_dirs = list((tune_dir / generation).glob("train_folds_*"))
        assert len(trial_dirs) == 2
        for trial_dir in trial_dirs:
            checkpoints = list(trial_dir.glob("checkpoint_*"))
            assert len(checkpoints) == 1, trial_dir
            state = torch.load(checkpoints[0] / FOLD_STATE_FILE, weights_only=True)
            assert "final" in state
    scored = {path.stem for path in (tune_dir / "scored").glob("*.json")}
    assert scored == set(sweep.trials["trial_id"])


def test_files_are_written_and_parquet_round_trips(sweep):
    directory = sweep.directory
    for name in ("leaderboard.csv", "leaderboard.md", "trials.parquet", "study.json", "plots/metric_by_model.png"):
        assert (directory / name).is_file(), name
    assert list(directory.glob("plots/balanced_accuracy_vs_*.png"))
    assert len(pd.read_parquet(directory / "trials.parquet")) == len(sweep.trials)
    board = pd.read_csv(directory / "leaderboard.csv")
    assert set(board["model"]) == {"g0", "g6", "qsvm", "baseline:logreg", "baseline:svc", "baseline:random_forest"}
    assert list(board["rank"]) == list(range(1, len(board) + 1))
    scores = board["balanced_accuracy"].to_numpy()
    assert np.all(scores[:-1] >= scores[1:])  # best first
    markdown = (directory / "leaderboard.md").read_text()
    assert "same folds" in markdown and "± " in markdown


def test_baselines_ran_on_the_studys_folds(sweep):
    data = load_dataset("iris", task="binary")
    splits = fold_splits(data.labels, STUDY.folds, STUDY.seed)
    expected = run_baselines(data, splits, ["random_forest"], STUDY.seed)
    row = sweep.leaderboard.set_index("model").loc["baseline:random_forest"]
    assert row["balanced_accuracy"] == pytest.approx(expected["random_forest"]["mean"]["balanced_accuracy"])


def test_the_leaderboard_row_is_the_generations_best_trial(sweep):
    for generation in ("g0", "g6", "qsvm"):
        group = sweep.trials[sweep.trials["generation"] == generation]
        row = sweep.leaderboard.set_index("model").loc[generation]
        assert row["balanced_accuracy"] == group["balanced_accuracy"].max()
        assert row["trials"] == 2


def test_best_checkpoint_is_the_best_family_refitted_and_loads_without_pickle(sweep):
    model = load_model(sweep.best_checkpoint)
    best_family = sweep.leaderboard[sweep.leaderboard["kind"] != "baseline"].iloc[0]["model"]
    assert model.metadata_["generation"] == best_family  # a generation or a kernel family alike
    data = load_dataset("iris", task="binary")
    probabilities = model.predict_proba(data.features)
    assert probabilities.shape == (data.n_samples, 2)
    assert set(model.classes_) == set(data.class_names)  # serves class names
    assert model.metadata_["metrics"]["study"] == "t_sweep"


def test_resume_of_a_finished_study_reruns_nothing(sweep):
    before = ledger_lines(sweep)
    again = run_study(STUDY, results_dir=sweep.directory.parent, resume=True, verbose=0)
    assert ledger_lines(again) == before
    assert sorted(again.trials["trial_id"]) == sorted(sweep.trials["trial_id"])


class RunningTrials:
    """A Tune callback that counts the trials running at once (on the driver), and the
    processes that ran them."""

    def __init__(self):
        from ray.tune import Callback

        outer = self
        self.running, self.most, self.processes = set(), 0, set()

        class Counter_(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                outer.running.add(trial.trial_id)
                outer.most = max(outer.most, len(outer.running))

            def on_trial_result(self, iteration, trials, trial, result, **info):
                outer.processes.add(result["pid"])

            def on_trial_complete(self, iteration, trials, trial, **info):
                outer.running.discard(trial.trial_id)

            on_trial_error = on_trial_complete

        self.callback = Counter_()


# Optuna (the default) in the default run; random and grid (their own limiter) with -m slow.
@pytest.mark.parametrize("search_alg", [pytest.param("random", marks=pytest.mark.slow),
                                        pytest.param("grid", marks=pytest.mark.slow), "optuna"])
def test_max_concurrent_trials_holds_for_every_search_algorithm(ray_session, tmp_path, search_alg):
    # Two CPUs and one CPU a trial: without the limit, two trials run at once.
    kind = "grid" if search_alg == "grid" else "choice"
    # Three configs in every mode: g0's other discrete defaults pinned to one value each.
    space = {"learning_rate": {kind: [0.01, 0.02, 0.03]}, "batch_size": {kind: [16]}, "hidden_units": {kind: [8]}}
    study = StudyConfig(name=f"t_concurrency_{search_alg}", dataset={"name": "iris"}, generations=["g0"],
                        folds=2, epochs=4, num_samples=1 if search_alg == "grid" else 3, scheduler="none",
                        search_alg=search_alg, max_concurrent_trials=1, seed=0, search_space={"g0": space})
    observer = RunningTrials()
    result = run_study(study, results_dir=tmp_path, verbose=0, callbacks=[observer.callback])
    assert len(result.trials) == 3 and set(result.trials["status"]) == {"finished"}
    assert observer.most == 1
    # One after another in one process: Tune reuses the trial actor rather than paying start-up per trial.
    assert len(observer.processes) == 1, observer.processes
    # One Tune iteration per epoch: the final scores ride on the last epoch's report.
    assert (result.trials["iterations"] == result.trials["epochs"]).all()


def test_resume_without_an_earlier_run_and_missing_qpu_are_named(ray_session, tmp_path):
    with pytest.raises(ConfigError, match="--resume: no earlier run of study 't_sweep'"):
        run_study(STUDY, results_dir=tmp_path, resume=True, verbose=0)
    greedy = StudyConfig(**{**STUDY.model_dump(), "resources_per_trial": {"cpu": 1, "qpu": 99}})
    with pytest.raises(ConfigError, match=r"resources_per_trial.qpu = 99.0, but the cluster has 4.0 QPU"):
        run_study(greedy, results_dir=tmp_path, verbose=0)


def test_studies_share_storage_without_mixing_and_user_data_is_never_deleted(ray_session, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "notes.txt").write_text("the user's own file")
    tiny = {"dataset": {"name": "iris"}, "generations": ["g0"], "folds": 2, "epochs": 1, "num_samples": 1,
            "scheduler": "none", "search_alg": "random", "baselines": ["logreg"]}
    for name in ("t_share_a", "t_share_b"):
        result = run_study(StudyConfig(name=name, **tiny), results_dir=tmp_path / "results", storage=str(storage),
                           verbose=0)
        assert list(result.trials["status"]) == ["finished"]
    assert sorted(path.name for path in storage.iterdir()) == ["notes.txt", "t_share_a", "t_share_b"]
    assert (storage / "notes.txt").read_text() == "the user's own file"
    # A directory of that name that hqray did not create is neither deleted nor reused.
    (storage / "t_share_c").mkdir()
    (storage / "t_share_c" / "data.parquet").write_text("precious")
    with pytest.raises(ConfigError, match="hqray did not create it for the sweep storage 't_share_c'"):
        run_study(StudyConfig(name="t_share_c", **tiny), results_dir=tmp_path / "results", storage=str(storage),
                  verbose=0)
    assert (storage / "t_share_c" / "data.parquet").read_text() == "precious"
    # Nor a results directory holding the user's files, unless overwrite is asked for.
    (tmp_path / "results" / "t_share_c").mkdir()
    (tmp_path / "results" / "t_share_c" / "report.pdf").write_text("pdf")
    with pytest.raises(ConfigError, match=r"holds files hqray did not write \(report.pdf\)"):
        run_study(StudyConfig(name="t_share_c", **tiny), results_dir=tmp_path / "results", verbose=0)
    # Remote storage (a URI) is never deleted: a fresh run over an earlier one is refused.
    remote = f"file://{tmp_path / 'remote'}"
    result = run_study(StudyConfig(name="t_share_a", **tiny), results_dir=tmp_path / "results", storage=remote,
                       verbose=0)
    # The scoring ledger works there too: one scoring of each fold of the one trial.
    lines = ledger_lines(result, storage=f"{remote}/t_share_a")
    assert sorted(line["fold"] for line in lines) == [0, 1]
    assert {line["trial_id"] for line in lines} == set(result.trials["trial_id"])
    with pytest.raises(ConfigError, match="already holds a run of study 't_share_a'.*--resume"):
        run_study(StudyConfig(name="t_share_a", **tiny), results_dir=tmp_path / "results", storage=remote, verbose=0)


def test_smoke_test_shrinks_the_study_and_subsamples_rows(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    study = StudyConfig(name="t_smoke", dataset={"name": "breast_cancer"}, generations=["g9"], folds=5,
                        epochs=30, num_samples=4, metric="roc_auc", search_alg="optuna", scheduler="asha")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_study(study, results_dir=tmp_path, smoke_test=True, verbose=0, mlflow=uri)
    recorded = json.loads((result.directory / "study.json").read_text())
    assert (recorded["folds"], recorded["epochs"], recorded["num_samples"], recorded["rows"]) == (2, 2, 1, 240)
    assert len(result.trials) == 1 and result.trials["epochs"].iloc[0] <= 2
    assert "Smoke test" in result.markdown and "roc_auc" in result.markdown
    assert_tracked_in_mlflow(result, uri)


def assert_tracked_in_mlflow(result, uri: str) -> None:
    """The study is a parent run with the leaderboard and best checkpoint; each trial a child
    run with its config and one value per epoch."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from hqray.training.tracking import metric_key

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[result.study.name], output_format="list")
    parents = [r for r in runs if r.data.tags.get("hqray.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(runs) == 1 + len(result.trials)
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.params["smoke_test"] == "True"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    best = result.leaderboard.iloc[0]
    assert parent.data.metrics[f"{metric_key(best['model'])}.roc_auc"] == pytest.approx(best["roc_auc"])
    client = MlflowClient(tracking_uri=uri)
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.md", "leaderboard.csv", "trials.parquet", "plots", "best_checkpoint"} <= artifacts
    checkpoint = {f.path for f in client.list_artifacts(parent.info.run_id, "best_checkpoint")}
    assert checkpoint == {f"best_checkpoint/{n}" for n in ("weights.pt", "preprocessing.npz", "metadata.json")}
    for child in children:
        assert child.data.params["generation"] == "g9"
        epochs = client.get_metric_history(child.info.run_id, "roc_auc")
        assert len(epochs) == result.trials["iterations"].iloc[0] >= 1


def test_optuna_and_asha_run_a_real_search(ray_session, tmp_path):
    study = StudyConfig(name="t_asha", dataset={"name": "iris", "options": {"task": "binary"}},
                        generations=["g0"], folds=2, epochs=9, num_samples=4, scheduler="asha",
                        search_alg="optuna", max_concurrent_trials=2)
    result = run_study(study, results_dir=tmp_path, verbose=0)
    assert len(result.trials) == 4
    assert (result.trials["status"] == "finished").any()
    assert set(result.trials["status"]) <= {"finished", "stopped early"}


def _board(hybrid: float, baseline: float) -> pd.DataFrame:
    trials = pd.DataFrame([{"generation": "g6", "trial_id": "a", "status": "finished", "balanced_accuracy": hybrid,
                            "balanced_accuracy_std": 0.01, "config.n_layers": 2, "config": '{"n_layers": 2}'}])
    baselines = {"svc": {"mean": {"balanced_accuracy": baseline}, "std": {"balanced_accuracy": 0.02}}}
    return build_leaderboard(trials, baselines, "balanced_accuracy", "max", {"g6": 1.0}, {"g6": "variational"}, 0.5)


def test_when_the_classical_model_wins_the_leaderboard_says_so():
    board = _board(hybrid=0.81, baseline=0.90)
    assert list(board["model"]) == ["baseline:svc", "g6"]
    assert comparison(board, "balanced_accuracy", "max") == [
        "Best quantum model `g6` (0.810) is behind the best classical model `baseline:svc` (0.900) by 0.090 "
        "balanced_accuracy; both on the same folds."]
    assert "ahead of" in comparison(_board(0.95, 0.90), "balanced_accuracy", "max")[0]


def test_a_trial_whose_worker_dies_is_retried_from_its_checkpoint(ray_session, tmp_path):
    """The trial's worker process is SIGKILLed mid-trial; FailureConfig retries it from the
    last epoch checkpoint and its folds are still scored exactly once."""
    import os
    import signal
    import threading

    study = StudyConfig(name="t_retry", dataset={"name": "iris", "options": {"task": "binary"}},
                        # Epochs enough for seconds of training: the kill must land mid-trial.
                        generations=["g6"], folds=2, epochs=200, num_samples=1, scheduler="none",
                        search_alg="random", baselines=["logreg"],
                        search_space={"g6": {"patience": {"choice": [100]}}})
    killed = []

    def kill_worker_after_a_few_epochs():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for result_file in (tmp_path / "t_retry" / "tune" / "g6").glob("train_folds_*/result.json"):
                lines = result_file.read_text().splitlines()
                if len(lines) >= 3:
                    pid = json.loads(lines[-1])["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, len(lines)))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker_after_a_few_epochs, daemon=True)
    killer.start()
    result = run_study(study, results_dir=tmp_path, verbose=0)
    killer.join()
    assert killed, "the trial finished before its worker could be killed"
    assert list(result.trials["status"]) == ["finished"]
    progress = pd.read_csv(next((tmp_path / "t_retry" / "tune" / "g6").glob("train_folds_*/progress.csv")))
    epochs = progress[~progress["final"].astype(bool)]
    assert epochs["pid"].nunique() == 2  # the killed worker and its replacement
    resumed_at = epochs[epochs["pid"] != killed[0][0]]["epoch"].iloc[0]
    # The last epoch is reported once, with the final scores.
    assert resumed_at > 1 and epochs["epoch"].iloc[-1] == study.epochs - 1
    assert progress["epoch"].iloc[-1] == study.epochs and bool(progress["final"].iloc[-1])
    assert Counter(line["fold"] for line in ledger_lines(result)) == {0: 1, 1: 1}


def test_the_time_budget_stops_the_study_and_says_what_did_not_run(ray_session, tmp_path):
    study = StudyConfig(name="t_budget", dataset={"name": "iris", "options": {"task": "binary"}},
                        generations=["g0", "g6"], folds=2, epochs=500, num_samples=1, scheduler="none",
                        search_alg="random", time_budget_s=4, baselines=["logreg"],
                        search_space={"g0": {"patience": {"choice": [1000]}}})
    result = run_study(study, results_dir=tmp_path, verbose=0)
    assert list(result.trials["generation"]) == ["g0"]
    assert result.trials["status"].iloc[0] != "finished"  # cut by the budget, and the table says so
    assert "`g6` not run: the study's time budget (4.0 s) was spent." in result.markdown
    row = result.leaderboard.set_index("model").loc["g0"]
    assert row["finished"] == 0 and np.isnan(row["balanced_accuracy"])


def test_g7_trials_run_their_quantum_layer_on_the_pool(ray_session, tmp_path):
    """g7 is validated without Ray and its trial starts a QuantumPool on the CPUs left free."""
    import ray

    # Trials of earlier tests release their placement groups asynchronously.
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert ray.available_resources().get("CPU", 0) == 2, [
        (group["bundles"], group["state"], group.get("stats")) for group in ray.util.placement_group_table().values()]
    study = StudyConfig(name="t_g7", dataset={"name": "iris", "options": {"task": "binary"}},
                        generations=["g7"], folds=2, epochs=2, num_samples=1, max_concurrent_trials=1,
                        scheduler="none", search_alg="random", baselines=["logreg"])
    result = run_study(study, results_dir=tmp_path, verbose=0)
    assert list(result.trials["status"]) == ["finished"], result.trials["error"].tolist()
    assert load_model(result.best_checkpoint).config_.quantum_device == "pool"
    # The refit's pool workers are gone: the cluster's CPUs are free for what comes next.
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert ray.available_resources().get("CPU", 0) == 2, [
        (group["bundles"], group["state"], group.get("stats")) for group in ray.util.placement_group_table().values()]


# A family as a user's script defines it: functions and options of a module no worker can
# import (as ``__main__`` is), so it reaches the trials with the study's settings.
USER_FAMILY_SCRIPT = """
from pydantic import BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression
from hqray.training.families import ModelFamily, register_family

class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = Field(1.0, gt=0)

register_family(ModelFamily(name="t_user_logreg", kind="classical", title="logistic regression",
                            description="a user's family", options=Options,
                            search_space={"C": {"loguniform": [0.1, 10.0]}},
                            estimator=lambda settings, seed: LogisticRegression(C=settings["C"], random_state=seed)))
"""


def test_every_generation_and_family_runs_as_a_tune_trial(ray_session, tmp_path):
    from hqray.training.families import list_families

    exec(compile(USER_FAMILY_SCRIPT, "t_user_script.py", "exec"), {"__name__": "t_user_script"})
    # Every estimator family and a generation of the paper's (the study fixture runs g0 and g6;
    # each generation's config trains in tests/models without Tune; g7 has its own test above).
    names = ["dressed_quantum_circuit", *[family.name for family in list_families() if not family.trains_by_epoch]]
    assert {"qsvm", "iqp_kernel", "projected_kernel", "separable_kernel", "quantum_kitchen_sinks",
            "t_user_logreg"} <= set(names)
    study = StudyConfig(name="t_all", dataset={"name": "iris", "options": {"task": "binary"}},
                        generations=names, folds=2, search_space={"qsvm": {"n_qubits": {"choice": [2]}}},
                        epochs=1, num_samples=1, scheduler="none", search_alg="random", metric="roc_auc",
                        baselines=["logreg"])
    result = run_study(study, results_dir=tmp_path, smoke_test=True, verbose=0)
    statuses = dict(zip(result.trials["generation"], result.trials["status"], strict=True))
    assert statuses == {name: "finished" for name in names}, result.trials["error"].tolist()
    assert result.trials["roc_auc"].between(0.0, 1.0).all()
    kinds = result.leaderboard.set_index("model")["kind"]
    assert (kinds["iqp_kernel"], kinds["t_user_logreg"], kinds["dressed_quantum_circuit"]) == (
        "kernel", "classical", "variational")
    assert load_model(result.best_checkpoint).metadata_["generation"] in names  # any kind is refitted
    # Each row's settings as its trial got them: qsvm's n_qubits stays the integer 2, though
    # the other families' trials leave that column empty (NaN makes it a float column).
    for row in result.leaderboard.itertuples():
        if not row.model.startswith("baseline:"):
            assert get_family(row.model).validate(json.loads(row.config)), row.model
    assert json.loads(result.leaderboard.set_index("model").loc["qsvm", "config"])["n_qubits"] == 2


def test_a_trial_scored_exactly_the_studys_folds(sweep):
    """Re-running a finished trial's config in this process on fold_splits(seed) reproduces
    its per-fold scores: the trial trained and scored on those folds."""
    import torch

    from hqray.training import LockstepFolds
    from hqray.tune.trainable import trial_config

    g0 = sweep.trials[sweep.trials["generation"] == "g0"]
    trial = g0.loc[g0["balanced_accuracy"].idxmin()]
    assert trial["balanced_accuracy"] < 1.0  # some rows misclassified: the per-fold scores tell folds apart
    params = {k[len("config."):]: v.item() if hasattr(v, "item") else v for k, v in trial.items()
              if k.startswith("config.") and not pd.isna(v)}
    data = load_dataset("iris", task="binary")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trial (1 CPU)
    try:
        folds = LockstepFolds(data, trial_config("g0", params, STUDY.epochs, STUDY.seed),
                              fold_splits(data.labels, STUDY.folds, STUDY.seed))
        while not folds.stopped:
            folds.step()
        scores = folds.finish().folds
    finally:
        torch.set_num_threads(threads)
    recorded = json.loads(trial["fold_metrics"])
    assert [f["balanced_accuracy"] for f in scores] == pytest.approx([f["balanced_accuracy"] for f in recorded])
    assert [f["roc_auc"] for f in scores] == pytest.approx([f["roc_auc"] for f in recorded], abs=1e-6)


def test_running_trials_lose_only_checkpoints_no_snapshot_can_name(tmp_path):
    """Checkpoints older than the newest one past the lag go; that one and newer stay."""
    import os
    from types import SimpleNamespace

    from ray import tune

    from hqray.tune.runner import PruneSupersededCheckpoints

    now = time.time()
    ages = [50, 40, 30, 5, 2, 1]  # seconds since each checkpoint was written
    for index, age in enumerate(ages):
        directory = tmp_path / f"checkpoint_{index:06d}"
        directory.mkdir()
        (directory / "folds.pt").write_bytes(b"state")
        os.utime(directory, (now - age, now - age))
    latest = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000005"))
    PruneSupersededCheckpoints(lag_s=10).on_checkpoint(0, [], SimpleNamespace(path=str(tmp_path)), latest)
    assert sorted(d.name for d in tmp_path.iterdir()) == [f"checkpoint_{i:06d}" for i in (2, 3, 4, 5)]
