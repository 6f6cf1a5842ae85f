"""The driver of a study is killed mid-run; `hqray sweep --resume` finishes it.

The sweep runs in its own process group (driver, embedded Ray, trial workers), which is
killed with SIGKILL once one trial has been scored and another has checkpointed epochs
but not finished. The resumed run must score every trial's folds exactly once, keep the
trials that had finished, and continue the interrupted trial from its last epoch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

from hqray.tune.scoring import ScoringRecords
from tests.processes import kill_session

# Enough epochs that a trial runs for seconds: the kill waits until a trial's checkpoint is
# old enough to be named by Tune's last experiment snapshot (taken every second).
EPOCHS = 200
STUDY = {
    "name": "t_resume", "dataset": {"name": "iris", "options": {"task": "binary"}},
    # One trial per generation: g0's is scored before the kill, g6's is caught mid-way, and
    # the resumed run must finish g6 without running g0 again.
    "generations": ["g0", "g6"], "folds": 3, "epochs": EPOCHS, "num_samples": 1, "scheduler": "none",
    "search_alg": "random", "max_concurrent_trials": 1, "baselines": ["logreg"],
    # No early stopping, so every trial runs all its epochs and can be caught mid-way.
    "search_space": {"g0": {"patience": {"choice": [100]}}, "g6": {"patience": {"choice": [100]}}},
}


def sweep_command(study_path: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hqray", "sweep", str(study_path), "--results-dir", str(results),
            "--num-cpus", "2", *extra]


def ledger(results: Path) -> list[dict]:
    """One line per (scoring, fold): a trial scored twice shows its folds twice."""
    records = ScoringRecords(results / "t_resume" / "tune").scorings()
    return [{"trial_id": record["trial_id"], "time": record["time"], **fold} for record in records
            for fold in record["folds"]]


def interrupted_trial_dirs(results: Path, min_age_s: float = 0.0) -> list[Path]:
    """Trials with an epoch checkpoint at least ``min_age_s`` old whose folds are not yet scored."""
    scored = {line["trial_id"] for line in ledger(results)}
    return [d for d in (results / "t_resume" / "tune").glob("g*/train_folds_*")
            if _oldest_checkpoint_age(d) >= min_age_s and not any(trial in d.name for trial in scored)]


def _oldest_checkpoint_age(trial_dir: Path) -> float:
    """Seconds since the trial's first remaining checkpoint was written (-1: none)."""
    ages = []
    for checkpoint in trial_dir.glob("checkpoint_*"):
        try:
            ages.append(time.time() - checkpoint.stat().st_mtime)
        except FileNotFoundError:  # pruned as its trial finished
            pass
    return max(ages, default=-1.0)


def test_killed_driver_resumes_and_scores_every_fold_exactly_once(tmp_path):
    study_path = tmp_path / "study.yaml"
    study_path.write_text(yaml.safe_dump(STUDY))
    results = tmp_path / "results"
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(sweep_command(study_path, results), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            # Tune snapshots the experiment every SNAPSHOT_SECONDS (1 s): a checkpoint 3 s
            # old is named by the last snapshot, so the resumed trial can continue from it.
            if ledger(results) and interrupted_trial_dirs(results, min_age_s=3.0):
                break
            time.sleep(0.1)
        assert process.poll() is None, "the study finished before it could be interrupted"
        assert ledger(results), (tmp_path / "first.log").read_text()[-3000:]
    finally:
        kill_session(process)
    killed_at = time.time()
    scored_before = {line["trial_id"] for line in ledger(results)}
    # g0 finished before the kill: its wall seconds were kept for the resumed run to add to.
    spent_on_g0 = json.loads((results / "t_resume" / "generation_seconds.json").read_text())["g0"]
    assert spent_on_g0 > 0
    interrupted = interrupted_trial_dirs(results)
    assert interrupted

    resumed = subprocess.run(sweep_command(study_path, results, "--resume"), capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    trials = pd.read_parquet(results / "t_resume" / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) == {"finished"}, trials[["trial_id", "status", "error"]]
    lines = ledger(results)
    scored = Counter((line["trial_id"], line["fold"]) for line in lines)
    assert set(scored) == {(trial, fold) for trial in trials["trial_id"] for fold in range(3)}
    assert set(scored.values()) == {1}, scored
    # Trials scored before the kill were not run again.
    assert all(line["time"] < killed_at for line in lines if line["trial_id"] in scored_before)
    # The interrupted trial continued from its checkpoint: its epochs ran in both
    # processes, and the resumed one did not start again from epoch 1.
    for trial_dir in interrupted:
        progress = pd.read_csv(trial_dir / "progress.csv")
        epochs = progress[~progress["final"].astype(bool)]
        first_pid = epochs["pid"].iloc[0]
        after = epochs[epochs["pid"] != first_pid]
        assert len(after) and after["epoch"].iloc[0] > 1, epochs[["epoch", "pid"]]
        # The last epoch is reported once, with the final scores.
        assert epochs["epoch"].iloc[-1] == EPOCHS - 1 and progress["epoch"].iloc[-1] == EPOCHS
    assert "t_resume" in resumed.stdout and "leaderboard" in resumed.stdout
    # The leaderboard's wall time is what g0's trials took, not the seconds of restoring them.
    board = pd.read_csv(results / "t_resume" / "leaderboard.csv").set_index("model")
    assert board.loc["g0", "wall_s"] >= round(spent_on_g0, 1)
