"""connect(): an embedded local Ray with virtual QPUs, listening on loopback only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json

def listening():
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    sockets.add(fields[1])
    return sockets

def is_loopback(local):
    address = local.split(":")[0]
    if len(address) == 8:  # IPv4, little-endian hex
        return address.endswith("7F")
    return address in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")

before = listening()
import hqray.cluster as cluster
info = cluster.connect(num_qpus=3, num_cpus=1, include_dashboard=False)
new = listening() - before
import ray
ray.shutdown()
print(json.dumps({"resources": info.resources, "new": sorted(new),
                  "exposed": sorted(s for s in new if not is_loopback(s))}))
"""


def test_local_ray_has_virtual_qpus_and_listens_on_loopback_only():
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "HQRAY_RAY_LOOPBACK")}
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                               timeout=180, env=environment)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["resources"]["QPU"] == 3.0 and report["resources"]["CPU"] == 1.0
    assert len(report["new"]) >= 3  # GCS, raylet, workers...
    assert report["exposed"] == [], report


def test_joining_a_remote_cluster_in_loopback_mode_is_refused():
    code = ("import hqray.cluster as c\n"
            "try:\n    c.connect(address='10.1.2.3:6379')\nexcept c.ConfigError as e:\n    print('refused:', e)\n")
    code = code.replace("c.ConfigError", "__import__('hqray').ConfigError")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120, env=environment)
    assert "refused: cannot join the cluster at '10.1.2.3:6379' in loopback mode" in completed.stdout
