"""Timing and memory helpers shared by the benchmarks."""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

__all__ = ["PeakMemory", "machine_info", "best_time", "timed", "median_ms"]


def release_freed_memory() -> None:
    """Returns freed heap pages to the OS so RSS tracks live allocations (glibc only).

    Without this, memory freed by an earlier measurement stays resident and is reused, so a
    later method's peak would not show in RSS at all.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    # M_MMAP_THRESHOLD = -3: allocations above 1 MiB get their own mapping, unmapped on free.
    libc.mallopt(-3, 1 << 20)
    libc.malloc_trim(0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Samples the process RSS every few ms; ``peak_mb`` is the peak above the start."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak_mb = 0.0

    @contextmanager
    def measure(self):
        release_freed_memory()
        start = _rss_bytes()
        peak = [start]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                done.wait(self.interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join()
            peak[0] = max(peak[0], _rss_bytes())
            self.peak_mb = (peak[0] - start) / 2**20


def timed(run: Callable[[], object]) -> float:
    """Wall seconds of one call of ``run``."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``run`` (after the caller's warm-up)."""
    return min(timed(run) for _ in range(repeats))


def median_ms(run: Callable[[], object], repeats: int = 50) -> float:
    """Median milliseconds of ``repeats`` calls of ``run``, after one warm-up call."""
    run()
    return statistics.median(timed(run) for _ in range(repeats)) * 1000


def machine_info() -> dict[str, str]:
    """Machine and library versions, recorded beside every result."""
    import numpy
    import pennylane
    import torch

    try:
        lightning = importlib.metadata.version("pennylane-lightning")
    except importlib.metadata.PackageNotFoundError:
        lightning = "absent"
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(), "torch": torch.__version__,
        "pennylane": pennylane.__version__, "pennylane_lightning": lightning, "numpy": numpy.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
