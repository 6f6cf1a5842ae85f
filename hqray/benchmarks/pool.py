"""`hqray bench pool`: QuantumPool throughput against the in-process engine, and chaos.

One run, same inputs: the engine in this process at one thread (the thread budget of one
worker) with the workers' allocator setting, a pool with one CPU worker and a pool with
two. Efficiency is 1-worker pool / in-process; speedup is 2 workers / 1 worker. The pools'
workers share this process's node, so rows go through shared memory; the alternative, the
same 1-worker pool with rows through Ray's object store (``shared_memory_mb=0``, what a
worker on another node uses), is measured in the same run. A chaos run kills workers as
the job passes progress thresholds and counts rows that did not come back equal to the
reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hqray.benchmarks.common import best_time, machine_info, median_ms
from hqray.quantum import CircuitSpec, execute
from hqray.quantum.memory import retain_heap_memory

__all__ = ["run_pool_benchmark"]


def _pool(workers: int, shared_memory_mb: float = 512.0, **tier_options):
    from hqray.cluster import PoolConfig, QuantumPool, TierConfig

    tiers = {"cpu": TierConfig(resource="CPU", max_workers=workers, **tier_options)}
    return QuantumPool(PoolConfig(tiers=tiers, fallback_order=["cpu"], max_inflight_shards=4 * workers,
                                  shared_memory_mb=shared_memory_mb))


def _rows_per_second(run: Callable[[], object], rows: int, repeats: int = 7) -> float:
    run()  # warm-up: worker imports, caches, shard-size estimate
    return rows / best_time(run, repeats)


SMALL_JOB_ROWS = 64  # a g7 training step's batch


def _small_job_ms(pool, spec: CircuitSpec, inputs: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Median milliseconds of a small forward and vector-Jacobian job on the pool and in
    process (one thread): the per-call cost a pool-backed layer (g7) pays every step."""
    grad_outputs = np.ones((inputs.shape[0], spec.n_outputs), dtype=inputs.dtype)

    def in_process_vjp():
        x = torch.from_numpy(inputs).requires_grad_(True)
        w = torch.from_numpy(weights).requires_grad_(True)
        torch.autograd.grad(execute(spec, x, w), (x, w), torch.from_numpy(grad_outputs))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            in_process_forward = median_ms(lambda: execute(spec, torch.from_numpy(inputs), torch.from_numpy(weights)))
        in_process_vjp_ms = median_ms(in_process_vjp)
    finally:
        torch.set_num_threads(threads)
    return {"pool_forward": median_ms(lambda: pool.run(spec, inputs, weights)),
            "pool_vjp": median_ms(lambda: pool.vjp(spec, inputs, weights, grad_outputs)),
            "in_process_forward": in_process_forward, "in_process_vjp": in_process_vjp_ms}


def run_pool_benchmark(rows: int = 100_000, log: Callable[[str], None] = print,
                       qubits: tuple[int, ...] = (4, 8)) -> dict:
    """Returns ``{"machine": ..., "circuits": {"4": {...}, "8": {...}}}`` (keys as in the issue)."""
    import ray

    from hqray.cluster import connect

    connect(num_cpus=2, num_qpus=0, include_dashboard=False)
    # The same allocator setting as the workers, so in-process is not slowed by page faults
    # the pool avoids (at 8 qubits a 100,000-row batch allocates 200 MB arrays each call).
    retain_heap_memory()
    info = machine_info()
    log(f"machine: {info}")
    results: dict = {"machine": info, "rows": rows, "circuits": {}}
    generator = np.random.default_rng(0)
    for n_qubits in qubits:
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=2)
        inputs = generator.uniform(0, 3, size=(rows, n_qubits)).astype(np.float32)
        weights = generator.uniform(0, 6, size=spec.weight_shape).astype(np.float32)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with torch.no_grad():
            reference = execute(spec, torch.from_numpy(inputs), torch.from_numpy(weights)).numpy()
            in_process = _rows_per_second(
                lambda spec=spec, inputs=inputs, weights=weights: execute(
                    spec, torch.from_numpy(inputs), torch.from_numpy(weights)), rows)
        torch.set_num_threads(threads)
        rates = {"in_process_1_thread": in_process}
        for workers, shared_memory_mb, name in ((1, 512.0, "pool_1_worker"), (2, 512.0, "pool_2_workers"),
                                                (1, 0.0, "pool_1_worker_object_store")):
            with _pool(workers, shared_memory_mb) as pool:
                rates[name] = _rows_per_second(
                    lambda pool=pool, spec=spec, inputs=inputs, weights=weights: pool.run(spec, inputs, weights),
                    rows)
                if name == "pool_1_worker":
                    small_job = _small_job_ms(pool, spec, inputs[:SMALL_JOB_ROWS], weights)
                    shared_shards = pool.stats()["cpu"]["shared_memory_shards"]
        lost = _chaos_lost_rows(spec, inputs, weights, reference)
        entry = {
            "rows_per_s": rates,
            "efficiency": rates["pool_1_worker"] / rates["in_process_1_thread"],
            "efficiency_object_store": rates["pool_1_worker_object_store"] / rates["in_process_1_thread"],
            "speedup": rates["pool_2_workers"] / rates["pool_1_worker"],
            "shared_memory_shards": shared_shards,
            "lost_rows": lost["lost_rows"],
            "chaos_kills": lost["kills"],
            "small_job_ms": small_job,
        }
        results["circuits"][str(n_qubits)] = entry
        log(f"{n_qubits} qubits: " + ", ".join(f"{k} {v:,.0f} rows/s" for k, v in rates.items())
            + f"; efficiency {entry['efficiency']:.2f} (through the object store "
              f"{entry['efficiency_object_store']:.2f}), speedup {entry['speedup']:.2f}, "
              f"lost rows under chaos {entry['lost_rows']} ({entry['chaos_kills']} kills); "
              f"a {SMALL_JOB_ROWS}-row job (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in small_job.items()))
    ray.shutdown()
    return results


def _chaos_lost_rows(spec, inputs, weights, reference) -> dict:
    from hqray.cluster import kill_worker_on_progress

    pool = _pool(2, max_shard_rows=5000)  # many shards, so the kills land mid-job
    rows = inputs.shape[0]
    kill, kills = kill_worker_on_progress(pool, [int(rows * f) for f in (0.1, 0.3, 0.5, 0.7)])
    try:
        outputs = pool.run(spec, inputs, weights, progress=kill)
        matching = np.isclose(outputs, reference, atol=1e-4).all(axis=1)
        lost = int(rows - matching.sum())
    except Exception as error:  # a PoolError names rows; count them as lost
        lost = sum(stop - start for start, stop in getattr(error, "failed_rows", [(0, rows)]))
    finally:
        pool.shutdown()
    return {"lost_rows": lost, "kills": len(kills)}
