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

__all__ = ["PeakMemory", "machine_info", "best_time", "timed", "median_ms", "peak_then_time"]


def release_freed_memory() -> None:
    """Returns freed heap pages to the OS so RSS tracks live allocations (glibc only).

    Without this, memory freed by an earlier measurement stays resident and is reused, so a
    later method's peak would not show in RSS at all.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    # Undoes retain_heap_memory (M_MMAP_MAX = -4 back to glibc's default, M_TRIM_THRESHOLD = -1
    # to 128 KiB); M_MMAP_THRESHOLD = -3: allocations above 1 MiB get their own mapping,
    # unmapped on free.
    libc.mallopt(-4, 65536)
    libc.mallopt(-1, 128 << 10)
    libc.mallopt(-3, 1 << 20)
    libc.malloc_trim(0)


# Heap reuse while timing is bounded: a method whose measured peak is above this (or above a
# quarter of the memory available) is timed in the RSS sampler's mode instead. Keeping every
# freed block for every method ran the circuits grid out of 24 GiB at 12 qubits, B = 4096,
# where default.qubit peaks at several GiB.
REUSE_PEAK_LIMIT_MB = 2048


def peak_then_time(run: Callable[[], object], repeats: int) -> tuple[float, float, bool]:
    """The RSS peak (MB) of one call of ``run``, then its best wall seconds of ``repeats`` calls.

    The peak call runs with freed memory returned to the OS so the peak shows; the timed
    calls keep freed memory for reuse (glibc, :func:`~hqray.quantum.memory.retain_heap_memory`),
    as hqray's circuit workers run and as a process that repeats one shape settles into.
    Timed in the sampler's mode, every allocation over 1 MiB faults in fresh pages: up to 2x
    slower at 10 qubits and B = 4096, for torch and XLA alike. Memory goes back to the OS
    after the timed calls. Returns ``(seconds, peak_mb, reused)``; ``reused`` is False where
    the peak was too large to keep (:data:`REUSE_PEAK_LIMIT_MB`) or glibc is absent.
    """
    from hqray.quantum.memory import retain_heap_memory

    memory = PeakMemory()
    with memory.measure():
        run()
    reused = memory.peak_mb <= min(REUSE_PEAK_LIMIT_MB, _available_mb() / 4) and retain_heap_memory()
    try:
        seconds = best_time(run, repeats)
    finally:
        release_freed_memory()
    return seconds, memory.peak_mb, reused


def _available_mb() -> float:
    try:
        with open("/proc/meminfo") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("MemAvailable"))
    except (OSError, StopIteration, ValueError):
        return 0.0


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
