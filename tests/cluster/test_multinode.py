"""Placement and node loss on a real multi-node Ray cluster (ray.cluster_utils.Cluster)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import ray
import torch
from ray.cluster_utils import Cluster

from hqray.cluster import PoolConfig, QuantumPool, TierConfig
from hqray.cluster.loopback import enter_loopback_mode
from hqray.quantum import CircuitSpec, execute

SPEC = CircuitSpec(n_qubits=4, n_layers=2)


@pytest.fixture(scope="module")
def cluster():
    loopback = "127.0.0.1"  # every node binds to loopback only
    enter_loopback_mode()  # else Ray rewrites the 127.0.0.1 bootstrap address to this machine's IP
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": loopback})
    qpu_node = cluster.add_node(num_cpus=1, resources={"QPU": 2}, node_ip_address=loopback)
    cluster.add_node(num_cpus=1, node_ip_address=loopback)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    assert cluster.address.startswith("127.0.0.1:")
    yield cluster, qpu_node
    ray.shutdown()
    cluster.shutdown()


def exact_qpu_config(**overrides) -> PoolConfig:
    # An exact QPU tier (engine backend) so results can be compared with the reference.
    return PoolConfig(tiers={"qpu": TierConfig(resource="QPU", max_shard_rows=200, timeout_s=30),
                             "cpu": TierConfig(resource="CPU", max_shard_rows=200)},
                      fallback_order=["qpu", "cpu"], min_shard_rows=200, worker_start_timeout_s=120,
                      **overrides)


def test_qpu_workers_land_only_on_the_qpu_node(cluster):
    _, qpu_node = cluster
    with QuantumPool(exact_qpu_config()) as pool:
        placed = pool.workers()
    assert len(placed["qpu"]) == 2
    assert {w["node_id"] for w in placed["qpu"]} == {qpu_node.node_id}
    # No worker shares the driver's (head) node: their rows go through the object store.
    assert not any(w["shared_memory"] for tier in placed.values() for w in tier)
    # The CPU tier's placement group spreads its two workers over the two nodes with a CPU.
    assert len({w["node_id"] for w in placed["cpu"]}) == 2


def test_losing_the_qpu_node_falls_back_to_cpu(cluster):
    ray_cluster, qpu_node = cluster
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 3, size=(6000, 4)).astype(np.float32)
    weights = rng.uniform(0, 6, size=SPEC.weight_shape).astype(np.float32)
    pool = QuantumPool(exact_qpu_config())
    for worker in pool._tiers["qpu"].workers.values():
        worker.handle.inject_delay.remote(0.1, calls=1000)  # the QPU tier is slow: the job outlives the node
    progress = threading.Event()

    def on_progress(done, total):
        if done >= 400:
            progress.set()

    def remove_node():
        progress.wait(timeout=180)
        ray_cluster.remove_node(qpu_node)

    remover = threading.Thread(target=remove_node, daemon=True)
    remover.start()
    outputs = pool.run(SPEC, inputs, weights, progress=on_progress)
    remover.join()
    stats = pool.stats()
    pool.shutdown()
    expected = execute(SPEC, torch.from_numpy(inputs), torch.from_numpy(weights)).numpy()
    assert np.allclose(outputs, expected, atol=1e-5)
    assert stats["qpu"]["rows"] > 0 and stats["cpu"]["rows"] > 0
    assert stats["qpu"]["rows"] + stats["cpu"]["rows"] == 6000
    assert stats["cpu"]["fallbacks"] >= 1
