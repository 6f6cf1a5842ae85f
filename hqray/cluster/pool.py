"""QuantumPool: batched circuits over QPU, GPU and CPU workers, every row accounted for.

The contract:

* the batch is cut into shards sized to each tier's measured throughput;
* at most ``max_inflight_shards`` shards are out at once (backpressure, bounded memory);
* a failed or timed-out shard is retried on another worker of its tier, then falls back
  along ``fallback_order``; a hung worker is killed, a dead one is replaced;
* a late duplicate result is discarded: each row is written exactly once;
* the result has one row per input row, in order, or a :class:`PoolError` names the rows
  that could not be computed. Never zeros, never a silent drop.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from hqray.cluster.config import PoolConfig, TierConfig
from hqray.cluster.resources import planned_workers
from hqray.cluster.scheduler import (
    COUNTER_NAMES,
    PoolCounters,
    SchedulerPolicy,
    Shard,
    ShardScheduler,
    wanted_shard_items,
)
from hqray.cluster.transport import SharedArena, plan_layout
from hqray.cluster.worker import CircuitWorker
from hqray.errors import CircuitError, ConfigError, HqrayError
from hqray.quantum import CircuitSpec

__all__ = ["QuantumPool", "PoolError", "PoolResult"]

logger = logging.getLogger("hqray.pool")
LATENCY_WINDOW = 2048  # recent shard latencies kept per tier for p50/p95
PROGRESS_LOG_SECONDS = 5.0
# A job's arrays up to this size travel inside the actor call instead of through the object
# store: an explicit put costs a round trip to the store (about 0.6 ms each on 2 cores),
# which is a fifth of a small job such as a g7 training step.
INLINE_ARGUMENT_BYTES = 64 * 1024


class PoolError(HqrayError):
    """Rows could not be computed on any tier; ``failed_rows`` lists ``(start, stop)`` ranges."""

    def __init__(self, message: str, failed_rows: list[tuple[int, int]] | None = None,
                 causes: list[str] | None = None):
        super().__init__(message)
        self.failed_rows = failed_rows or []
        self.causes = causes or []


@dataclass
class PoolResult:
    """What a vector-Jacobian job returns (forward jobs return just the outputs)."""

    outputs: np.ndarray
    grad_inputs: np.ndarray | None = None
    grad_weights: np.ndarray | None = None


@dataclass
class _Worker:
    handle: Any
    tier: str
    slot: int
    local: bool = False  # on the pool's node: shares memory with it
    # Calls queued on the actor, of every job, in the order it runs them; the front one
    # runs since ``front_since`` (timeouts count from there, not from submission).
    queue: collections.deque = field(default_factory=collections.deque)
    front_since: float = 0.0

    def enqueue(self, key: Any, now: float) -> None:
        self.queue.append(key)
        if len(self.queue) == 1:
            self.front_since = now

    def dequeue(self, key: Any, now: float) -> None:
        if key in self.queue:
            was_front = self.queue[0] == key
            self.queue.remove(key)
            if was_front:
                self.front_since = now

    def started_at(self, key: Any) -> float | None:
        return self.front_since if self.queue and self.queue[0] == key else None


@dataclass
class _Tier:
    name: str
    config: TierConfig
    json: str
    placement: Any
    workers: dict[int, _Worker] = field(default_factory=dict)
    starting: dict[int, tuple[Any, Any, float]] = field(default_factory=dict)  # slot -> (handle, ping, t0)
    restarts: collections.Counter = field(default_factory=collections.Counter)  # slot -> failed starts in a row
    restart_at: dict[int, float] = field(default_factory=dict)  # slot -> when to try again (backoff)
    given_up: dict[int, str] = field(default_factory=dict)  # slot -> why
    items_per_second: dict = field(default_factory=dict)  # measured throughput per unit (rows, tiles)
    busy_seconds: float = 0.0
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))


class _Metrics:
    """Ray metrics (dashboard, Prometheus) fed by :class:`PoolCounters`: one set of counts."""

    def __init__(self):
        from ray.util.metrics import Counter, Histogram

        tags = ("tier",)
        self.counters = {name: Counter(f"hqray_pool_{name}", description=f"QuantumPool {name}", tag_keys=tags)
                         for name in COUNTER_NAMES}
        self.latency = Histogram("hqray_pool_shard_latency_s", description="QuantumPool shard latency",
                                 boundaries=[0.01, 0.05, 0.1, 0.5, 1, 5, 30], tag_keys=tags)

    def count(self, name: str, tier: str, value: float = 1.0) -> None:
        self.counters[name].inc(value, tags={"tier": tier})


class QuantumPool:
    """A pool of :class:`CircuitWorker` actors over the tiers of a :class:`PoolConfig`.

    Args:
        config: tiers, fallback order and limits (default: QPU -> GPU -> CPU).

    A tier whose resource the cluster lacks is skipped with a logged notice. Use as a
    context manager or call :meth:`shutdown` to release the workers and placement groups.

    **Example** (needs a Ray session)::

        with QuantumPool(PoolConfig(fallback_order=["cpu"])) as pool:
            outputs = pool.run(spec, inputs, weights)
    """

    def __init__(self, config: PoolConfig | None = None):
        if not ray.is_initialized():
            raise HqrayError("QuantumPool needs a Ray session: call hqray.cluster.connect() first")
        self.config = config or PoolConfig()
        self._lock = threading.RLock()
        self._metrics = _Metrics()
        self.counters = PoolCounters(sink=self._metrics.count)
        self._tiers: dict[str, _Tier] = {}
        # Calls of interrupted jobs still queued on workers: kept in the workers' queues
        # until they end, so later jobs see the real load.
        self._orphans: dict[Any, _Worker] = {}
        self.notices: list[str] = []
        self._node_id = ray.get_runtime_context().get_node_id()
        self._arena = SharedArena(int(self.config.shared_memory_mb * 2**20))
        plan = planned_workers(self.config, ray.cluster_resources())
        for name, (slots, notice) in plan.items():
            if notice:
                logger.warning(notice)
                self.notices.append(notice)
                continue
            self._tiers[name] = self._start_tier(name, self.config.tiers[name], slots)
        if not self._tiers:
            raise PoolError("no tier has workers: " + "; ".join(self.notices))
        for tier in self._tiers.values():
            self._await_starting(tier, block=True)
        self._closed = False

    # -- workers -----------------------------------------------------------------------------

    @staticmethod
    def _bundle(config: TierConfig) -> dict[str, float]:
        return {config.resource: 1.0 / config.workers_per_unit}

    def _start_tier(self, name: str, config: TierConfig, slots: int) -> _Tier:
        group = placement_group([self._bundle(config)] * slots, strategy="SPREAD")
        try:
            ray.get(group.ready(), timeout=self.config.worker_start_timeout_s)
        except GetTimeoutError:
            remove_placement_group(group)
            raise PoolError(f"tier {name!r}: {slots} workers of {self._bundle(config)} could not be "
                            f"placed within {self.config.worker_start_timeout_s} s") from None
        tier = _Tier(name, config, config.model_dump_json(), group)
        for slot in range(slots):
            self._start_worker(tier, slot)
        return tier

    def _start_worker(self, tier: _Tier, slot: int) -> None:
        amount = 1.0 / tier.config.workers_per_unit
        options: dict[str, Any] = {
            "scheduling_strategy": PlacementGroupSchedulingStrategy(tier.placement, placement_group_bundle_index=slot),
            "num_cpus": amount if tier.config.resource == "CPU" else 0,
        }
        if tier.config.resource == "GPU":
            options["num_gpus"] = amount
        elif tier.config.resource == "QPU":
            options["resources"] = {"QPU": amount}
        threads = max(1, int(amount)) if tier.config.resource == "CPU" else 1
        handle = CircuitWorker.options(**options).remote(tier.name, tier.json, threads)
        tier.starting[slot] = (handle, handle.info.remote(), time.monotonic())

    def _await_starting(self, tier: _Tier, block: bool = False) -> None:
        """Moves started workers into service; restarts slots whose worker died or did not start."""
        now = time.monotonic()
        for slot, due in list(tier.restart_at.items()):
            if now >= due:
                del tier.restart_at[slot]
                self._start_worker(tier, slot)
        for slot, (handle, ping, began) in list(tier.starting.items()):
            timeout = max(0.0, self.config.worker_start_timeout_s - (time.monotonic() - began)) if block else 0
            ready, _ = ray.wait([ping], timeout=timeout)
            if ready:
                del tier.starting[slot]
                try:
                    info = ray.get(ping)
                except RayActorError as error:
                    ray.kill(handle, no_restart=True)
                    self._restart_later(tier, slot, f"died while starting ({type(error).__name__})")
                    continue
                tier.workers[slot] = _Worker(handle, tier.name, slot, local=info["node_id"] == self._node_id)
            elif time.monotonic() - began > self.config.worker_start_timeout_s:
                del tier.starting[slot]
                ray.kill(handle, no_restart=True)
                self._restart_later(tier, slot, f"did not start within {self.config.worker_start_timeout_s:g} s")

    def _restart_later(self, tier: _Tier, slot: int, reason: str) -> None:
        """Restarts a slot after an exponential backoff, or gives it up after ``max_worker_restarts``
        failures in a row (a worker that completes a shard resets the count)."""
        tier.restarts[slot] += 1
        if tier.restarts[slot] > self.config.max_worker_restarts:
            tier.given_up[slot] = reason
            logger.warning("tier %r: worker slot %d given up after %d restarts: %s", tier.name, slot,
                           self.config.max_worker_restarts, reason)
            return
        backoff = min(10.0, 0.25 * 2 ** (tier.restarts[slot] - 1))
        tier.restart_at[slot] = time.monotonic() + backoff
        self.counters.add(tier.name, "restarts")
        logger.warning("tier %r: worker slot %d %s; restarting in %.2g s", tier.name, slot, reason, backoff)

    def _replace(self, worker: _Worker, reason: str) -> None:
        """Kills a worker (a hung one, or one Ray reports dead or unavailable, which may still
        hold its bundle) and restarts its slot (bounded, with backoff)."""
        tier = self._tiers[worker.tier]
        ray.kill(worker.handle, no_restart=True)
        if tier.workers.get(worker.slot) is not worker:
            return  # already replaced
        del tier.workers[worker.slot]
        self.counters.add(tier.name, "replaced")
        if ray.cluster_resources().get(tier.config.resource, 0.0) >= 1.0 / tier.config.workers_per_unit:
            self._restart_later(tier, worker.slot, reason)
        else:
            tier.given_up[worker.slot] = f"the cluster lost its {tier.config.resource} ({reason})"
            logger.warning("tier %r lost its %s; its shards fall back", tier.name, tier.config.resource)

    def _tier_available(self, tier: _Tier) -> bool:
        return bool(tier.workers or tier.starting or tier.restart_at)

    def _tier_notes(self) -> list[str]:
        """Why tiers have slots without workers (for errors that name the tier)."""
        return [f"tier {tier.name!r} slot {slot}: {reason}" for tier in self._tiers.values()
                for slot, reason in sorted(tier.given_up.items())]

    # -- public API --------------------------------------------------------------------------

    def workers(self) -> dict[str, list[dict]]:
        """Each tier's live workers: node, pid, assigned resources, and ``shared_memory``
        (on this process's node, so jobs' rows go through shared memory, not the object store)."""
        with self._lock:
            handles = {name: list(t.workers.values()) for name, t in self._tiers.items()}
        result = {}
        for name, group in handles.items():
            infos = ray.get([w.handle.info.remote() for w in group])
            result[name] = [{**info, "shared_memory": worker.local and self._arena.available}
                            for worker, info in zip(group, infos, strict=True)]
        return result

    def stats(self) -> dict[str, dict[str, float]]:
        """Per tier: workers, shards, rows, tiles, retries, fallbacks, failures, timeouts,
        duplicates, replaced, restarts, busy_seconds, p50/p95 shard latency (seconds), and
        shared_memory_shards (shards whose rows went through shared memory instead of the
        object store). The same counts feed Ray's metrics (``hqray_pool_*``)."""
        with self._lock:
            result = {}
            for name, tier in self._tiers.items():
                latencies = np.array(tier.latencies)
                p50, p95 = np.percentile(latencies, [50, 95]) if latencies.size else (np.nan, np.nan)
                result[name] = {
                    "workers": len(tier.workers),
                    **self.counters.of(name),
                    "busy_seconds": tier.busy_seconds,
                    "rows_per_second": tier.items_per_second.get("rows", 0.0),
                    "latency_p50_s": float(p50),  # NaN until a shard has finished
                    "latency_p95_s": float(p95),
                }
            return result

    def run(self, spec: CircuitSpec, inputs: Any, weights: Any,
            progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Outputs ``(n_rows, spec.n_outputs)``, in input order; raises :class:`PoolError` otherwise."""
        return self._execute("forward", spec, inputs, weights, None, progress).outputs

    def vjp(self, spec: CircuitSpec, inputs: Any, weights: Any, grad_outputs: Any,
            progress: Callable[[int, int], None] | None = None) -> PoolResult:
        """Outputs, ``d(sum grad_outputs * outputs)/d inputs`` per row, and the summed weight gradient."""
        return self._execute("vjp", spec, inputs, weights, grad_outputs, progress)

    def submit(self, spec: CircuitSpec, inputs: Any, weights: Any) -> Future:
        """Runs :meth:`run` in the background; the future resolves to the outputs."""
        future: Future = Future()

        def target():
            try:
                future.set_result(self.run(spec, inputs, weights))
            except BaseException as error:  # the caller sees it through the future
                future.set_exception(error)

        threading.Thread(target=target, daemon=True, name="hqray-pool-job").start()
        return future

    def shutdown(self) -> None:
        """Kills the workers and removes the placement groups (resources are released)."""
        with self._lock:
            for tier in self._tiers.values():
                for worker in tier.workers.values():
                    ray.kill(worker.handle, no_restart=True)
                for handle, _, _ in tier.starting.values():
                    ray.kill(handle, no_restart=True)
                tier.workers.clear()
                tier.starting.clear()
                remove_placement_group(tier.placement)
            self._arena.close()
            self._closed = True

    def __enter__(self) -> QuantumPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # -- execution ---------------------------------------------------------------------------

    def _validate(self, spec: CircuitSpec, inputs: Any, weights: Any, grad_outputs: Any):
        if getattr(self, "_closed", False):
            raise PoolError("this QuantumPool was shut down")
        if not isinstance(spec, CircuitSpec):
            raise ConfigError(f"spec must be a CircuitSpec, got {type(spec).__name__}")
        try:
            inputs = np.asarray(inputs, dtype=np.float64 if spec.precision == "double" else np.float32)
            weights = np.asarray(weights, dtype=inputs.dtype)
        except (TypeError, ValueError) as error:
            raise CircuitError(f"inputs and weights must be numeric arrays: {error}") from None
        if inputs.ndim != 2 or inputs.shape[0] == 0:
            raise CircuitError(f"inputs must be a non-empty 2-D array (rows, features), got shape {inputs.shape}")
        if not 1 <= inputs.shape[1] <= spec.n_features:
            raise CircuitError(f"the embedding of {spec.n_qubits} qubits takes 1 to {spec.n_features} "
                               f"features, got {inputs.shape[1]}")
        if not np.isfinite(inputs).all():  # one pass; rows are located only on failure
            bad = ~np.isfinite(inputs).all(axis=1)
            raise CircuitError(f"inputs contain NaN/inf in rows {np.flatnonzero(bad)[:10].tolist()}; "
                               "expected finite numbers")
        if weights.shape != spec.weight_shape or not np.isfinite(weights).all():
            raise CircuitError(f"weights must be finite with shape {spec.weight_shape}, got {weights.shape}")
        if grad_outputs is not None:
            grad_outputs = np.asarray(grad_outputs, dtype=inputs.dtype)
            if grad_outputs.shape != (inputs.shape[0], spec.n_outputs):
                raise CircuitError(f"grad_outputs must have shape {(inputs.shape[0], spec.n_outputs)}, "
                                   f"got {grad_outputs.shape}")
        if spec.measurement == "state":
            raise CircuitError("the pool returns measurements; measurement 'state' is not supported")
        return inputs, weights, grad_outputs

    def _shard_rows(self, tier: _Tier, n_rows: int, unit: str, n_qubits: int, double: bool) -> int:
        """Rows for the next shard: about ``target_shard_seconds`` of the tier's measured
        throughput (at least ``min_shard_rows``), capped so every live worker gets a shard
        (balance) and by the tier's ``max_shard_rows`` and ``max_shard_state_mb`` (memory,
        which wins over ``min_shard_rows``). Not more shards than that: each actor call costs
        about 2 ms of Ray's time on a 2-core machine, a tenth of a 100,000-row 4-qubit job."""
        balanced = math.ceil(n_rows / max(1, len(tier.workers)))
        if unit == "tiles":  # a tile is already sized for memory; balance is what matters
            return max(1, min(balanced, 4))
        emulation = tier.config.emulation
        wanted = wanted_shard_items(tier.items_per_second.get(unit), self.config.target_shard_seconds,
                                    emulation.job_latency_s if emulation else 0.0, self.config.min_shard_rows)
        limit = emulation.max_circuits_per_job if emulation else tier.config.max_shard_rows
        return max(1, min(tier.config.max_shard_rows, limit, self._memory_rows(tier, n_qubits, double), balanced,
                          wanted))

    @staticmethod
    def _memory_rows(tier: _Tier, n_qubits: int, double: bool) -> int:
        """Rows whose quantum state fits the tier's ``max_shard_state_mb`` (0: not even one)."""
        return int(tier.config.max_shard_state_mb * 2**20 // tier.config.state_bytes_per_row(n_qubits, double))

    def _tiers_that_fit(self, n_qubits: int, double: bool) -> set[str]:
        """Tiers where one row's state fits the memory cap; raises when none does, before anything runs."""
        fit = {name for name, tier in self._tiers.items() if self._memory_rows(tier, n_qubits, double) >= 1}
        if not fit:
            needs = ", ".join(f"{tier.config.state_bytes_per_row(n_qubits, double) / 2**20:,.0f} MB on tier "
                              f"{name!r} (max_shard_state_mb {tier.config.max_shard_state_mb:g})"
                              for name, tier in self._tiers.items())
            raise CircuitError(f"one row of a {n_qubits}-qubit circuit needs {needs}: no tier's memory cap holds "
                               "it; raise max_shard_state_mb or use fewer qubits")
        return fit

    def _execute(self, kind: str, spec: CircuitSpec, inputs: Any, weights: Any, grad_outputs: Any,
                 progress: Callable[[int, int], None] | None) -> Any:
        inputs, weights, grad_outputs = self._validate(spec, inputs, weights, grad_outputs)
        n_rows = inputs.shape[0]
        spec_json = spec.model_dump_json()
        outputs = np.empty((n_rows, spec.n_outputs), dtype=inputs.dtype)
        grad_inputs = np.empty_like(inputs) if kind == "vjp" else None
        grad_weights = np.zeros_like(weights) if kind == "vjp" else None
        row_arrays = {"inputs": inputs, "outputs": outputs}
        if kind == "vjp":
            row_arrays.update(grad_outputs=grad_outputs, grad_inputs=grad_inputs)
        inline = sum(array.nbytes for array in (inputs, weights, grad_outputs) if array is not None) \
            <= INLINE_ARGUMENT_BYTES
        shapes = {name: (array.shape, array.dtype) for name, array in row_arrays.items()}
        lease = None if inline or not self._has_local_workers() else self._arena.lease(
            plan_layout("", shapes).nbytes)
        layout = shared = None
        if lease is not None:
            layout, shared = lease.layout(shapes)
            shared["inputs"][...] = inputs
            if kind == "vjp":
                shared["grad_outputs"][...] = grad_outputs
        # Arrays for workers that do not share memory with this process: small ones travel
        # inside the actor call; large ones are stored once (on first need) for every shard.
        stored: dict[str, Any] = {}

        def by_value(name: str, array: np.ndarray) -> Any:
            if inline:
                return array
            if name not in stored:
                stored[name] = ray.put(array)
            return stored[name]

        def submit(worker: _Worker, shard: Shard):
            if layout is not None and worker.local and not shard.errors:
                # Only a shard's first attempt uses shared memory; retries go through the
                # object store, so no late writer can mix into them (hqray.cluster.transport).
                self.counters.add(worker.tier, "shared_memory_shards")
                source, grad_source, write_shared = layout, None, True
            else:
                source, write_shared = by_value("inputs", inputs), False
                grad_source = by_value("grad_outputs", grad_outputs) if kind == "vjp" else None
            args = (spec_json, source, shard.start, shard.stop, weights)
            if kind == "vjp":
                return worker.handle.vjp.remote(*args, grad_source, write_shared)
            return worker.handle.forward.remote(*args, write_shared)

        def accept(shard: Shard, value) -> None:
            rows = slice(shard.start, shard.stop)
            outputs[rows] = shared["outputs"][rows] if value[0] is None else value[0]
            if kind == "vjp":
                grad_inputs[rows] = shared["grad_inputs"][rows] if value[1] is None else value[1]
                grad_weights[...] += value[2]

        clean = False
        try:
            clean = self._dispatch("rows", n_rows, submit, accept, progress, spec.n_qubits,
                                   inputs.dtype == np.float64)
        finally:
            if lease is not None:
                self._arena.release(lease, reusable=clean)
        return PoolResult(outputs, grad_inputs, grad_weights)

    def _has_local_workers(self) -> bool:
        with self._lock:
            return any(worker.local for tier in self._tiers.values() for worker in tier.workers.values())

    def gram_tiles(self, kernel_json: str, left: np.ndarray, right: np.ndarray | None,
                   tile_bounds: list[tuple[int, int, int, int]],
                   progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        """Kernel tiles on the workers (same retries, fallback and exactly-once contract).

        Tiles on a tier with ``shots`` are finite-shot estimates, as a QPU would give.
        """
        if getattr(self, "_closed", False):
            raise PoolError("this QuantumPool was shut down")
        if not tile_bounds:
            raise CircuitError("no tiles to compute")
        left_ref = ray.put(left)
        right_ref = ray.put(right) if right is not None else left_ref
        bounds = np.asarray(tile_bounds, dtype=np.int64)
        bounds_ref = ray.put(bounds)
        blocks: list[np.ndarray | None] = [None] * len(tile_bounds)

        def submit(worker: _Worker, shard: Shard):
            return worker.handle.gram_tiles.remote(kernel_json, left_ref, right_ref, bounds_ref,
                                                   shard.start, shard.stop)

        def accept(shard: Shard, value) -> None:
            blocks[shard.start:shard.stop] = value[0]

        self._dispatch("tiles", len(tile_bounds), submit, accept, progress)
        return blocks

    def _dispatch(self, unit: str, n_items: int, submit: Callable[[_Worker, Shard], Any],
                  accept: Callable[[Shard, Any], None],
                  progress: Callable[[int, int], None] | None, n_qubits: int = 0, double: bool = False) -> bool:
        """Runs items ``0..n_items-1`` (rows or tiles) in shards over the tiers.

        :class:`ShardScheduler` decides what runs where; this moves shards to and from the
        actors. ``submit(worker, shard)`` starts a shard and returns its object ref;
        ``accept(shard, value)`` stores a result and is called exactly once per shard. Raises
        PoolError naming the items no tier could compute. Returns whether every attempt
        finished cleanly (no failure, timeout or lost worker: no attempt can still be
        writing). Whatever ends the job (an error, an interrupt, a raising ``progress``),
        the pool stays usable: its calls still queued on workers are tracked until they end.
        """
        fits = self._tiers_that_fit(n_qubits, double) if unit == "rows" else set(self._tiers)
        order = [name for name in self.config.fallback_order if name in self._tiers and name in fits]
        policy = SchedulerPolicy(retries=self.config.retries, max_worker_losses=self.config.max_worker_losses,
                                 max_inflight=self.config.max_inflight_shards,
                                 tier_queue_depth={name: tier.config.emulation.queue_depth
                                                   for name, tier in self._tiers.items() if tier.config.emulation},
                                 timeout_s={name: tier.config.timeout_s for name, tier in self._tiers.items()})
        scheduler = ShardScheduler(n_items, order, policy, self.counters, unit)
        owners: dict[Any, _Worker] = {}  # this job's calls -> the worker running them
        last_log = time.monotonic()
        try:
            while not scheduler.finished:
                with self._lock:
                    self._place_shards(scheduler, owners, submit, unit, n_items, n_qubits, double)
                waiting = scheduler.waiting_keys()
                if not waiting:
                    if scheduler.has_pending:
                        time.sleep(0.05)  # workers are (re)starting; nothing to wait on yet
                    continue
                ready, _ = ray.wait(waiting, num_returns=1, timeout=self._next_wake(scheduler, owners))
                with self._lock:
                    for key in ready:
                        self._settle(scheduler, owners, key, accept, unit)
                    now = time.monotonic()
                    for key, tier_name, _ in scheduler.expired(lambda key: owners[key].started_at(key), now):
                        worker = owners[key]
                        worker.dequeue(key, now)
                        self._replace(worker, f"a shard timed out after {self._tiers[tier_name].config.timeout_s:g} s")
                if progress is not None:
                    progress(scheduler.items_done, n_items)
                if time.monotonic() - last_log > PROGRESS_LOG_SECONDS:
                    logger.info("pool job: %d/%d %s", scheduler.items_done, n_items, unit)
                    last_log = time.monotonic()
        finally:
            with self._lock:  # calls this job leaves on workers stay counted until they end
                for key in scheduler.waiting_keys():
                    if key in owners and key in owners[key].queue:
                        self._orphans[key] = owners[key]
        report = scheduler.failure_report()
        if report is not None:
            message, ranges, causes = report
            notes = self._tier_notes()
            raise PoolError(message + (f" [{'; '.join(notes)}]" if notes else ""), failed_rows=ranges,
                            causes=causes + notes)
        return scheduler.clean

    def _place_shards(self, scheduler: ShardScheduler, owners: dict, submit, unit: str, n_items: int,
                      n_qubits: int, double: bool) -> None:
        """Starts due workers, reaps finished orphan calls, and submits what the scheduler places."""
        for tier in self._tiers.values():
            if tier.starting or tier.restart_at:
                self._await_starting(tier)
        self._reap_orphans()
        load = {name: {slot: len(worker.queue) for slot, worker in tier.workers.items()}
                for name, tier in self._tiers.items()}
        placed = scheduler.assign(load, lambda name: self._shard_rows(self._tiers[name], n_items, unit, n_qubits,
                                                                      double),
                                  available=lambda name: self._tier_available(self._tiers[name]))
        now = time.monotonic()
        for shard, tier_name, slot in placed:
            worker = self._tiers[tier_name].workers[slot]
            key = submit(worker, shard)
            worker.enqueue(key, now)
            owners[key] = worker
            scheduler.dispatched(key, shard, tier_name, slot)

    def _next_wake(self, scheduler: ShardScheduler, owners: dict) -> float:
        """Seconds until the first started shard could time out (at most 1 s, to start workers)."""
        now, wake = time.monotonic(), 1.0
        for key, (_, tier_name, _) in scheduler.inflight().items():
            began = owners[key].started_at(key)
            if began is not None:
                wake = min(wake, self._tiers[tier_name].config.timeout_s - (now - began))
        return max(0.0, wake)

    def _settle(self, scheduler: ShardScheduler, owners: dict, key: Any, accept, unit: str) -> None:
        """One call ended: its result is accepted (once), or its shard goes back to the scheduler."""
        worker = owners[key]
        now = time.monotonic()
        began = worker.started_at(key)
        worker.dequeue(key, now)
        inflight = scheduler.is_inflight(key)
        try:
            value = ray.get(key)
        except RayActorError as error:  # dead, or unavailable (it may still hold its bundle): replace
            if inflight:
                scheduler.worker_lost(key, f"worker died ({type(error).__name__})")
                self._replace(worker, f"worker died ({type(error).__name__})")
            else:
                scheduler.forget_abandoned(key)
            return
        except RayTaskError as error:
            if inflight:
                scheduler.shard_failed(key, f"shard failed: {error.cause!r}"[:300])
            else:
                scheduler.forget_abandoned(key)
            return
        shard = scheduler.completed(key)
        if shard is None:
            return  # a late or duplicate result: discarded
        accept(shard, value)
        tier = self._tiers[worker.tier]
        tier.restarts[worker.slot] = 0  # a working worker: its slot's failures are forgiven
        busy = value[-1]
        latency = now - (began if began is not None else now)
        self.counters.add(tier.name, "shards")
        self.counters.add(tier.name, unit, shard.items)
        tier.busy_seconds += busy
        tier.latencies.append(latency)
        self._metrics.latency.observe(latency, tags={"tier": tier.name})
        rate = shard.items / max(busy, 1e-6)
        previous = tier.items_per_second.get(unit)
        tier.items_per_second[unit] = rate if previous is None else 0.7 * previous + 0.3 * rate

    def _reap_orphans(self) -> None:
        """Drops calls of ended jobs that have finished from their workers' queues."""
        if not self._orphans:
            return
        done, _ = ray.wait(list(self._orphans), num_returns=len(self._orphans), timeout=0)
        now = time.monotonic()
        for key in done:
            self._orphans.pop(key).dequeue(key, now)


def kill_worker_on_progress(pool: QuantumPool, thresholds: list[int], tier: str = "cpu"):
    """Chaos testing: a ``progress`` callback that kills one live worker of ``tier`` each time
    the job passes the next of ``thresholds`` (rows done). Returns ``(callback, kills)``;
    ``kills`` collects the rows done at each kill.

    **Example**: ``callback, kills = kill_worker_on_progress(pool, [5_000, 20_000])``, then
    ``pool.run(spec, inputs, weights, progress=callback)``.
    """
    pending, kills = sorted(thresholds), []

    def callback(done: int, total: int) -> None:
        if pending and done >= pending[0]:
            pending.pop(0)
            live = list(pool._tiers[tier].workers.values())
            if live:
                ray.kill(live[0].handle, no_restart=True)
                kills.append(done)

    return callback, kills
