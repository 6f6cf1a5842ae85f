"""Shared-memory transport between the pool and the CircuitWorkers on its own node.

A job's arrays normally travel through Ray's object store: a put of the inputs, and each
shard's outputs returned from the actor. For a worker on the driver's node, the same bytes
can instead sit in one tmpfs file (``/dev/shm``) that both processes map: the driver copies
the inputs in once, each shard's actor call carries only a :class:`SharedLayout` and a row
range, and the worker writes its outputs in place. On a 2-core machine that removes most of
Ray's per-job data cost (about 7.5 ms for a 100,000-row 4-qubit job, whose circuits take
19 ms; see benchmarks/RESULTS.md).

Segments are leased per job and reused by later jobs (their pages stay mapped, so a job
does not page-fault on fresh memory). Rules that keep every row exactly once:

* only a shard's *first* attempt uses shared memory; retries take their rows from and
  return their outputs through the object store, so a late or half-finished writer
  cannot mix into a result, and a worker that cannot map the segment still gets its rows;
* a segment is reused only after a job in which every attempt finished cleanly; after a
  timeout, a lost worker or an error the segment is retired (unlinked), because a killed
  worker may still be writing for a moment after ``ray.kill``.

Workers on other nodes, jobs larger than the arena's budget and machines without
``/dev/shm`` use the object store as before.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import uuid
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = ["SharedArena", "SharedLease", "SharedLayout", "attach", "plan_layout"]

logger = logging.getLogger("hqray.pool")
SHM_DIRECTORY = "/dev/shm"
PREFIX = "hqray-pool-"
ALIGNMENT = 64  # bytes; each array starts on a cache line


@dataclass(frozen=True)
class SharedLayout:
    """Where a job's arrays lie in a shared segment: what a worker needs to map them.

    ``arrays`` holds ``(name, offset, shape, dtype)`` per array.
    """

    path: str
    arrays: tuple[tuple[str, int, tuple[int, ...], str], ...]

    @property
    def nbytes(self) -> int:
        return max(offset + _array_bytes(shape, dtype) for _, offset, shape, dtype in self.arrays)


def _array_bytes(shape: tuple[int, ...], dtype: np.dtype | str) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def plan_layout(path: str, arrays: dict[str, tuple[tuple[int, ...], np.dtype]]) -> SharedLayout:
    """Packs named arrays one after another, each aligned to ``ALIGNMENT`` bytes."""
    entries, offset = [], 0
    for name, (shape, dtype) in arrays.items():
        entries.append((name, offset, tuple(int(n) for n in shape), np.dtype(dtype).str))
        offset += -(-_array_bytes(shape, dtype) // ALIGNMENT) * ALIGNMENT
    return SharedLayout(path, tuple(entries))


def _views(buffer: np.ndarray, layout: SharedLayout) -> dict[str, np.ndarray]:
    return {name: buffer[offset:offset + _array_bytes(shape, dtype)].view(dtype).reshape(shape)
            for name, offset, shape, dtype in layout.arrays}


class SharedLease:
    """One shared segment, held by one job at a time (driver side)."""

    def __init__(self, size: int):
        self.size = size
        self.path = os.path.join(SHM_DIRECTORY, f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
        descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            # Reserve the pages now: on a full tmpfs this fails with ENOSPC here, instead
            # of a SIGBUS when a process first writes to an unreserved page.
            os.posix_fallocate(descriptor, 0, size)
        except OSError:
            os.close(descriptor)
            os.unlink(self.path)
            raise
        os.close(descriptor)
        self.buffer = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(size,))

    def layout(self, arrays: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[SharedLayout, dict[str, np.ndarray]]:
        """Lays out ``arrays`` in this segment; returns the layout and the driver's views."""
        layout = plan_layout(self.path, arrays)
        return layout, _views(self.buffer, layout)

    def unlink(self) -> None:
        """Removes the file; processes that still map it keep their pages until they unmap."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.buffer = None


class SharedArena:
    """Shared segments for the jobs of one QuantumPool, reused from job to job.

    Args:
        budget_bytes: most bytes of shared memory held at once (leased and free); a job that
            needs more uses the object store. ``0`` turns the transport off.

    **Example**::

        arena = SharedArena(64 * 2**20)
        lease = arena.lease(4 * 2**20)          # None when the transport is unavailable
        layout, views = lease.layout({"inputs": ((1000, 4), np.float32)})
        arena.release(lease, reusable=True)
        arena.close()
    """

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._free: list[SharedLease] = []
        self._held_bytes = 0
        self._lock = threading.Lock()
        self._paths: set[str] = set()  # every live segment, leased or free
        self._closed = False
        # Files in /dev/shm outlive the process: remove them when the arena is collected or
        # the interpreter exits, even if the pool was never shut down.
        weakref.finalize(self, _unlink_paths, self._paths)
        self.available = budget_bytes > 0 and os.path.isdir(SHM_DIRECTORY) and os.access(SHM_DIRECTORY, os.W_OK)
        if self.available:
            _remove_orphans()

    def lease(self, nbytes: int) -> SharedLease | None:
        """A segment of at least ``nbytes`` for one job, or None (then use the object store)."""
        if not self.available or nbytes > self.budget_bytes:
            return None
        with self._lock:
            fitting = [lease for lease in self._free if lease.size >= nbytes]
            if fitting:
                chosen = min(fitting, key=lambda lease: lease.size)
                self._free.remove(chosen)
                return chosen
            size = min(self.budget_bytes, 1 << max(20, (nbytes - 1).bit_length()))  # room to grow
            while self._free and self._held_bytes + size > self.budget_bytes:
                self._drop(self._free.pop(0))
            if self._held_bytes + size > self.budget_bytes:
                return None  # other jobs hold the budget right now
            try:
                lease = SharedLease(size)
            except OSError as error:
                logger.warning("shared memory unavailable (%s); the pool uses Ray's object store", error)
                self.available = False
                return None
            self._held_bytes += size
            self._paths.add(lease.path)
            return lease

    def release(self, lease: SharedLease, reusable: bool) -> None:
        """Returns a job's segment: kept for the next job, or retired when ``reusable`` is False."""
        with self._lock:
            if reusable and lease.buffer is not None and not self._closed:
                self._free.append(lease)
            else:
                self._drop(lease)

    def _drop(self, lease: SharedLease) -> None:
        self._held_bytes -= lease.size
        self._paths.discard(lease.path)
        lease.unlink()

    def close(self) -> None:
        """Removes the free segments; one still leased by a running job goes when released."""
        with self._lock:
            self._closed = True
            while self._free:
                self._drop(self._free.pop())


def _unlink_paths(paths: set[str]) -> None:
    for path in list(paths):
        try:
            os.unlink(path)
        except OSError:
            pass
    paths.clear()


def _remove_orphans() -> None:
    """Removes segments left by pool drivers that died without cleaning up (SIGKILL)."""
    try:
        names = [name for name in os.listdir(SHM_DIRECTORY) if name.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(PREFIX):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(SHM_DIRECTORY, name))
            except OSError:
                pass
        except (ValueError, PermissionError):
            continue


_attached: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
ATTACHED_SEGMENTS = 8  # a worker serves few pools; segments are reused job after job


def attach(layout: SharedLayout) -> dict[str, np.ndarray]:
    """Worker side: views of a job's arrays, mapping the segment once per process.

    Raises:
        FileNotFoundError: the segment was retired (the job it belonged to is over).
    """
    buffer = _attached.get(layout.path)
    if buffer is None:
        # A new segment: forget the ones the pool has retired (their memory is freed once
        # no process maps them).
        for path in [path for path in _attached if not os.path.exists(path)]:
            del _attached[path]
        buffer = np.memmap(layout.path, dtype=np.uint8, mode="r+")
        _attached[layout.path] = buffer
        while len(_attached) > ATTACHED_SEGMENTS:
            _attached.popitem(last=False)  # unmapped once no view refers to it
    else:
        _attached.move_to_end(layout.path)
    if buffer.shape[0] < layout.nbytes:
        raise ValueError(f"shared segment {layout.path} holds {buffer.shape[0]} bytes, "
                         f"the layout needs {layout.nbytes}")
    return _views(buffer, layout)
