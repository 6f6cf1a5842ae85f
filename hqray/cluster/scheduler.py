"""Shard bookkeeping of one pool job, without Ray: what runs where, and what happens next.

A job's items (rows or kernel tiles) ``0..n-1`` are cut into shards. A shard is
*pending* (new, or waiting for a retry), *in flight* on one worker of one tier, or
*done*; a shard no tier could compute is *failed*, and its items are named in the
:class:`~hqray.cluster.pool.PoolError`. :class:`ShardScheduler` decides:

* which tier a shard runs on: the first in the fallback order that is available, the
  next one once ``retries`` extra attempts there failed;
* which worker: the least loaded one with room (two calls queued at most), never one
  that already failed the shard when another exists;
* what a failure costs: a worker that died is not the shard's fault (no retry spent, up
  to ``max_worker_losses`` re-sends); a shard error spends a retry; a timeout, counted
  from when the worker *starts* the shard (not from submission), spends one too, and the
  late result is discarded;
* that each item is written exactly once (a late duplicate is dropped).

The pool (``hqray.cluster.pool``) only moves shards between this class and the actors;
:class:`PoolCounters` is the one set of counters that feeds ``stats()`` and Ray metrics.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Shard", "ShardScheduler", "SchedulerPolicy", "PoolCounters", "WORKER_QUEUE_DEPTH", "wanted_shard_items"]

WORKER_QUEUE_DEPTH = 2  # calls queued on one worker: the next shard is ready when the current one ends
COUNTER_NAMES = ("shards", "rows", "tiles", "retries", "fallbacks", "failures", "timeouts", "duplicates",
                 "replaced", "restarts", "shared_memory_shards")


class PoolCounters:
    """Per-tier counters; every increment also goes to ``sink`` (Ray metrics), so both views agree.

    **Example**

    >>> seen = []
    >>> counters = PoolCounters(sink=lambda name, tier, value: seen.append((name, tier, value)))
    >>> counters.add("cpu", "retries")
    >>> counters.get("cpu", "retries"), seen
    (1, [('retries', 'cpu', 1)])
    """

    def __init__(self, sink: Callable[[str, str, float], None] | None = None):
        self._counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._sink = sink

    def add(self, tier: str, name: str, value: float = 1) -> None:
        if name not in COUNTER_NAMES:
            raise KeyError(f"unknown pool counter {name!r}; expected one of {COUNTER_NAMES}")
        if value:
            self._counts[tier][name] += value
            if self._sink is not None:
                self._sink(name, tier, value)

    def get(self, tier: str, name: str) -> int:
        return int(self._counts[tier][name])

    def of(self, tier: str) -> dict[str, int]:
        return {name: self.get(tier, name) for name in COUNTER_NAMES}


@dataclass
class Shard:
    """Items ``start..stop-1`` and their history in this job."""

    start: int
    stop: int
    position: int = 0  # index into the fallback order
    attempts: int = 0  # failed attempts on the current tier
    fallback_counted: int = 0  # highest tier position already counted as a fallback
    worker_losses: int = 0  # re-sends because the worker died (no retry spent)
    avoid: set[tuple[str, int]] = field(default_factory=set)  # (tier, slot) of workers that failed it
    errors: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return self.stop - self.start


def wanted_shard_items(rate: float | None, target_seconds: float, job_latency_s: float, min_items: int) -> int:
    """Items for a shard of about ``target_seconds`` of compute at the measured ``rate``
    (compute only, items/s; ``None`` before the first result: ``4 * min_items``). A tier with
    per-job latency gets jobs at least ``4 * latency`` long, so latency is at most a fifth.

    >>> wanted_shard_items(1000.0, 0.5, 0.0, 64), wanted_shard_items(1000.0, 0.5, 2.0, 64)
    (500, 8000)
    """
    if rate is None:
        return 4 * min_items
    return max(min_items, int(rate * max(target_seconds, 4 * job_latency_s)))


@dataclass(frozen=True)
class SchedulerPolicy:
    """The limits a job runs under (from :class:`~hqray.cluster.config.PoolConfig`)."""

    retries: int = 2
    max_worker_losses: int = 20
    max_inflight: int = 16
    timeout_s: Mapping[str, float] = field(default_factory=dict)  # per tier
    tier_queue_depth: Mapping[str, int] = field(default_factory=dict)  # most calls out on a tier (emulated QPUs)


@dataclass
class _Attempt:
    shard: Shard
    tier: str
    slot: int


class ShardScheduler:
    """The state machine of one job over ``n_items``, tiers tried in ``order``.

    **Example** (a job of 10 items on one tier with two workers)

    >>> scheduler = ShardScheduler(10, ["cpu"], SchedulerPolicy(), PoolCounters())
    >>> placed = scheduler.assign({"cpu": {0: 0, 1: 0}}, size=lambda tier: 5)
    >>> [(s.start, s.stop, tier, slot) for s, tier, slot in placed]
    [(0, 5, 'cpu', 0), (5, 10, 'cpu', 1)]
    >>> for key, (shard, tier, slot) in enumerate(placed):
    ...     scheduler.dispatched(key, shard, tier, slot)
    >>> scheduler.worker_lost(0, "worker died")  # re-sent, no retry spent
    >>> scheduler.completed(1) is not None
    True
    >>> [(s.start, slot) for s, _, slot in scheduler.assign({"cpu": {1: 0}}, size=lambda tier: 5)]
    [(0, 1)]
    """

    def __init__(self, n_items: int, order: Sequence[str], policy: SchedulerPolicy, counters: PoolCounters,
                 unit: str = "rows"):
        self.n_items = n_items
        self.order = list(order)
        self.policy = policy
        self.counters = counters
        self.unit = unit
        self.written = np.zeros(n_items, dtype=bool)
        self._next_item = 0
        self._retry: collections.deque[Shard] = collections.deque()
        self._inflight: dict[Hashable, _Attempt] = {}
        self._abandoned: dict[Hashable, _Attempt] = {}  # timed out, maybe still running: results discarded
        self.failed: list[Shard] = []
        self.requeued = 0
        self.items_done = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Every item is written or named as failed."""
        return self.items_done + sum(shard.items for shard in self.failed) >= self.n_items

    @property
    def clean(self) -> bool:
        """No attempt failed, timed out or lost its worker: none can still be writing."""
        return self.requeued == 0 and not self._abandoned

    @property
    def has_pending(self) -> bool:
        return bool(self._retry) or self._next_item < self.n_items

    def is_inflight(self, key: Hashable) -> bool:
        """Whether ``key`` is a live attempt (not abandoned after a timeout, not settled)."""
        return key in self._inflight

    def inflight(self) -> dict[Hashable, tuple[Shard, str, int]]:
        return {key: (a.shard, a.tier, a.slot) for key, a in self._inflight.items()}

    def waiting_keys(self) -> list[Hashable]:
        """Keys whose results may still arrive (in flight, or abandoned after a timeout)."""
        return [*self._inflight, *self._abandoned]

    # -- placing shards ----------------------------------------------------------------------

    def assign(self, load: Mapping[str, Mapping[int, int]], size: Callable[[str], int],
               available: Callable[[str], bool] | None = None) -> list[tuple[Shard, str, int]]:
        """Shards to submit now, each with its tier and worker slot.

        Args:
            load: per tier, the calls queued on each live worker (``{slot: queued}``).
            size: items for a new shard on a tier.
            available: whether a tier can still get workers (live or starting); default:
                it has live workers in ``load``.
        """
        available = available or (lambda tier: bool(load.get(tier)))
        queued = {tier: dict(slots) for tier, slots in load.items()}
        placed = []
        while len(self._inflight) + len(placed) < self.policy.max_inflight and self.has_pending:
            shard = self._next_shard(available, size)
            if shard is None:
                continue  # it failed for good: no tier left
            tier = self.order[shard.position]
            depth = self.policy.tier_queue_depth.get(tier)
            full = depth is not None and sum(queued.get(tier, {}).values()) >= depth
            slot = None if full else self._pick_worker(shard, tier, queued.get(tier, {}))
            if slot is None:
                self._retry.appendleft(shard)  # no room on its tier now: wait for a result
                break
            queued[tier][slot] += 1
            if shard.position > 0 and shard.fallback_counted < shard.position:
                shard.fallback_counted = shard.position  # here because an earlier tier could not take it
                self.counters.add(tier, "fallbacks")
            placed.append((shard, tier, slot))
        return placed

    def _next_shard(self, available: Callable[[str], bool], size: Callable[[str], int]) -> Shard | None:
        shard = self._retry.popleft() if self._retry else None
        position = shard.position if shard is not None else 0
        while position < len(self.order) and not available(self.order[position]):
            position += 1  # the tier is gone: fall back
        if shard is None:
            if position < len(self.order):
                items = max(1, size(self.order[position]))
                shard = Shard(self._next_item, min(self.n_items, self._next_item + items), position)
            else:
                shard = Shard(self._next_item, self.n_items, position)
            self._next_item = shard.stop
        elif position != shard.position:
            shard.position, shard.attempts = position, 0
        if position >= len(self.order):
            shard.errors.append("no tier left to try" if shard.errors else "no tier has live workers")
            self.failed.append(shard)
            return None
        return shard

    @staticmethod
    def _pick_worker(shard: Shard, tier: str, queued: Mapping[int, int]) -> int | None:
        roomy = [slot for slot, calls in queued.items() if calls < WORKER_QUEUE_DEPTH]
        fresh = [slot for slot in roomy if (tier, slot) not in shard.avoid] or roomy
        return min(fresh, key=lambda slot: (queued[slot], slot)) if fresh else None

    def dispatched(self, key: Hashable, shard: Shard, tier: str, slot: int) -> None:
        """``shard`` was submitted to worker ``slot`` of ``tier`` as ``key``."""
        self._inflight[key] = _Attempt(shard, tier, slot)

    # -- outcomes ----------------------------------------------------------------------------

    def completed(self, key: Hashable) -> Shard | None:
        """A result arrived: the shard to accept, or ``None`` when it must be discarded
        (a timed-out attempt's late result, or items a retry already wrote)."""
        if key in self._abandoned:
            attempt = self._abandoned.pop(key)
            self.counters.add(attempt.tier, "duplicates")
            return None
        attempt = self._inflight.pop(key)
        shard = attempt.shard
        if self.written[shard.start:shard.stop].any():
            self.counters.add(attempt.tier, "duplicates")
            return None
        self.written[shard.start:shard.stop] = True
        self.items_done += shard.items
        return shard

    def forget_abandoned(self, key: Hashable) -> None:
        """A timed-out attempt ended with an error: nothing to discard any more."""
        self._abandoned.pop(key, None)

    def worker_lost(self, key: Hashable, reason: str) -> None:
        """The worker died under the shard (killed, node lost): re-sent, no retry spent."""
        attempt = self._inflight.pop(key)
        self._requeue(attempt, reason, worker_lost=True)

    def shard_failed(self, key: Hashable, reason: str) -> None:
        """The shard raised on its worker: a retry is spent."""
        attempt = self._inflight.pop(key)
        self._requeue(attempt, reason, worker_lost=False)

    def expired(self, started_at: Callable[[Hashable], float | None], now: float) -> list[tuple[Hashable, str, int]]:
        """Attempts past their tier's timeout, counted from when their worker started them;
        they are abandoned (a late result is discarded) and retried elsewhere. Returns
        ``(key, tier, slot)`` of each, so the pool can kill the hung worker."""
        expired = []
        for key, attempt in list(self._inflight.items()):
            began = started_at(key)
            timeout = self.policy.timeout_s.get(attempt.tier)
            if began is None or timeout is None or now - began <= timeout:
                continue
            del self._inflight[key]
            self._abandoned[key] = attempt
            self.counters.add(attempt.tier, "timeouts")
            self._requeue(attempt, f"timed out after {timeout:g} s", worker_lost=False)
            expired.append((key, attempt.tier, attempt.slot))
        return expired

    def _requeue(self, attempt: _Attempt, reason: str, worker_lost: bool) -> None:
        shard, tier = attempt.shard, attempt.tier
        self.requeued += 1
        shard.errors.append(f"{tier}: {reason}")
        shard.avoid.add((tier, attempt.slot))
        self.counters.add(tier, "failures")
        if worker_lost and shard.worker_losses < self.policy.max_worker_losses:
            shard.worker_losses += 1
            self.counters.add(tier, "retries")
        else:
            shard.attempts += 1
            if shard.attempts > self.policy.retries:
                shard.position, shard.attempts = shard.position + 1, 0  # fall back
            else:
                self.counters.add(tier, "retries")
        self._retry.append(shard)

    # -- the end -----------------------------------------------------------------------------

    def failure_report(self) -> tuple[str, list[tuple[int, int]], list[str]] | None:
        """``(message, failed ranges, causes)`` when items could not be computed, else ``None``."""
        if self.failed:
            unit = self.unit
            ranges = sorted((shard.start, shard.stop) for shard in self.failed)
            causes = [f"{unit} {s.start}-{s.stop - 1}: " + "; ".join(s.errors[-3:]) for s in self.failed[:5]]
            count = sum(shard.items for shard in self.failed)
            message = (f"{count} of {self.n_items} {unit} could not be computed "
                       f"({unit} {ranges[:10]}{'...' if len(ranges) > 10 else ''}): " + " | ".join(causes))
            return message, ranges, causes
        if not self.written.all():  # cannot happen by construction; checked anyway
            missing = np.flatnonzero(~self.written)
            return (f"internal error: {self.unit} {missing[:10].tolist()} were never written",
                    [(int(r), int(r) + 1) for r in missing], [])
        return None
