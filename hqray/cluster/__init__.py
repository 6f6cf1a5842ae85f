"""Ray resources, CircuitWorker actors, the QuantumPool and the pool-backed layer (g7).

**Example** (starts an embedded local Ray with 4 virtual QPUs)::

    from hqray.cluster import connect, QuantumPool, PoolConfig
    connect()
    with QuantumPool(PoolConfig(fallback_order=["qpu", "cpu"])) as pool:
        outputs = pool.run(spec, inputs, weights)
        print(pool.stats())
"""

import os
import sys

# Safe by default: an embedded local Ray listens on loopback only. Ray binds its gRPC
# servers to every interface unless this is set before ray is first imported (the same
# single-machine mode Ray uses on macOS). With RAY_ADDRESS set (a cluster, `ray job
# submit`) or HQRAY_RAY_LOOPBACK=0, Ray is left as configured.
LOOPBACK_MODE = (os.environ.get("HQRAY_RAY_LOOPBACK", "1") != "0" and not os.environ.get("RAY_ADDRESS")
                 and "ray" not in sys.modules)
if LOOPBACK_MODE:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from hqray.cluster.config import PoolConfig, TierConfig, default_tiers  # noqa: E402
from hqray.cluster.kernels import pool_gram  # noqa: E402
from hqray.cluster.layer import PoolQuantumLayer, close_shared_pools, shared_pool  # noqa: E402
from hqray.cluster.pool import PoolError, PoolResult, QuantumPool, kill_worker_on_progress  # noqa: E402
from hqray.cluster.resources import ClusterInfo, connect, describe_cluster, planned_workers  # noqa: E402
from hqray.cluster.worker import CircuitWorker  # noqa: E402

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
