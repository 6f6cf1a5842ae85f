"""Every Ray that hqray starts listens on loopback only, whatever was imported first.

Each entry point runs in a fresh process whose environment does not pre-set Ray's
single-machine switch; the test samples the listening sockets of that process and every
process it started (psutil) while it runs, and finds only loopback addresses.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SWITCHES = ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "HQRAY_RAY_LOOPBACK")


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SWITCHES}


def listeners(root: psutil.Process) -> set[tuple[str, str, int]]:
    """(process name, ip, port) of every listening socket of ``root`` and its descendants."""
    found = set()
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return found
    for process in processes:
        try:
            name = process.name()
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    found.add((name, connection.laddr.ip, connection.laddr.port))
        except psutil.Error:  # exited while sampled
            continue
    return found


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def watch(command: list[str], ready=None, deadline_s: float = 300) -> tuple[int, str, set]:
    """Runs ``command``, sampling its process tree's listeners until it exits (or ``ready(seen)``
    holds, when it is then interrupted); returns its exit code, output and every listener seen."""
    process = subprocess.Popen(command, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=REPO)
    root, seen = psutil.Process(process.pid), set()
    deadline = time.monotonic() + deadline_s
    try:
        while process.poll() is None and time.monotonic() < deadline:
            seen |= listeners(root)
            if ready is not None and ready(seen):
                seen |= listeners(root)
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)  # sampling interval; the loop ends on the process, not on time
        output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 60))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, output, seen


def assert_only_loopback(seen: set, output: str, at_least: int = 3) -> None:
    ray_servers = {name for name, _, _ in seen}
    assert len(seen) >= at_least and ({"gcs_server", "raylet"} <= ray_servers), (seen, output[-3000:])
    exposed = sorted(entry for entry in seen if not is_loopback(entry[1]))
    assert exposed == [], exposed


SCRIPT_RAY_FIRST = """
import ray  # before hqray: the import order that used to expose Ray
import hqray.cluster as cluster
info = cluster.connect(num_qpus=3, num_cpus=1, include_dashboard=False)
print("resources", info.resources["QPU"], info.resources["CPU"])
@ray.remote
class Probe:
    def ping(self):
        return 1
assert ray.get(Probe.remote().ping.remote()) == 1
assert ray.get(ray.remote(lambda: 2).remote()) == 2
import time
time.sleep(2)  # keeps the session up for the sampler after the actor and task started
ray.shutdown()
print("done")
"""


def test_a_script_that_imports_ray_first_gets_a_loopback_ray_with_virtual_qpus():
    code, output, seen = watch([sys.executable, "-c", SCRIPT_RAY_FIRST])
    assert code == 0 and "resources 3.0 1.0" in output and "done" in output, output[-3000:]
    assert_only_loopback(seen, output, at_least=5)


def test_hqray_cluster_status_listens_on_loopback_only():
    code, output, seen = watch([sys.executable, "-m", "hqray", "cluster", "status", "--num-qpus", "2"])
    assert code == 0 and "pool tiers" in output, output[-3000:]
    assert_only_loopback(seen, output)


def test_hqray_sweep_listens_on_loopback_only(tmp_path):
    code, output, seen = watch([sys.executable, "-m", "hqray", "sweep", "tune_spaces/quickstart.yaml", "--smoke-test",
                                "--results-dir", str(tmp_path)])
    assert code == 0, output[-3000:]
    # The terminal leaderboard names every model in full (it used to cut them: `baselin...`).
    assert "baseline:random_forest" in output and "baseline:logreg" in output
    assert_only_loopback(seen, output)


def test_hqray_train_of_the_pool_generation_listens_on_loopback_only(tmp_path):
    """`hqray train -g g7` starts an embedded Ray and the pool's CircuitWorkers: loopback only."""
    code, output, seen = watch([sys.executable, "-m", "hqray", "train", "-d", "iris", "-g", "g7", "--folds", "2",
                                "--epochs", "1", "--no-baselines", "--output", str(tmp_path)])
    assert code == 0 and "pool tiers (fallback order gpu -> cpu)" in output, output[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["generation"] == "g7"
    assert_only_loopback(seen, output)


@pytest.mark.slow  # about a minute; the pool's sockets are also watched under `hqray train -g g7` above
def test_hqray_bench_pool_listens_on_loopback_only(tmp_path):
    code, output, seen = watch([sys.executable, "-m", "hqray", "bench", "pool", "--rows", "2000", "--qubits", "2",
                                "--json", str(tmp_path / "pool.json")])
    assert code == 0 and json.loads((tmp_path / "pool.json").read_text())["circuits"]["2"]["lost_rows"] == 0, \
        output[-3000:]
    assert_only_loopback(seen, output)


def refusal_of(setup: str, call: str) -> str:
    """Runs ``setup`` then ``call`` in a fresh interpreter; returns what a ConfigError said."""
    code = (f"import hqray, hqray.cluster as cluster, ray\n{setup}\n"
            f"try:\n    {call}\nexcept hqray.ConfigError as error:\n    print('refused:', error)\n"
            "ray.shutdown()\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                               env=clean_environment())
    return completed.stdout + completed.stderr[-2000:]


def test_a_ray_the_user_started_on_every_interface_is_refused_with_the_fix():
    said = refusal_of("ray.init(num_cpus=1, include_dashboard=False)", "cluster.connect()")
    assert "refused: the local Ray listens beyond loopback" in said and "HQRAY_RAY_LOOPBACK=0" in said, said


def test_joining_a_remote_cluster_after_starting_a_local_ray_is_refused():
    said = refusal_of("cluster.connect(num_cpus=1, include_dashboard=False)\nray.shutdown()",
                      "cluster.connect(address='10.1.2.3:6379')")
    assert "refused: cannot join the cluster at '10.1.2.3:6379'" in said, said


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_recognised(ip):
    assert is_loopback(ip)
    from hqray.cluster.loopback import _is_loopback_ip

    assert _is_loopback_ip(ip)


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "192.0.2.2", "::ffff:10.0.0.1"])
def test_other_addresses_are_not_loopback(ip):
    from hqray.cluster.loopback import _is_loopback_ip

    assert not is_loopback(ip) and not _is_loopback_ip(ip)


SCRIPT_SLOW_FIRST_START = """
import ray
import hqray.cluster as cluster
real_init, calls = ray.init, []
def init_missing_its_deadline_once(*args, **kwargs):
    # What Ray raises when its raylet does not register within 30 s (a busy machine).
    calls.append(kwargs.get("address"))
    if len(calls) == 1:
        raise Exception("The current node timed out during startup. This could happen because some of the "
                        "raylet failed to startup or the GCS has become overloaded.")
    return real_init(*args, **kwargs)
ray.init = init_missing_its_deadline_once
info = cluster.connect(num_cpus=1, include_dashboard=False)
print("started", info.started_locally, calls)
ray.shutdown()
"""


def test_a_local_ray_that_misses_its_startup_deadline_is_started_again():
    completed = subprocess.run([sys.executable, "-c", SCRIPT_SLOW_FIRST_START], capture_output=True, text=True,
                               timeout=180, env=clean_environment(), cwd=REPO)
    assert "started True ['local', 'local']" in completed.stdout, completed.stdout + completed.stderr[-3000:]
    assert "did not start in time (attempt 1 of 3" in completed.stderr, completed.stderr[-3000:]
