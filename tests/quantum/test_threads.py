"""`use_threads`: torch, every loaded BLAS / OpenMP pool and the ones that load later."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hqray.quantum.threads import THREAD_VARIABLES

PROGRAM = """
import json, os
import numpy, torch
from threadpoolctl import threadpool_info
from hqray.quantum.threads import THREAD_VARIABLES, use_threads
before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
after = use_threads(1)
print(json.dumps({"before": before, "after": after, "torch": torch.get_num_threads(),
                  "environment": [os.environ[v] for v in THREAD_VARIABLES]}))
"""


def test_every_pool_runs_the_threads_asked_for():
    # A fresh process, no thread variables set: NumPy's OpenBLAS and torch's OpenMP start a thread per core.
    environment = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300,
                            env=environment, check=True)
    pools = json.loads(result.stdout.strip().splitlines()[-1])
    assert pools["after"] and set(pools["after"]) == set(pools["before"])
    assert set(pools["after"].values()) == {1} and pools["torch"] == 1
    assert pools["environment"] == ["1", "1", "1"]  # for libraries that load later
