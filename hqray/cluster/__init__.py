"""Ray resources, CircuitWorker actors, the QuantumPool and the pool-backed layer (g7).

**Example** (starts an embedded local Ray with 4 virtual QPUs)::

    from hqray.cluster import connect, QuantumPool, PoolConfig
    connect()
    with QuantumPool(PoolConfig(fallback_order=["qpu", "cpu"])) as pool:
        outputs = pool.run(spec, inputs, weights)
        print(pool.stats())
"""

from hqray.cluster.config import PoolConfig, TierConfig, default_tiers
from hqray.cluster.kernels import pool_gram
from hqray.cluster.layer import PoolQuantumLayer, close_shared_pools, shared_pool
from hqray.cluster.pool import PoolError, PoolResult, QuantumPool, kill_worker_on_progress
from hqray.cluster.resources import ClusterInfo, connect, describe_cluster, planned_workers
from hqray.cluster.worker import CircuitWorker

__all__ = [
    "CircuitWorker",
    "ClusterInfo",
    "PoolConfig",
    "PoolError",
    "PoolQuantumLayer",
    "PoolResult",
    "QuantumPool",
    "TierConfig",
    "close_shared_pools",
    "connect",
    "default_tiers",
    "describe_cluster",
    "kill_worker_on_progress",
    "planned_workers",
    "pool_gram",
    "shared_pool",
]
