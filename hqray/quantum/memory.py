"""Keeping freed memory for the next batch: same-shape batches without page faults."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["retain_heap_memory"]

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def retain_heap_memory(trim_threshold_bytes: int = 1 << 30) -> bool:
    """Makes glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    A circuit worker runs shard after shard of the same shapes, and every shard allocates
    the same large state arrays. By default glibc serves large allocations with ``mmap``
    and trims the top of the heap on ``free``, so, depending on the history of the
    process, every shard can start on fresh pages that the kernel must fault in and zero
    (measured ad hoc during development: about 7,700 page faults per 100,000-row job of
    the 4-qubit g6 circuit, shards computing at 60% of their speed). After this call large
    allocations come from the heap and up to ``trim_threshold_bytes`` of freed memory
    stays mapped, so one shard's memory serves the next. The process keeps its peak heap,
    which for a worker is bounded by its tier's shard caps (``max_shard_rows``,
    ``max_shard_state_mb``).

    Args:
        trim_threshold_bytes: free memory at the top of the heap kept before trimming.

    Returns:
        True if applied; False where it does not apply (not Linux with glibc).

    Example (at the start of a long-lived worker process; it lasts for the process)::

        from hqray.quantum.memory import retain_heap_memory

        retain_heap_memory()
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold_bytes)) and mallopt(_M_MMAP_MAX, 0))
