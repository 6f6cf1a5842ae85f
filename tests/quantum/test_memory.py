"""retain_heap_memory: freed state arrays serve the next batch instead of fresh pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Page faults of five 64 MiB allocations after a first one, in a fresh interpreter (the
# setting lasts for the life of a process, so it is not changed in the test process).
FAULTS = """
import resource, sys
import numpy as np
from hqray.quantum.memory import retain_heap_memory
if sys.argv[1] == "retain":
    assert retain_heap_memory()
np.ones(8 << 20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(8 << 20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    completed = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(completed.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_repeated_large_allocations_reuse_memory():
    # By default each 64 MiB allocation is a fresh mmap whose pages fault in again (fewer
    # faults where the kernel backs it with huge pages, but never none).
    default, retained = faults("default"), faults("retain")
    assert default >= 5 * 32 and retained * 10 < default, (default, retained)
