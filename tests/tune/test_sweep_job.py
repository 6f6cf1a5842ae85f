"""`ray job submit` of a smoke study to a real Ray cluster started on loopback.

The cluster is ``ray start --head --resources='{"QPU": 2}'`` with token authentication
(``RAY_AUTH_MODE=token`` and a per-test token in ``RAY_AUTH_TOKEN``, so nothing is
written to ~/.ray), bound to 127.0.0.1; the job runs the README's command.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from hqray.ports import free_port
from tests.processes import kill_session
from tests.user_circuits import LADDER_MODULE

REPO = Path(__file__).resolve().parents[2]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def start_head(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` on loopback in a session of its own (stopped by killing that
    session: `ray stop` would stop every Ray on the machine, the other xdist worker's too),
    with every port it would fix chosen free: the job agent's default (52365) is held by any
    other Ray here, and an agent that cannot bind it leaves the cluster answering "No
    available agent to submit job". Returns the process and the dashboard's address once it
    answers; a start that failed (a port taken meanwhile by Ray's own processes, a raylet
    that missed Ray's startup deadline on a busy machine) is retried with fresh ports."""
    for _ in range(3):
        dashboard = f"http://127.0.0.1:{free_port()}"
        with log.open("a") as output:
            head = subprocess.Popen(
                [*RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
                 "--num-cpus=2", '--resources={"QPU": 2}', "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                 f"--dashboard-port={dashboard.rsplit(':', 1)[1]}", f"--dashboard-agent-listen-port={free_port()}",
                 "--disable-usage-stats"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while head.poll() is None and time.monotonic() < deadline and not answers(dashboard, env):
            time.sleep(0.5)
        if head.poll() is None and answers(dashboard, env):
            return head, dashboard
        kill_session(head)
    raise AssertionError(f"ray start --head did not come up:\n{log.read_text()[-3000:]}")


def answers(dashboard: str, env: dict) -> bool:
    """Whether the dashboard serves its API (asked with the cluster's token)."""
    request = urllib.request.Request(f"{dashboard}/api/version",
                                     headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def loopback_cluster(tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    head, dashboard = start_head(env, tmp_path / "ray_start.log")
    try:
        yield env, dashboard
    finally:
        kill_session(head)


def submit(env: dict, dashboard: str, working_dir: Path, *command: str) -> tuple[str, str]:
    """Submits ``command`` as a Ray job, waits (up to 5 min) and returns its status and logs."""
    # The dashboard answers before its job agent has registered (seconds later on a busy
    # machine): "No available agent to submit job, please try again later" is retried.
    deadline = time.monotonic() + 120
    while True:
        submitted = subprocess.run(
            [*RAY, "job", "submit", "--address", dashboard, "--working-dir", str(working_dir), "--no-wait", "--",
             *command], env=env, capture_output=True, text=True, timeout=180, cwd=working_dir)
        said = submitted.stdout + submitted.stderr
        if submitted.returncode == 0 or "No available agent" not in said or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-2000:]
    job_id = next(line.split("'")[1] for line in submitted.stdout.splitlines() if "submitted successfully" in line)
    deadline, status = time.monotonic() + 300, ""
    while time.monotonic() < deadline:
        status = subprocess.run([*RAY, "job", "status", "--address", dashboard, job_id], env=env,
                                capture_output=True, text=True, timeout=60).stdout.lower()
        if any(word in status for word in ("succeeded", "failed", "stopped")):
            break
        time.sleep(2)
    logs = subprocess.run([*RAY, "job", "logs", "--address", dashboard, job_id], env=env,
                          capture_output=True, text=True, timeout=60).stdout
    return status, logs


def test_ray_job_submit_runs_a_smoke_study_on_a_loopback_cluster(loopback_cluster, tmp_path):
    env, dashboard = loopback_cluster
    results = tmp_path / "results"
    status, logs = submit(env, dashboard, REPO, "python", "-m", "hqray", "sweep", "tune_spaces/quickstart.yaml",
                          "--smoke-test", "--results-dir", str(results))
    assert "succeeded" in status and "failed" not in status, status + logs[-4000:]

    # The driver joined this cluster (not an embedded Ray) and found its QPUs.
    assert "cluster at 127.0.0.1" in logs and "QPU=2" in logs, logs[-4000:]
    board = pd.read_csv(results / "quickstart" / "leaderboard.csv")
    assert set(board["model"]) == {"g0", "g1", "g6", "baseline:logreg", "baseline:svc", "baseline:random_forest"}
    assert board["balanced_accuracy"].notna().all()
    assert json.loads((results / "quickstart" / "study.json").read_text())["smoke_test"] is True
    assert (results / "quickstart" / "best" / "metadata.json").is_file()

    # With that `ray start` cluster alive (named in /tmp/ray/ray_current_cluster), a script
    # that asks for no address gets its own embedded Ray, as documented, not the cluster.
    script = ("import hqray.cluster as c, ray; info = c.connect(num_cpus=1, include_dashboard=False); "
              "print('STARTED_LOCALLY', info.started_locally, ray.cluster_resources().get('CPU'))")
    local_env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    own = subprocess.run([sys.executable, "-c", script], env=local_env, capture_output=True, text=True,
                         timeout=180, cwd=REPO)
    assert own.returncode == 0, own.stderr[-3000:]
    assert "STARTED_LOCALLY True 1.0" in own.stdout, own.stdout + own.stderr[-3000:]


    # A user's circuit module travels in the job's working directory: the pool's workers
    # (g7: circuits run on CircuitWorker actors) import it by name and train through it.
    project = tmp_path / "project"
    project.mkdir()
    (project / "t_job_circuits.py").write_text(LADDER_MODULE)
    status, logs = submit(env, dashboard, project, "python", "-m", "hqray", "train", "-d", "iris", "-g", "g7",
                          "--set", "circuit=t_job_circuits:ladder", "--set", "pool_tiers=[cpu]", "--folds", "2",
                          "--epochs", "1", "--no-baselines", "--output", str(tmp_path / "trained"))
    assert "succeeded" in status and "failed" not in status, status + logs[-4000:]
    metrics = json.loads((tmp_path / "trained" / "metrics.json").read_text())
    assert metrics["config"]["circuit"]["ansatz"] == "t_job_circuits:ladder"
    assert "cluster at 127.0.0.1" in logs, logs[-4000:]
