"""The shared-memory arena: leases, reuse, retirement, budget, and a second process's view."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hqray.cluster import transport
from hqray.cluster.transport import PREFIX, SHM_DIRECTORY, SharedArena, attach

pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIRECTORY), reason="needs /dev/shm")


def segments_of_this_process() -> list[str]:
    return [name for name in os.listdir(SHM_DIRECTORY) if name.startswith(f"{PREFIX}{os.getpid()}-")]


@pytest.fixture
def arena():
    arena = SharedArena(8 * 2**20)
    yield arena
    arena.close()


def test_a_clean_jobs_segment_is_reused_and_a_retired_one_removed(arena):
    first = arena.lease(100_000)
    arena.release(first, reusable=True)
    second = arena.lease(50_000)
    assert second is first  # same pages: no fresh page faults for the next job
    arena.release(second, reusable=False)  # e.g. a worker was killed while it may be writing
    assert not os.path.exists(first.path)
    third = arena.lease(50_000)
    assert third is not first and os.path.exists(third.path)
    arena.release(third, reusable=True)
    arena.close()
    assert segments_of_this_process() == []


def test_a_segment_released_after_close_is_removed(arena):
    running = arena.lease(1000)  # a job still running when the pool shuts down
    arena.close()
    arena.release(running, reusable=True)
    assert not os.path.exists(running.path) and segments_of_this_process() == []


def test_a_process_forgets_retired_segments_when_it_maps_a_new_one(arena):
    old = arena.lease(1000)
    old_layout, _ = old.layout({"inputs": ((10, 2), np.float32)})
    attach(old_layout)
    assert old.path in transport._attached
    arena.release(old, reusable=False)
    new = arena.lease(1000)
    attach(new.layout({"inputs": ((10, 2), np.float32)})[0])
    assert old.path not in transport._attached and new.path in transport._attached
    arena.release(new, reusable=True)


def test_budget_is_respected(arena):
    assert arena.lease(9 * 2**20) is None  # larger than the budget: the object store takes it
    held = arena.lease(6 * 2**20)
    assert held is not None
    assert arena.lease(4 * 2**20) is None  # would exceed the budget while the first is held
    arena.release(held, reusable=True)
    assert arena.lease(4 * 2**20) is held  # the free segment serves it
    arena.release(held, reusable=True)
    arena.close()
    small = arena.lease(2**20)
    arena.release(small, reusable=True)
    large = arena.lease(5 * 2**20)  # 8 MiB with room to grow: the free 1 MiB is dropped for it
    assert large is not None and not os.path.exists(small.path)
    assert segments_of_this_process() == [os.path.basename(large.path)]


def test_zero_budget_turns_the_transport_off():
    arena = SharedArena(0)
    assert not arena.available and arena.lease(10) is None


def test_another_process_reads_inputs_and_writes_outputs_in_place(arena):
    lease = arena.lease(2**20)
    inputs = np.arange(12, dtype=np.float32).reshape(6, 2)
    layout, views = lease.layout({"inputs": (inputs.shape, inputs.dtype), "outputs": ((6, 3), np.float64)})
    views["inputs"][...] = inputs
    views["outputs"][...] = np.nan
    program = textwrap.dedent(f"""
        import numpy as np
        from hqray.cluster.transport import SharedLayout, attach
        views = attach(SharedLayout({layout.path!r}, {layout.arrays!r}))
        views["outputs"][2:5] = views["inputs"][2:5].sum(axis=1, keepdims=True) * np.ones(3)
    """)
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    assert np.array_equal(views["outputs"][2:5], np.repeat(inputs[2:5].sum(axis=1, keepdims=True), 3, axis=1))
    assert np.isnan(views["outputs"][[0, 1, 5]]).all()  # rows outside the shard are untouched
    arena.release(lease, reusable=True)


def test_attaching_a_retired_segment_fails_clearly(arena):
    lease = arena.lease(1000)
    layout, _ = lease.layout({"inputs": ((10, 2), np.float32)})
    arena.release(lease, reusable=False)
    with pytest.raises(FileNotFoundError):
        attach(layout)


def test_segments_are_removed_when_an_arena_is_dropped_without_close():
    arena = SharedArena(4 * 2**20)
    free = arena.lease(1000)
    arena.release(free, reusable=True)
    held = arena.lease(2 * 2**20)  # a job still holding its segment
    paths = [free.path, held.path]
    assert all(os.path.exists(path) for path in paths)
    del arena, free, held
    gc.collect()
    assert not any(os.path.exists(path) for path in paths)


def test_segments_of_dead_drivers_are_removed():
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    orphan = os.path.join(SHM_DIRECTORY, f"{PREFIX}{finished.stdout.strip()}-deadbeef0000")
    with open(orphan, "wb") as handle:
        handle.write(b"\0" * 4096)
    SharedArena(2**20).close()
    assert not os.path.exists(orphan)
