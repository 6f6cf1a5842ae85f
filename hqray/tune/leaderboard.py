"""The study's tables and plots: every trial, the best trial per generation, the baselines.

Files written to ``results/<study>/``::

    trials.parquet     one row per trial (config values as ``config.<name>``, last metrics)
    leaderboard.csv    one row per generation's best finished trial and per baseline
    leaderboard.md     the same, ``mean ± std``, with the honest comparison spelled out
    plots/             metric per model with error bars; metric against the main hyper-parameters
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from hqray.training.metrics import SCALAR_METRICS

__all__ = ["build_leaderboard", "leaderboard_markdown", "save_sweep_plots", "BASELINE_PREFIX", "KINDS"]

BASELINE_PREFIX = "baseline:"
MAIN_PARAMETERS = ("learning_rate", "n_layers", "batch_size", "n_qubits", "hidden_units", "C", "weight_decay")


KINDS = ("variational", "kernel", "classical", "baseline")  # a family's kind, or a baseline


def build_leaderboard(trials: pd.DataFrame, baselines: dict[str, dict[str, Any]], metric: str, mode: str,
                      generation_seconds: dict[str, float], kinds: dict[str, str],
                      baseline_seconds: float) -> pd.DataFrame:
    """One row per generation (its best finished trial) and per baseline, best first.

    ``kinds`` maps each model family to its kind: ``"variational"``, ``"kernel"`` (quantum)
    or ``"classical"``.

    Generations without a finished trial are listed with their trial count and no scores.
    """
    rows = []
    for generation, group in trials.groupby("generation", sort=False):
        finished = group[group["status"] == "finished"]
        row: dict[str, Any] = {"model": generation, "kind": kinds[generation],
                               "trials": int(len(group)), "finished": int(len(finished)),
                               "wall_s": round(generation_seconds.get(generation, float("nan")), 1)}
        if len(finished):
            scores = finished[metric].astype(float)
            best = finished.loc[scores.idxmax() if mode == "max" else scores.idxmin()]
            for name in SCALAR_METRICS:
                row[name] = best.get(name, math.nan)
                row[f"{name}_std"] = best.get(f"{name}_std", math.nan)
            row["trial_id"] = best["trial_id"]
            row["config"] = best["config"]  # JSON, as the trial got it (see _trial_rows)
        rows.append(row)
    for name, result in baselines.items():
        row = {"model": BASELINE_PREFIX + name, "kind": "baseline", "trials": 1, "finished": 1,
               "wall_s": round(baseline_seconds / max(len(baselines), 1), 1)}
        for metric_name in SCALAR_METRICS:
            row[metric_name] = result["mean"].get(metric_name, math.nan)
            row[f"{metric_name}_std"] = result["std"].get(metric_name, math.nan)
        rows.append(row)
    board = pd.DataFrame(rows)
    if metric not in board:
        board[metric] = math.nan
    board = board.sort_values(metric, ascending=(mode == "min"), na_position="last", kind="stable")
    board.insert(0, "rank", range(1, len(board) + 1))
    return board.reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(mean: Any, std: Any) -> str:
    if _missing(mean):
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if not _missing(std) else f"{mean:.3f}"


def leaderboard_markdown(board: pd.DataFrame, study_name: str, metric: str, mode: str, folds: int,
                         dataset: str, notes: list[str]) -> str:
    """The leaderboard as Markdown, with a sentence on how the quantum models compare."""
    metrics = [m for m in SCALAR_METRICS if m in board and board[m].notna().any()]
    header = ["rank", "model", "kind", *metrics, "trials", "finished", "wall s"]
    lines = [f"# Study `{study_name}`: {dataset}, {folds}-fold CV, ranked by {metric} ({mode})", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in board.iterrows():
        cells = [str(row["rank"]), f"`{row['model']}`", row["kind"],
                 *[_cell(row.get(m), row.get(f"{m}_std")) for m in metrics],
                 str(row["trials"]), str(row["finished"]), f"{row['wall_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *comparison(board, metric, mode), *notes]
    return "\n".join(lines) + "\n"


def comparison(board: pd.DataFrame, metric: str, mode: str) -> list[str]:
    """Sentences comparing the best quantum model with the best classical one, honestly."""
    scored = board[board[metric].notna()]
    quantum = scored[scored["kind"].isin(["variational", "kernel"])]
    classical = scored[scored["kind"].isin(["classical", "baseline"])]
    if quantum.empty or classical.empty:
        return ["No quantum/classical comparison: one side has no finished result."]
    best_quantum, best_classical = quantum.iloc[0], classical.iloc[0]
    gap = float(best_quantum[metric] - best_classical[metric])
    better = gap > 0 if mode == "max" else gap < 0
    verdict = "ahead of" if better else ("level with" if gap == 0 else "behind")
    return [f"Best quantum model `{best_quantum['model']}` ({best_quantum[metric]:.3f}) is {verdict} the best "
            f"classical model `{best_classical['model']}` ({best_classical[metric]:.3f}) by {abs(gap):.3f} "
            f"{metric}; both on the same folds."]


def save_sweep_plots(trials: pd.DataFrame, board: pd.DataFrame, metric: str, directory: str | Path) -> list[Path]:
    """``metric_by_model.png`` and ``<metric>_vs_<parameter>.png``; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    scored = board[board[metric].notna()]
    figure, axis = plt.subplots(figsize=(max(5.0, 0.9 * len(scored) + 2.5), 4.5))
    colors = {"variational": "tab:purple", "kernel": "tab:red", "classical": "tab:blue", "baseline": "tab:gray"}
    axis.bar(scored["model"], scored[metric], yerr=scored[f"{metric}_std"].fillna(0.0), capsize=4,
             color=[colors.get(kind, "tab:green") for kind in scored["kind"]])
    axis.set_ylabel(f"{metric}\nmean ± std over folds")
    axis.set_title("best trial per generation, and baselines (same folds)", fontsize=9)
    axis.tick_params(axis="x", rotation=45)
    from matplotlib.patches import Patch

    axis.legend(handles=[Patch(color=color, label=kind) for kind, color in colors.items()
                         if kind in set(scored["kind"])], fontsize=7, loc="lower right")
    figure.tight_layout()
    written.append(directory / "metric_by_model.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)

    finished = trials[trials["status"] == "finished"]
    for parameter in MAIN_PARAMETERS:
        column = f"config.{parameter}"
        if column not in finished or finished[column].dropna().nunique() < 2:
            continue
        figure, axis = plt.subplots(figsize=(4.5, 3.5))
        for generation, group in finished.groupby("generation"):
            axis.scatter(group[column], group[metric], label=generation, alpha=0.8)
        if parameter in ("learning_rate", "weight_decay", "C"):
            axis.set_xscale("log")
        axis.set_xlabel(parameter)
        axis.set_ylabel(metric)
        axis.legend(fontsize=7)
        figure.tight_layout()
        written.append(directory / f"{metric}_vs_{parameter}.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)
    return written
