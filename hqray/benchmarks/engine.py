"""`hqray bench engine`: forward + backward throughput of the engine against PennyLane.

All methods run in one process on the same inputs and weights. Slow methods are timed on
a sub-batch that fits a time budget and extrapolated; such rows say so
(``extrapolated_from``). Throughput is ``batch / (best time of forward + backward)``.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable

import torch

from hqray.benchmarks.common import PeakMemory, best_time, machine_info
from hqray.quantum import CircuitSpec, execute, plan
from hqray.quantum.reference import build_qnode, stack_outputs

__all__ = ["run_engine_benchmark", "FULL_GRID", "QUICK_GRID"]

# (n_qubits, layers, batches)
FULL_GRID = [(n, layers, (32, 256, 1000, 100_000) if n <= 8 else (32, 256, 1000))
             for n in (4, 8, 12, 16) for layers in (2, 6)]
QUICK_GRID = [(2, 1, (16,)), (4, 2, (64,))]
TIME_BUDGET_S = 6.0  # per method and configuration


def _forward_backward(method: str, spec: CircuitSpec) -> Callable[[torch.Tensor, torch.Tensor], None]:
    if method.startswith("hqray-"):
        strategy = method.removeprefix("hqray-")

        def run(inputs, weights):
            execute(spec, inputs, weights, strategy=strategy).sum().backward()
        return run
    if method == "default.qubit-broadcast":
        qnode = build_qnode(spec.model_copy(update={"strategy": "device"}), "default.qubit", "backprop")
    elif method == "lightning.qubit-adjoint":
        qnode = build_qnode(spec.model_copy(update={"strategy": "device"}), "lightning.qubit", "adjoint")
    elif method == "qnode-per-sample":
        qnode = build_qnode(spec.model_copy(update={"strategy": "device"}), "default.qubit", "backprop")

        def run(inputs, weights):
            outputs = [torch.stack(list(qnode(row, weights))) for row in inputs]  # the slow pattern
            torch.stack(outputs).sum().backward()
        return run
    else:
        raise ValueError(method)

    def run(inputs, weights):
        stack_outputs(spec, qnode(inputs, weights)).sum().backward()
    return run


def _measure(method: str, spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor,
             budget: float) -> dict:
    run = _forward_backward(method, spec)
    batch = inputs.shape[0]
    probe = min(batch, 16 if method in ("qnode-per-sample", "lightning.qubit-adjoint") else 32)

    def call(rows: int) -> None:
        x = inputs[:rows].detach().clone().requires_grad_(True)
        w = weights.detach().clone().requires_grad_(True)
        run(x, w)

    probe_time = best_time(lambda: call(probe), 1)  # also the warm-up
    rows = batch
    if probe_time * batch / probe > budget:
        rows = max(probe, min(batch, int(budget / probe_time * probe / 2)))
    repeats = 3 if probe_time * rows / probe < budget / 6 else 1
    gc.collect()
    memory = PeakMemory()
    with memory.measure():
        seconds = best_time(lambda: call(rows), repeats)
    return {"samples_per_s": rows / seconds, "peak_mb": round(memory.peak_mb, 1),
            "extrapolated_from": rows if rows < batch else None,
            "seconds_full_batch": seconds * batch / rows}


def run_engine_benchmark(quick: bool = False, threads: int | None = None,
                         log: Callable[[str], None] = print) -> list[dict]:
    """Runs the grid; returns rows with n_qubits, layers, batch, method, samples_per_s, peak_mb."""
    if threads:
        torch.set_num_threads(threads)
    info = machine_info()
    log(f"machine: {info}")
    grid = QUICK_GRID if quick else FULL_GRID
    budget = 1.0 if quick else TIME_BUDGET_S
    rows = []
    generator = torch.Generator().manual_seed(0)
    for n_qubits, layers, batches in grid:
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=layers)
        weights = torch.rand(spec.weight_shape, generator=generator) * 6.28
        for batch in batches:
            inputs = torch.rand(batch, n_qubits, generator=generator) * 3.14
            methods = ["hqray-auto", "hqray-folded", "hqray-statevector", "default.qubit-broadcast",
                       "lightning.qubit-adjoint", "qnode-per-sample"]
            if n_qubits > 10:  # a 4^n unitary: far slower than the state vector (measured once)
                methods.remove("hqray-folded")
            if batch > 1000:  # per-sample and lightning patterns are covered at smaller batches
                methods = [m for m in methods if m not in ("qnode-per-sample", "lightning.qubit-adjoint")]
            results = {}
            for method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = _measure(method, spec, inputs, weights, budget)
                row = {"n_qubits": n_qubits, "layers": layers, "batch": batch, "method": method,
                       **result}
                if method == "hqray-auto":
                    row["strategy"] = plan(spec, batch).strategy
                results[method] = row
                rows.append(row)
            auto = results["hqray-auto"]["samples_per_s"]
            parts = []
            for method, row in results.items():
                note = f" (extrapolated from {row['extrapolated_from']})" if row["extrapolated_from"] else ""
                ratio = "" if method == "hqray-auto" else f" auto x{auto / row['samples_per_s']:.1f}"
                parts.append(f"{method} {row['samples_per_s']:,.0f}/s {row['peak_mb']:.0f}MB{ratio}{note}")
            strategy = results["hqray-auto"]["strategy"]
            log(f"n={n_qubits} L={layers} B={batch} (auto: {strategy}): " + "; ".join(parts))
    for row in rows:
        row["machine"] = info
    return rows
