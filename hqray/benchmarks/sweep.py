"""`hqray bench sweep`: a study's trials per hour on 1 CPU, 2 CPUs and a loopback cluster of nodes.

The same study runs under each setup from a fresh Ray: an embedded local Ray with 1 CPU, one
with 2 CPUs, and a multi-node cluster on loopback (``ray.cluster_utils.Cluster``: a head node
with no CPUs for the driver and ``nodes`` worker nodes of 1 CPU each). Trials/hour is the
study's trials over its wall time, Ray's and Tune's overheads included. Every trial reads the
dataset from the object store (the runner passes it with ``tune.with_parameters``, so it is
put there once) and up to one trial per CPU runs at a time (``max_concurrent_trials`` is the
setup's CPUs). The nodes of a loopback cluster share this machine's cores: with fewer cores
than nodes it measures what spreading trials over nodes costs, not added capacity, so every
row records the machine's cores.

**Example** (the grid in seconds, as CI runs it)

>>> rows = run_sweep_benchmark(quick=True, setups=("1 cpu",), log=lambda line: None)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from hqray.benchmarks.common import machine_info
from hqray.errors import ConfigError
from hqray.tune.study import StudyConfig

__all__ = ["SETUPS", "benchmark_study", "run_sweep_benchmark"]

SETUPS = ("1 cpu", "2 cpus", "3 nodes")


def benchmark_study(max_concurrent_trials: int, quick: bool = False) -> StudyConfig:
    """Three of the benchmark paper's families on its linearly separable data, over small grids.

    Two variational families (trained by epochs, early-stoppable) and a kernel family (one fit
    per fold): 12 trials of 5 folds (``quick``: 3 trials, 2 folds, 2 epochs).
    """
    rates = [0.01] if quick else [0.01, 0.1]
    layers = [1] if quick else [1, 3]
    return StudyConfig(
        name="bench_sweep",
        dataset={"name": "linearly_separable", "options": {"n_samples": 120 if quick else 300, "n_features": 4}},
        generations=["dressed_quantum_circuit", "separable_variational", "iqp_kernel"],
        baselines=["logreg"], metric="accuracy", folds=2 if quick else 5, search_alg="grid", scheduler="none",
        num_samples=1, epochs=2 if quick else 10, max_concurrent_trials=max_concurrent_trials,
        search_space={
            "dressed_quantum_circuit": {"learning_rate": {"grid": rates}, "n_layers": {"grid": layers}},
            "separable_variational": {"learning_rate": {"grid": rates}, "n_layers": {"grid": layers}},
            "iqp_kernel": {"C": {"grid": [1.0] if quick else [0.1, 1.0, 10.0, 100.0]}, "repeats": {"grid": [1]}},
        })


def _start(setup: str) -> tuple[int, Any]:
    """Starts the setup's Ray; returns its CPUs and the loopback cluster to shut down (or None)."""
    from hqray.cluster import connect

    if setup.endswith("cpu") or setup.endswith("cpus"):
        cpus = int(setup.split()[0])
        connect(num_cpus=cpus, include_dashboard=False)
        return cpus, None
    if not setup.endswith("nodes"):
        raise ConfigError(f"unknown setup {setup!r}; expected 'N cpu(s)' or 'N nodes'")
    from ray.cluster_utils import Cluster

    from hqray.cluster.loopback import enter_loopback_mode

    nodes = int(setup.split()[0])
    enter_loopback_mode()  # else Ray advertises this machine's address instead of 127.0.0.1
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1"})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1, resources={"QPU": 2.0}, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    connect(address=cluster.address)
    return nodes, cluster


def _run_setup(setup: str, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import ray

    from hqray.tune import run_study

    cpus, cluster = _start(setup)
    study = benchmark_study(max_concurrent_trials=cpus, quick=quick)
    try:
        with tempfile.TemporaryDirectory(prefix="hqray-bench-sweep-") as results:
            started = time.perf_counter()
            result = run_study(study, results_dir=results, verbose=0)
            seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    trials = len(result.trials)
    row = {"setup": setup, "nodes": 1 if cluster is None else cpus, "cpus": cpus,
           "machine_cores": os.cpu_count(), "trials": trials, "seconds": round(seconds, 1),
           "trials_per_hour": round(trials * 3600 / seconds, 1)}
    log(f"{setup}: {trials} trials in {seconds:.0f} s = {row['trials_per_hour']:.0f} trials/hour")
    return row


def run_sweep_benchmark(quick: bool = False, setups: Sequence[str] = SETUPS,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs :func:`benchmark_study` under each setup; rows plus each setup's speed-up over the first."""
    info = machine_info()
    log(f"machine: {info}")
    rows = [_run_setup(setup, quick, log) for setup in setups]
    base = rows[0]["trials_per_hour"]
    for row in rows:
        row["speedup_vs_first"] = round(row["trials_per_hour"] / base, 2)
    study = benchmark_study(1, quick).model_dump(exclude={"max_concurrent_trials"})  # each setup: its CPUs
    return {"machine": info, "study": study, "rows": rows}
