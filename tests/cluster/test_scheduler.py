"""ShardScheduler without Ray: placement, retries, fallback, timeouts, exactly-once."""

from __future__ import annotations

import pytest

from hqray.cluster.scheduler import PoolCounters, SchedulerPolicy, ShardScheduler


def scheduler(n_items=10, order=("cpu",), **policy) -> ShardScheduler:
    return ShardScheduler(n_items, list(order), SchedulerPolicy(**policy), PoolCounters())


def place(sched, load, size=5, available=None):
    placed = sched.assign(load, lambda tier: size, available)
    keys = []
    for shard, tier, slot in placed:
        key = (shard.start, tier, slot, len(sched.waiting_keys()) + len(keys))
        sched.dispatched(key, shard, tier, slot)
        keys.append(key)
    return keys


def test_a_retry_goes_to_another_worker_when_one_exists():
    sched = scheduler(10)
    first = place(sched, {"cpu": {0: 0, 1: 1}}, size=10)
    assert [key[2] for key in first] == [0]  # the least loaded worker
    sched.shard_failed(first[0], "boom")
    retry = place(sched, {"cpu": {0: 0, 1: 1}}, size=10)
    assert [key[2] for key in retry] == [1]  # not the worker that failed it, though it is busier
    sched.shard_failed(retry[0], "boom")
    # Both failed it: the least loaded one is used again rather than waiting forever.
    again = place(sched, {"cpu": {0: 1, 1: 0}}, size=10)
    assert [key[2] for key in again] == [1]


def test_a_lost_worker_costs_no_retry_until_max_worker_losses():
    sched = scheduler(5, retries=0, max_worker_losses=2)
    for _ in range(2):
        (key,) = place(sched, {"cpu": {0: 0}})
        sched.worker_lost(key, "worker died")
    assert sched.counters.of("cpu")["retries"] == 2 and not sched.failed
    (key,) = place(sched, {"cpu": {0: 0}})
    sched.worker_lost(key, "worker died")  # the third loss spends the (zero) retries: no tier left
    assert place(sched, {"cpu": {0: 0}}) == [] and sched.finished
    message, ranges, causes = sched.failure_report()
    assert ranges == [(0, 5)] and "no tier left to try" in message and "cpu: worker died" in causes[0]


def test_spent_retries_fall_back_to_the_next_tier_and_count_it():
    sched = scheduler(4, order=("qpu", "cpu"), retries=1)
    load = {"qpu": {0: 0}, "cpu": {0: 0}}
    for _ in range(2):
        (key,) = place(sched, load, size=4)
        assert key[1] == "qpu"
        sched.shard_failed(key, "calibration drift")
    (key,) = place(sched, load, size=4)
    assert key[1] == "cpu" and sched.counters.of("cpu")["fallbacks"] == 1
    assert sched.completed(key) is not None and sched.finished and sched.failure_report() is None
    assert sched.counters.of("qpu")["retries"] == 1 and sched.counters.of("qpu")["failures"] == 2


def test_a_tier_without_workers_is_skipped_and_none_left_names_the_items():
    sched = scheduler(6, order=("gpu", "cpu"))
    keys = place(sched, {"gpu": {}, "cpu": {0: 0}}, size=3)
    assert [key[1] for key in keys] == ["cpu", "cpu"]
    empty = scheduler(6)
    assert place(empty, {"cpu": {}}) == [] and empty.finished
    message, ranges, _ = empty.failure_report()
    assert ranges == [(0, 6)] and "6 of 6 rows could not be computed" in message and "no tier has live" in message


def test_backpressure_and_worker_queue_depth():
    sched = scheduler(100, max_inflight=3)
    assert len(place(sched, {"cpu": {0: 0, 1: 0}}, size=10)) == 3  # max_inflight
    sched2 = scheduler(100)
    keys = place(sched2, {"cpu": {0: 0}}, size=10)
    assert len(keys) == 2  # two calls queued on the one worker, no more


def test_an_emulated_qpus_queue_depth_caps_the_calls_out_on_its_tier():
    sched = scheduler(100, order=("qpu",), tier_queue_depth={"qpu": 1})
    assert len(place(sched, {"qpu": {0: 0, 1: 0}}, size=10)) == 1  # two workers, one job at a time
    assert not place(sched, {"qpu": {0: 1, 1: 0}}, size=10)  # the device is busy: nothing more goes out
    assert len(place(sched, {"qpu": {0: 0, 1: 0}}, size=10)) == 1


def test_timeouts_count_from_the_start_and_late_results_are_discarded():
    sched = scheduler(10, timeout_s={"cpu": 5.0})
    first, second = place(sched, {"cpu": {0: 0}}, size=5)
    started = {first: 100.0, second: None}  # the second waits behind the first: not started
    assert sched.expired(started.get, now=104.0) == []
    assert sched.expired(started.get, now=200.0) == [(first, "cpu", 0)]  # only the started one
    assert sched.counters.of("cpu")["timeouts"] == 1
    (retry,) = place(sched, {"cpu": {1: 0}}, size=5)
    assert retry[0] == 0 and sched.completed(retry) is not None
    assert sched.completed(first) is None  # the hung attempt answered late: discarded
    assert sched.counters.of("cpu")["duplicates"] == 1
    assert sched.completed(second) is not None and sched.finished and not sched.clean


def test_every_item_is_written_exactly_once():
    sched = scheduler(10)
    keys = place(sched, {"cpu": {0: 0, 1: 0}}, size=5)
    sched.worker_lost(keys[0], "worker died")  # re-sent
    (again,) = place(sched, {"cpu": {1: 1}}, size=5)
    assert sched.completed(keys[1]).start == 5 and sched.completed(again).start == 0
    assert sched.written.all() and sched.items_done == 10


def test_unknown_counter_names_are_refused():
    with pytest.raises(KeyError, match="unknown pool counter 'retry'"):
        PoolCounters().add("cpu", "retry")


def test_jobs_grow_when_a_qpus_latency_dominates():
    from hqray.cluster.scheduler import wanted_shard_items

    assert wanted_shard_items(None, 0.5, 2.0, 64) == 256  # no measurement yet
    assert wanted_shard_items(1000.0, 0.5, 0.0, 64) == 500  # about half a second of compute
    # 2 s of latency per job: a job of 8 s of compute, so latency is a fifth of it.
    assert wanted_shard_items(1000.0, 0.5, 2.0, 64) == 8000
    assert wanted_shard_items(10.0, 0.5, 0.0, 64) == 64  # never below min_shard_rows
