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
# On a GPU: batches large enough to fill it, and circuits up to 20 qubits (2^20 amplitudes a row).
CUDA_GRID = [(n, 2, (1000, 100_000)) for n in (4, 8, 12)] + [(16, 2, (1000, 10_000)), (20, 2, (64, 512))]
CPU_ONLY = ("lightning.qubit-adjoint", "qnode-per-sample")  # CPU simulators and the CPU-bound slow pattern
TIME_BUDGET_S = 6.0  # per method and configuration


def _synchronized(run: Callable[[torch.Tensor, torch.Tensor], None],
                  device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """``run`` that returns only when the GPU has finished (CUDA calls return before), with
    the GPU as torch's default device (PennyLane makes its initial state with defaults)."""
    if device.type != "cuda":
        return run

    def synchronized(inputs, weights):
        with torch.device(device):
            run(inputs, weights)
        torch.cuda.synchronize(device)
    return synchronized


def _forward_backward(method: str, spec: CircuitSpec) -> Callable[[torch.Tensor, torch.Tensor], None]:
    if method == "hqray-compiler":  # the same circuit through the tape compiler (any-circuit path)
        from hqray.quantum.circuits import Circuit

        circuit = Circuit(n_qubits=spec.n_qubits, embedding="angle", embedding_options={"rotation": "Y"},
                          ansatz=spec.ansatz, n_layers=spec.n_layers)

        def run(inputs, weights):
            circuit.run(inputs, weights).sum().backward()
        return run
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
    run = _synchronized(_forward_backward(method, spec), inputs.device)
    batch = inputs.shape[0]
    probe = min(batch, 16 if method in ("qnode-per-sample", "lightning.qubit-adjoint") else 32)

    def call(rows: int) -> None:
        x = inputs[:rows].detach().clone().requires_grad_(True)
        w = weights.detach().clone().requires_grad_(True)
        run(x, w)

    if inputs.device.type == "cuda":
        call(probe)  # CUDA context, kernels and cuBLAS handles load on the first call
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


def _measure_on(target: torch.device, method: str, spec: CircuitSpec, inputs: torch.Tensor,
                weights: torch.Tensor, budget: float) -> dict:
    """:func:`_measure`; on a GPU, the peak is the GPU's allocation, and a method that
    fails there (out of memory, a simulator without CUDA support) is a row saying why."""
    if target.type != "cuda":
        return _measure(method, spec, inputs, weights, budget)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(target)
    try:
        result = _measure(method, spec, inputs, weights, budget)
    except Exception as error:  # recorded, not hidden: the row says what failed
        return {"samples_per_s": float("nan"), "peak_mb": float("nan"), "extrapolated_from": None,
                "seconds_full_batch": float("nan"), "error": f"{type(error).__name__}: {str(error)[:200]}"}
    result["peak_mb"] = round(torch.cuda.max_memory_allocated(target) / 2**20, 1)
    return result


def run_engine_benchmark(quick: bool = False, threads: int | None = None,
                         log: Callable[[str], None] = print, device: str = "cpu",
                         only: tuple[str, ...] = (), max_qubits: int | None = None) -> list[dict]:
    """Runs the grid; returns rows with n_qubits, layers, batch, method, samples_per_s, peak_mb.

    ``device="cuda"`` runs every method on the GPU (PennyLane's default.qubit through torch
    CUDA tensors; its CPU-only simulators are left out) on :data:`CUDA_GRID`; peak MB is
    then the GPU's peak allocation. ``only`` restricts the methods (``hqray-auto``, the
    base of every ratio, always runs); ``max_qubits`` the grid.
    """
    if threads:
        torch.set_num_threads(threads)
    info = machine_info()
    log(f"machine: {info}")
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device here")
    grid = QUICK_GRID if quick else (CUDA_GRID if target.type == "cuda" else FULL_GRID)
    grid = [entry for entry in grid if max_qubits is None or entry[0] <= max_qubits]
    budget = 1.0 if quick else TIME_BUDGET_S
    rows = []
    generator = torch.Generator().manual_seed(0)
    for n_qubits, layers, batches in grid:
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=layers)
        weights = (torch.rand(spec.weight_shape, generator=generator) * 6.28).to(target)
        for batch in batches:
            inputs = (torch.rand(batch, n_qubits, generator=generator) * 3.14).to(target)
            methods = ["hqray-auto", "hqray-folded", "hqray-statevector", "hqray-compiler",
                       "default.qubit-broadcast", "lightning.qubit-adjoint", "qnode-per-sample"]
            if only:
                methods = [m for m in methods if m == "hqray-auto" or m in only]
            if n_qubits > 10:  # a 4^n unitary: far slower than the state vector (measured once)
                methods = [m for m in methods if m != "hqray-folded"]
            if batch > 1000 or target.type == "cuda":  # covered at smaller batches / CPU-only
                methods = [m for m in methods if m not in CPU_ONLY]
            results = {}
            for method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = _measure_on(target, method, spec, inputs, weights, budget)
                row = {"circuit": "strongly_entangling", "n_qubits": n_qubits, "layers": layers, "batch": batch,
                       "method": method,
                       "device": str(target), **result}
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
