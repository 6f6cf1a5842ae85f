"""`hqray bench kernel`: quantum-kernel Gram matrices, hqray against one circuit per pair.

For each (N, n_qubits): hqray in-process (states once + tiled |S S^H|^2), hqray with the
tiles on a QuantumPool (2 CPU workers), and PennyLane's per-pair approach (one inversion-
test circuit per pair, ``qml.kernels.square_kernel_matrix`` style) timed on a sample of
pairs and extrapolated to N(N-1)/2 pairs (rows say so).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from hqray.benchmarks.common import PeakMemory, machine_info
from hqray.quantum import CircuitSpec, QuantumKernel

__all__ = ["run_kernel_benchmark"]

SIZES = (500, 2000, 10_000)
QUBITS = (4, 8, 12)
SAMPLED_PAIRS = 30


def _per_pair_seconds(spec: CircuitSpec, features: np.ndarray, n_samples: int) -> tuple[float, int]:
    from hqray.quantum.reference import overlap_qnode

    overlap = overlap_qnode(spec, np.zeros(spec.weight_shape))
    overlap(features[0], features[1])  # warm-up
    started = time.perf_counter()
    for index in range(SAMPLED_PAIRS):
        overlap(features[index], features[index + 1])[0]
    per_pair = (time.perf_counter() - started) / SAMPLED_PAIRS
    pairs = n_samples * (n_samples - 1) // 2
    return per_pair * pairs, SAMPLED_PAIRS


def run_kernel_benchmark(log: Callable[[str], None] = print, sizes=SIZES, qubits=QUBITS,
                         with_pool: bool = True) -> list[dict]:
    """Rows with n_samples, n_qubits, method (hqray, hqray-pool, per-pair) and seconds."""
    info = machine_info()
    log(f"machine: {info}")
    pool = None
    if with_pool:
        from hqray.cluster import PoolConfig, QuantumPool, TierConfig, connect, pool_gram

        connect(num_cpus=2, num_qpus=0, include_dashboard=False)
        pool = QuantumPool(PoolConfig(tiers={"cpu": TierConfig(resource="CPU")}, fallback_order=["cpu"]))
    rows = []
    rng = np.random.default_rng(0)
    try:
        for n_qubits in qubits:
            spec = CircuitSpec(n_qubits=n_qubits, n_layers=2, reupload=True)
            kernel = QuantumKernel(spec, tile_rows=2048)
            for n_samples in sizes:
                features = rng.uniform(0, np.pi, size=(n_samples, n_qubits))
                memory = PeakMemory()
                with memory.measure():
                    started = time.perf_counter()
                    states = kernel.states(features)
                    gram = kernel.gram_from_states(states)
                    local = time.perf_counter() - started
                rows.append({"n_samples": n_samples, "n_qubits": n_qubits, "method": "hqray",
                             "seconds": local, "peak_mb": round(memory.peak_mb, 1)})
                if pool is not None:
                    started = time.perf_counter()
                    pooled = pool_gram(kernel, kernel.states(features), None, pool=pool)
                    rows.append({"n_samples": n_samples, "n_qubits": n_qubits, "method": "hqray-pool",
                                 "seconds": time.perf_counter() - started})
                    assert np.allclose(pooled, gram, atol=1e-5), "pool and local Gram differ"
                del gram
                seconds, sampled = _per_pair_seconds(spec, features, n_samples)
                rows.append({"n_samples": n_samples, "n_qubits": n_qubits, "method": "per-pair",
                             "seconds": seconds, "extrapolated_from_pairs": sampled})
                line = ", ".join(f"{r['method']} {r['seconds']:.2f} s" for r in rows[-3:])
                log(f"N={n_samples} n={n_qubits}: {line}; speedup vs per-pair x{seconds / local:,.0f}")
    finally:
        if pool is not None:
            import ray

            pool.shutdown()
            ray.shutdown()
    for row in rows:
        row["machine"] = info
    return rows
