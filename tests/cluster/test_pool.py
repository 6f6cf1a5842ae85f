"""QuantumPool on a real local Ray session: correctness, chaos, timeouts, bad input."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
import ray
import torch

from hqray.cluster import PoolConfig, PoolError, QuantumPool, TierConfig, connect, kill_worker_on_progress
from hqray.cluster.config import QpuEmulation
from hqray.cluster.transport import PREFIX, SHM_DIRECTORY
from hqray.errors import CircuitError, ConfigError
from hqray.ports import free_port
from hqray.quantum import CircuitSpec, execute
from hqray.quantum.noise import NoiseModel

SPEC = CircuitSpec(n_qubits=4, n_layers=2)


METRICS_PORT = free_port()


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    # No GPUs, whatever the machine has: the tests' expectations (a skipped gpu tier) hold everywhere.
    connect(num_qpus=2, num_cpus=2, num_gpus=0, include_dashboard=False, metrics_export_port=METRICS_PORT)
    yield
    ray.shutdown()


def cpu_pool(**overrides) -> QuantumPool:
    tiers = {"cpu": TierConfig(resource="CPU", max_shard_rows=overrides.pop("max_shard_rows", 4096),
                               max_shard_state_mb=overrides.pop("max_shard_state_mb", 256.0),
                               timeout_s=overrides.pop("timeout_s", 60.0))}
    return QuantumPool(PoolConfig(tiers=tiers, fallback_order=["cpu"], **overrides))


def data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 3, size=(rows, 4)).astype(np.float32),
            rng.uniform(0, 6, size=SPEC.weight_shape).astype(np.float32))


def reference(inputs, weights):
    return execute(SPEC, torch.from_numpy(inputs), torch.from_numpy(weights)).numpy()


def shared_segments() -> list[str]:
    """This driver's shared-memory segments (the pool's arena)."""
    return [n for n in os.listdir(SHM_DIRECTORY) if n.startswith(f"{PREFIX}{os.getpid()}-")]


class TestCorrectness:
    def test_results_equal_the_in_process_engine_in_order(self):
        inputs, weights = data(3000)
        with cpu_pool(min_shard_rows=100, max_shard_rows=500) as pool:
            outputs = pool.run(SPEC, inputs, weights)
            stats = pool.stats()["cpu"]
            workers = pool.workers()["cpu"]
        assert outputs.shape == (3000, 4)
        # Workers keep freed memory for their next shard (glibc on Linux).
        assert all(w["heap_retained"] for w in workers) or not sys.platform.startswith("linux")
        # Every BLAS / OpenMP pool in a worker runs its thread count, not one thread per core.
        assert all(set(w["thread_pools"].values()) == {w["threads"]} for w in workers), workers
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        assert stats["rows"] == 3000 and stats["shards"] >= 6 and stats["duplicates"] == 0

    def test_a_registered_circuit_runs_on_the_pool_through_the_compiler(self):
        spec = CircuitSpec(n_qubits=4, embedding="iqp", ansatz="qcnn", measurement="readout")
        rng = np.random.default_rng(5)
        inputs = rng.uniform(0, 3, size=(400, 4)).astype(np.float32)
        weights = rng.uniform(0, 6, size=spec.weight_shape).astype(np.float32)
        with cpu_pool(min_shard_rows=50, max_shard_rows=100) as pool:
            outputs = pool.run(spec, inputs, weights)
            stats = pool.stats()["cpu"]
        expected = execute(spec, torch.from_numpy(inputs), torch.from_numpy(weights)).numpy()
        assert outputs.shape == (400, 1) and stats["shards"] >= 4
        assert np.allclose(outputs, expected, atol=1e-5)

    def test_a_calibrated_qpu_tier_runs_the_density_matrix_engine_with_shots(self):
        spec = CircuitSpec(n_qubits=4, ansatz="hardware_efficient", ansatz_options={"entangler": "linear"},
                           precision="double")
        noise = NoiseModel(calibration="ibm_manila")
        rng = np.random.default_rng(6)
        inputs = rng.uniform(0, 3, size=(300, 4))
        weights = rng.uniform(0, 6, size=spec.weight_shape)
        exact_noisy = execute(spec.model_copy(update={"noise": noise}), torch.from_numpy(inputs),
                              torch.from_numpy(weights)).numpy()
        for shots, tolerance in ((None, 1e-9), (2000, 5 * 1 / np.sqrt(2000))):  # 5 sigma of a <Z> estimate
            tiers = {"qpu": TierConfig(resource="QPU", noise=noise, shots=shots, max_shard_rows=100)}
            with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu"], min_shard_rows=50)) as pool:
                outputs = pool.run(spec, inputs, weights)
                stats = pool.stats()["qpu"]
            assert stats["rows"] == 300 and stats["shards"] >= 3
            assert np.abs(outputs - exact_noisy).max() < tolerance, shots
        noiseless = execute(spec, torch.from_numpy(inputs), torch.from_numpy(weights)).numpy()
        assert np.abs(exact_noisy - noiseless).mean() > 0.01  # the calibration's noise is there

    @pytest.mark.parametrize("backend", ["qiskit.aer", "braket.local.qubit"])
    def test_a_plugin_device_tier_runs_jobs_with_its_noise_and_shots(self, backend):
        pytest.importorskip("qiskit_aer" if backend == "qiskit.aer" else "braket.pennylane_plugin",
                            reason="the plugins extra is not installed (pip install 'hqray[plugins]')")
        spec = CircuitSpec(n_qubits=3, n_layers=1, precision="double")
        noise = NoiseModel(depolarizing=0.01, readout_error=0.02)
        rng = np.random.default_rng(7)
        inputs = rng.uniform(0, 3, size=(24, 3))
        weights = rng.uniform(0, 6, size=spec.weight_shape)
        exact = execute(spec.model_copy(update={"noise": noise}), torch.from_numpy(inputs),
                        torch.from_numpy(weights)).numpy()
        tiers = {"qpu": TierConfig(resource="QPU", backend=backend, noise=noise, shots=4000, max_shard_rows=8)}
        with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu"], min_shard_rows=8)) as pool:
            outputs = pool.run(spec, inputs, weights)
            stats = pool.stats()["qpu"]
        assert stats["rows"] == 24 and stats["shards"] == 3 and stats["failures"] == 0
        # Sampled (4000 shots): within 5 sigma, plus aer's channel placement after its own basis gates.
        allowed = 5 / np.sqrt(4000) + (0.1 if backend == "qiskit.aer" else 0.0)
        assert 0 < np.abs(outputs - exact).max() < allowed

    def test_an_emulated_qpu_gets_jobs_within_its_limits_and_its_transient_failures_are_retried(self):
        emulation = QpuEmulation(job_latency_s=0.1, queue_depth=1, max_circuits_per_job=40, failure_rate=0.3, seed=1)
        tiers = {"qpu": TierConfig(resource="QPU", emulation=emulation)}
        inputs, weights = data(400)
        # A job over 40 circuits would fail on every attempt (the worker refuses it) and end
        # the run with PoolError: success means every job respected the limit.
        with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu"], retries=30, min_shard_rows=8)) as pool:
            outputs = pool.run(SPEC, inputs, weights)
            stats = pool.stats()["qpu"]
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        assert stats["rows"] == 400 and stats["shards"] >= 10 and stats["retries"] > 0 and stats["duplicates"] == 0

    def test_a_qpu_whose_jobs_keep_failing_falls_back_to_the_next_tier(self):
        tiers = {"qpu": TierConfig(resource="QPU", emulation=QpuEmulation(failure_rate=1.0)),
                 "cpu": TierConfig(resource="CPU")}
        inputs, weights = data(300)
        with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu", "cpu"], retries=1)) as pool:
            outputs = pool.run(SPEC, inputs, weights)
            stats = pool.stats()
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        assert stats["qpu"]["failures"] > 0 and stats["qpu"]["rows"] == 0
        assert stats["cpu"]["fallbacks"] > 0 and stats["cpu"]["rows"] == 300

    def test_shards_are_capped_by_statevector_memory(self):
        inputs, weights = data(3000)
        # 4 qubits: 16 amplitudes of 8 bytes a row, so 64 KiB holds 512 rows.
        with cpu_pool(min_shard_rows=100, max_shard_rows=100_000, max_shard_state_mb=1 / 16) as pool:
            outputs = pool.run(SPEC, inputs, weights)
            stats = pool.stats()["cpu"]
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        assert stats["shards"] >= 3000 // 512 and stats["rows"] == 3000

    @pytest.mark.parametrize("shared_memory_mb", [512.0, 0.0])
    def test_rows_go_through_shared_memory_on_the_pools_node(self, shared_memory_mb):
        inputs, weights = data(20_000, seed=5)
        with cpu_pool(min_shard_rows=1000, max_shard_rows=2500, shared_memory_mb=shared_memory_mb) as pool:
            first = pool.run(SPEC, inputs, weights)
            second = pool.run(SPEC, inputs[::-1].copy(), weights)  # the next job reuses the segment
            stats = pool.stats()["cpu"]
            workers = pool.workers()["cpu"]
            segments = shared_segments()
        expected = reference(inputs, weights)
        assert np.allclose(first, expected, atol=1e-5) and np.allclose(second, expected[::-1], atol=1e-5)
        assert stats["rows"] == 40_000 and stats["duplicates"] == 0
        if shared_memory_mb:
            assert stats["shared_memory_shards"] == stats["shards"] >= 16
            assert all(w["shared_memory"] for w in workers) and len(segments) == 1
        else:  # every row through Ray's object store, as for workers on other nodes
            assert stats["shared_memory_shards"] == 0 and not any(w["shared_memory"] for w in workers)
            assert segments == []
        assert shared_segments() == []  # shutdown removes the segment

    # 700 rows travel inside the actor calls, 6000 rows through shared memory or the object store.
    @pytest.mark.parametrize(("rows", "shared_memory_mb"), [(700, 512.0), (6000, 512.0), (6000, 0.0)])
    def test_vjp_equals_autograd(self, rows, shared_memory_mb):
        inputs, weights = data(rows)
        grad_outputs = np.random.default_rng(1).normal(size=(rows, 4)).astype(np.float32)
        x = torch.from_numpy(inputs).requires_grad_(True)
        w = torch.from_numpy(weights).requires_grad_(True)
        (execute(SPEC, x, w) * torch.from_numpy(grad_outputs)).sum().backward()
        shards = {"min_shard_rows": 100, "max_shard_rows": max(200, rows // 10)}
        with cpu_pool(**shards, shared_memory_mb=shared_memory_mb) as pool:
            result = pool.vjp(SPEC, inputs, weights, grad_outputs)
        assert np.allclose(result.outputs, execute(SPEC, x, w).detach().numpy(), atol=1e-5)
        assert np.allclose(result.grad_inputs, x.grad.numpy(), atol=1e-4)
        assert np.allclose(result.grad_weights, w.grad.numpy(), atol=1e-3)

    def test_async_submit(self):
        inputs, weights = data(500)
        with cpu_pool() as pool:
            future = pool.submit(SPEC, inputs, weights)
            assert np.allclose(future.result(timeout=60), reference(inputs, weights), atol=1e-5)

    def test_concurrent_jobs_each_get_their_own_shared_segment(self):
        jobs = [data(20_000, seed=seed) for seed in (10, 11, 12)]
        with cpu_pool(min_shard_rows=1000, max_shard_rows=2000) as pool:
            futures = [pool.submit(SPEC, inputs, weights) for inputs, weights in jobs]
            outputs = [future.result(timeout=120) for future in futures]
            stats = pool.stats()["cpu"]
            segments = shared_segments()
        for (inputs, weights), result in zip(jobs, outputs, strict=True):
            assert np.allclose(result, reference(inputs, weights), atol=1e-5)
        assert stats["rows"] == 60_000 and stats["shared_memory_shards"] == stats["shards"]
        assert 1 <= len(segments) <= 3  # kept for reuse, one per job that ran at the same time

    def test_qpu_tier_behaves_like_hardware(self):
        inputs, weights = data(64)
        config = PoolConfig(fallback_order=["qpu"])
        with QuantumPool(config) as pool:
            noisy = pool.run(SPEC, inputs, weights)
            placed = pool.workers()["qpu"]
        # The tier's own model without shots: the exact noisy expectations the shots estimate.
        tier_spec = config.tiers["qpu"].worker_spec(SPEC)
        exact_noisy = execute(tier_spec.model_copy(update={"shots": None}), torch.from_numpy(inputs),
                              torch.from_numpy(weights)).numpy()
        assert not np.allclose(noisy, exact_noisy, atol=1e-3)  # finite shots
        # Shot noise of the right size: a <Z> from N shots has variance (1 - <Z>^2) / N, so the
        # mean squared z-score over 256 values is about 1 (a wrong model or shot count is far off).
        variance = np.clip(1 - exact_noisy**2, 1e-6, None) / config.tiers["qpu"].shots
        z_squared = float(np.mean((noisy - exact_noisy) ** 2 / variance))
        assert 0.6 < z_squared < 1.6, z_squared
        assert len(placed) == 2 and all(w["resources"].get("QPU") == 1.0 for w in placed)


class TestFaults:
    def test_chaos_kills_lose_no_row(self):
        inputs, weights = data(50_000, seed=3)
        expected = reference(inputs, weights)
        pool = cpu_pool(min_shard_rows=250, max_shard_rows=250, retries=50, max_inflight_shards=4)
        # Kill a worker as the job passes each threshold.
        kill_on_progress, kills = kill_worker_on_progress(pool, [5_000, 12_500, 20_000, 27_500, 35_000])

        try:
            outputs = pool.run(SPEC, inputs, weights, progress=kill_on_progress)
            stats = pool.stats()["cpu"]
            # A killed worker may write for a moment after ray.kill: the job's segment is
            # retired, never reused (retries return their rows through the object store).
            segments_after_job = shared_segments()
        finally:
            pool.shutdown()
        assert len(kills) == 5 and kills[-1] < 50_000  # all five kills landed mid-job
        assert stats["shared_memory_shards"] > 0 and segments_after_job == []
        assert np.allclose(outputs, expected, atol=1e-5)  # every row, in order, exactly once
        assert stats["rows"] == 50_000
        assert stats["replaced"] >= 5 and stats["retries"] >= 1
        deadline = time.monotonic() + 90
        while ray.available_resources().get("CPU") != 2.0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("CPU") == 2.0, ray.available_resources()

    def test_hung_worker_shard_is_retried_elsewhere(self):
        inputs, weights = data(6000)  # above the inline size: first attempts write to shared memory
        with cpu_pool(timeout_s=3.0, min_shard_rows=1000, max_shard_rows=1000) as pool:
            workers = list(pool._tiers["cpu"].workers.values())
            ray.get(workers[0].handle.inject_delay.remote(30.0, calls=1))
            started = time.monotonic()
            outputs = pool.run(SPEC, inputs, weights)
            elapsed = time.monotonic() - started
            stats = pool.stats()["cpu"]
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        # A cold replacement worker on a busy machine may time out too; the hang always does.
        assert stats["timeouts"] >= 1 and stats["replaced"] >= 1 and stats["shared_memory_shards"] >= 1
        assert elapsed < 15  # well before the 30 s hang

    def test_a_shard_failing_everywhere_is_named(self):
        with cpu_pool(retries=1) as pool:
            spec = CircuitSpec(n_qubits=4, n_layers=2, measurement="state")
            with pytest.raises(CircuitError, match="measurement 'state'"):
                pool.run(spec, *data(10))


class TestSurvivesCallersAndWorkers:
    def test_an_interrupted_job_leaves_the_pool_usable(self):
        inputs, weights = data(20_000)

        def interrupt(done, total):
            raise KeyboardInterrupt  # Ctrl+C while shards are out

        def broken_callback(done, total):
            raise ValueError("a bug in the caller's progress bar")

        with cpu_pool(min_shard_rows=500, max_shard_rows=500) as pool:
            with pytest.raises(KeyboardInterrupt):
                pool.run(SPEC, inputs, weights, progress=interrupt)
            with pytest.raises(ValueError, match="progress bar"):
                pool.run(SPEC, inputs, weights, progress=broken_callback)
            # The next job completes (it used to wait forever on counters the interrupted job left raised).
            outputs = pool.submit(SPEC, inputs[:3000], weights).result(timeout=120)
        assert np.allclose(outputs, reference(inputs[:3000], weights), atol=1e-5)

    def test_a_replacement_that_dies_while_starting_is_restarted(self):
        inputs, weights = data(4000)
        with cpu_pool(min_shard_rows=500, max_shard_rows=500) as pool:
            tier = pool._tiers["cpu"]
            for _ in range(2):
                ray.kill(next(iter(tier.workers.values())).handle, no_restart=True)
                assert np.allclose(pool.run(SPEC, inputs, weights), reference(inputs, weights), atol=1e-5)
                for handle, _, _ in list(tier.starting.values()):  # its replacement dies while starting
                    ray.kill(handle, no_restart=True)
            deadline = time.monotonic() + 120
            while pool.stats()["cpu"]["workers"] < 2 and time.monotonic() < deadline:
                pool.run(SPEC, inputs[:200], weights)  # each job restarts due slots
            stats = pool.stats()["cpu"]
        assert stats["workers"] == 2 and stats["restarts"] >= 1 and stats["replaced"] >= 2

    def test_slots_that_keep_dying_are_given_up_with_an_error_naming_the_tier(self):
        inputs, weights = data(2000)
        with cpu_pool(min_shard_rows=500, max_shard_rows=500, max_worker_restarts=0) as pool:
            for worker in list(pool._tiers["cpu"].workers.values()):
                ray.kill(worker.handle, no_restart=True)
            with pytest.raises(PoolError, match=r"tier 'cpu' slot 0: worker died .*tier 'cpu' slot 1: worker died"):
                pool.run(SPEC, inputs, weights)
            with pytest.raises(PoolError, match="2000 of 2000 rows could not be computed") as caught:
                pool.run(SPEC, inputs, weights)  # stays answerable: no tier left, said at once
        assert caught.value.failed_rows == [(0, 2000)]
        assert any("given up" in note or "worker died" in note for note in caught.value.causes)

    def test_a_shard_failing_on_every_worker_is_reported_with_rows_and_causes(self):
        # A tier whose device does not exist: every attempt really fails inside the worker.
        tiers = {"qpu": TierConfig(resource="QPU", backend="no.such.device", max_shard_rows=100),
                 "cpu": TierConfig(resource="CPU", max_shard_rows=100)}
        inputs, weights = data(300)
        with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu"], retries=1, min_shard_rows=100)) as pool:
            with pytest.raises(PoolError) as caught:
                pool.run(SPEC, inputs, weights)
            stats = pool.stats()["qpu"]
        error = caught.value
        assert error.failed_rows == [(0, 100), (100, 200), (200, 300)]
        assert str(error).startswith("300 of 300 rows could not be computed")
        assert error.causes and all("no.such.device" in cause for cause in error.causes)
        assert stats["failures"] == 6 and stats["retries"] == 3  # two attempts per shard on the tier
        # With a fallback tier the same rows are computed there instead.
        with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["qpu", "cpu"], retries=0,
                                    min_shard_rows=100)) as pool:
            assert np.allclose(pool.run(SPEC, inputs, weights), reference(inputs, weights), atol=1e-5)
            assert pool.stats()["cpu"]["fallbacks"] == 3

    def test_no_shard_exceeds_the_memory_cap_whatever_min_shard_rows_says(self):
        from hqray.cluster.config import TierConfig as Tier

        per_row = Tier(resource="CPU").state_bytes_per_row(SPEC.n_qubits, False)
        inputs, weights = data(2000)
        with cpu_pool(min_shard_rows=1000, max_shard_state_mb=100 * per_row / 2**20) as pool:
            outputs = pool.run(SPEC, inputs, weights)
            stats = pool.stats()["cpu"]
        assert np.allclose(outputs, reference(inputs, weights), atol=1e-5)
        assert stats["shards"] >= 20  # 100 rows at most each, not the 1000 min_shard_rows asked for

    def test_a_row_that_fits_no_tier_is_an_error_before_anything_runs(self):
        big = CircuitSpec(n_qubits=20, n_layers=1)
        with cpu_pool(max_shard_state_mb=1.0) as pool:
            with pytest.raises(CircuitError, match="one row of a 20-qubit circuit needs .* no tier's memory cap"):
                pool.run(big, np.zeros((2, 20), dtype=np.float32), np.zeros(big.weight_shape, dtype=np.float32))
            assert pool.stats()["cpu"]["shards"] == 0


def scrape(tier: str) -> dict[str, float]:
    """The pool's metrics of ``tier`` from the local Ray's Prometheus endpoint (on loopback)."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"ray_hqray_pool_(\w+?)(?:_total)?\{(.*)\} ([0-9.e+-]+)$", line)
        if match and f'tier="{tier}"' in match.group(2) and 'le="' not in match.group(2):
            values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(3))
    return values


def test_the_pools_counters_are_scraped_where_operators_look():
    # Tier names of their own, so other tests' pools in this Ray session do not add to them.
    tiers = {"flaky": TierConfig(resource="QPU", backend="no.such.device", max_shard_rows=100),
             "steady": TierConfig(resource="CPU", max_shard_rows=100)}
    inputs, weights = data(300)
    with QuantumPool(PoolConfig(tiers=tiers, fallback_order=["flaky", "steady"], retries=1,
                                min_shard_rows=100)) as pool:
        pool.run(SPEC, inputs, weights)
        stats = pool.stats()
    wanted = {"flaky": ("failures", "retries"), "steady": ("rows", "shards", "fallbacks")}
    deadline, scraped = time.monotonic() + 120, {}
    while time.monotonic() < deadline:  # Ray exports metrics every few seconds
        scraped = {tier: scrape(tier) for tier in wanted}
        if all(scraped[tier].get(name) == stats[tier][name] for tier, names in wanted.items() for name in names) \
                and scraped["steady"].get("shard_latency_s_count") == stats["steady"]["shards"]:
            break
        time.sleep(1)
    # One set of counters: what Prometheus reads is what stats() says.
    assert stats["flaky"]["failures"] == 6 and stats["steady"]["rows"] == 300 and stats["steady"]["fallbacks"] == 3
    for tier, names in wanted.items():
        for name in names:
            assert scraped[tier].get(name) == stats[tier][name], (tier, name, scraped, stats)
    assert scraped["steady"]["shard_latency_s_count"] == stats["steady"]["shards"]  # the latency histogram


class TestBadInput:
    @pytest.fixture(scope="class")
    def pool(self):
        with cpu_pool() as pool:
            yield pool

    def test_wrong_width(self, pool):
        with pytest.raises(CircuitError, match="takes 1 to 4 features, got 6"):
            pool.run(SPEC, np.zeros((3, 6)), data(1)[1])

    def test_nan_rows_are_named(self, pool):
        inputs, weights = data(5)
        inputs[3, 1] = np.inf
        with pytest.raises(CircuitError, match=r"NaN/inf in rows \[3\]"):
            pool.run(SPEC, inputs, weights)

    def test_empty_batch(self, pool):
        with pytest.raises(CircuitError, match="non-empty"):
            pool.run(SPEC, np.zeros((0, 4)), data(1)[1])

    def test_wrong_weights(self, pool):
        with pytest.raises(CircuitError, match=r"shape \(2, 4, 3\)"):
            pool.run(SPEC, data(2)[0], np.zeros((2, 4)))

    def test_fallback_order_naming_a_missing_tier(self):
        with pytest.raises(ConfigError, match=r"fallback_order names tiers \['tpu'\] that do not exist"):
            PoolConfig(fallback_order=["qpu", "tpu"])

    def test_unknown_tier_field(self):
        with pytest.raises(ConfigError, match="workers: unknown field"):
            PoolConfig(tiers={"cpu": {"resource": "CPU", "workers": 3}}, fallback_order=["cpu"])

    def test_zero_workers(self):
        with pytest.raises(ConfigError, match="max_workers: Input should be greater than or equal to 1"):
            PoolConfig(tiers={"cpu": {"resource": "CPU", "max_workers": 0}}, fallback_order=["cpu"])

    def test_no_tier_with_workers(self):
        with pytest.raises(PoolError, match=r"tier 'gpu' skipped: the cluster has 0 GPU"):
            QuantumPool(PoolConfig(fallback_order=["gpu"]))


def test_g7_trains_on_the_pool_with_in_process_gradients():
    from hqray.cluster import PoolQuantumLayer
    from hqray.models import HybridNet, make_config
    from hqray.quantum import QuantumLayer

    with cpu_pool() as pool:
        layer = PoolQuantumLayer(SPEC, ("cpu",), pool=pool)
        local = QuantumLayer(SPEC)
        local.weights.data.copy_(layer.weights.data)
        inputs = torch.rand(40, 4) * 3
        layer(inputs).pow(2).sum().backward()
        local(inputs).pow(2).sum().backward()
        assert torch.allclose(layer.weights.grad, local.weights.grad, atol=1e-4)
        model = HybridNet(make_config("g7"), 4, 2)
        assert type(model.quantum).__name__ == "PoolQuantumLayer"
        from hqray.models import list_generations

        assert [g.id for g in list_generations()][7] == "g7"


def test_kernel_tiles_on_the_pool_equal_local_tiles_and_survive_kills():
    from hqray.cluster import pool_gram
    from hqray.quantum import QuantumKernel

    kernel = QuantumKernel(CircuitSpec(n_qubits=4, n_layers=2, reupload=True), tile_rows=40)
    features = np.random.default_rng(5).uniform(0, 3, (400, 4))
    states = kernel.states(features)
    expected = kernel.gram_from_states(states)
    with cpu_pool(retries=5) as pool:
        for worker in pool._tiers["cpu"].workers.values():
            worker.handle.inject_delay.remote(0.05, calls=1000)
        kill, killed = kill_worker_on_progress(pool, [10])

        from hqray.quantum.kernels import tiles

        bounds = tiles(400, 400, 40, symmetric=True)
        blocks = pool.gram_tiles('{"kind": "fidelity", "gamma": 1.0, "shots": null, "seed": 0}',
                                 states, None, bounds, progress=kill)
        gram = kernel.assemble(400, 400, zip(bounds, blocks, strict=True), symmetric=True)
        stats = pool.stats()["cpu"]
        assert np.allclose(pool_gram(kernel, states, states[:50], pool=pool),
                           kernel.gram_from_states(states, states[:50]), atol=1e-6)
    assert killed and stats["replaced"] >= 1 and stats["tiles"] == len(bounds)
    assert np.allclose(gram, expected, atol=1e-6)
