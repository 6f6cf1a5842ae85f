"""`hqray bench train`: iris binary g6 5-fold end to end, engine vs the plain PennyLane layer."""

from __future__ import annotations

import time
from collections.abc import Callable

from hqray.benchmarks.common import machine_info
from hqray.data import load_dataset
from hqray.models import make_config
from hqray.training import cross_validate

__all__ = ["run_train_benchmark"]


def run_train_benchmark(log: Callable[[str], None] = print) -> list[dict]:
    """Times the same 5-fold cross-validation with the engine and with default.qubit."""
    info = machine_info()
    log(f"machine: {info}")
    data = load_dataset("iris", task="binary")
    # Untimed warm-up: first-use imports (torch.optim pulls in torch._dynamo) and caches.
    for device in ("engine", "default.qubit"):
        cross_validate(data, make_config("g6", quantum_device=device, epochs=1), folds=2, baselines=())
    rows = []
    for method, device in (("hqray-engine", "engine"), ("pennylane-default.qubit", "default.qubit")):
        config = make_config("g6", quantum_device=device, diff_method="backprop")
        started = time.perf_counter()
        result = cross_validate(data, config, folds=5, seed=0, baselines=())
        seconds = time.perf_counter() - started
        rows.append({"method": method, "seconds": seconds, "accuracy": result.mean["accuracy"],
                     "machine": info})
        log(f"{method}: {seconds:.2f} s, mean accuracy {result.mean['accuracy']:.3f}")
    log(f"speedup engine vs default.qubit: x{rows[1]['seconds'] / rows[0]['seconds']:.1f}")
    return rows
