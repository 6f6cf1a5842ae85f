"""The cluster configs in clusters/ declare QPU, GPU and CPU resources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from hqray.cluster import PoolConfig, TierConfig, default_tiers, planned_workers
from hqray.errors import ConfigError

CLUSTERS = Path(__file__).resolve().parents[2] / "clusters"


def test_local_config_declares_virtual_qpus():
    config = yaml.safe_load((CLUSTERS / "local.yaml").read_text())
    command = " ".join(config["head_start_ray_commands"])
    assert '--resources=\'{"QPU": 4}\'' in command and "RAY_AUTH_MODE=token" in command
    assert config["provider"]["type"] == "local"


def test_launcher_config_has_qpu_gpu_and_cpu_node_types():
    config = yaml.safe_load((CLUSTERS / "cluster.yaml").read_text())
    resources = {name: node["resources"] for name, node in config["available_node_types"].items()}
    assert any(r.get("QPU", 0) > 0 for r in resources.values())
    assert any(r.get("GPU", 0) > 0 for r in resources.values())
    assert all(r.get("CPU", 0) > 0 for r in resources.values())
    assert config["head_node_type"] in resources


def test_kuberay_manifest_declares_the_same_resources():
    manifest = yaml.safe_load((CLUSTERS / "kuberay.yaml").read_text())
    assert manifest["kind"] == "RayCluster"
    groups = {g["groupName"]: g for g in manifest["spec"]["workerGroupSpecs"]}
    qpu = json.loads(yaml.safe_load(groups["qpu"]["rayStartParams"]["resources"]))
    assert qpu == {"QPU": 4}
    limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_pool_yaml_loads_and_plans_workers():
    config = PoolConfig.from_yaml(CLUSTERS / "pool.yaml")
    assert config.fallback_order == ["qpu", "gpu", "cpu"]
    plan = planned_workers(config, {"CPU": 2.0, "QPU": 4.0})
    assert plan["qpu"][0] == 4 and plan["cpu"][0] == 2
    assert plan["gpu"][0] == 0 and "skipped" in plan["gpu"][1]
    # The shipped QPU tier and the default one carry a device's calibration, not uniform noise.
    for qpu in (config.tiers["qpu"], PoolConfig().tiers["qpu"]):
        assert qpu.noise.calibration == "ibm_nairobi" and qpu.noise.routing == "swap" and qpu.shots == 1024


def test_serve_config_points_at_the_app_builder():
    from hqray.serve import ServeSettings, app_builder  # noqa: F401  (the import path must exist)

    config = yaml.safe_load((CLUSTERS / "serve.yaml").read_text())
    application = config["applications"][0]
    assert application["import_path"] == "hqray.serve.app:app_builder"
    assert config["http_options"]["host"] == "127.0.0.1"
    settings = ServeSettings(**application["args"]["settings"])  # validates
    # The proxy's timeout is the one `hqray serve` sets: the Gateway's 504 comes first.
    assert config["http_options"]["request_timeout_s"] == settings.http_options()["request_timeout_s"]


def test_shard_memory_counts_density_matrices_on_noisy_tiers():
    tiers = default_tiers()
    # 4 qubits: 16 amplitudes of 8 bytes (complex64); the noisy QPU tier simulates a
    # 16 x 16 density matrix per row.
    assert tiers["cpu"].state_bytes_per_row(4, double=False) == 16 * 8
    assert tiers["cpu"].state_bytes_per_row(4, double=True) == 16 * 16
    assert tiers["qpu"].state_bytes_per_row(4, double=False) == 256 * 8


@pytest.mark.parametrize(("tier", "said"), [
    ({"resource": "QPU", "shots": 20_000, "emulation": {"max_shots": 8192}},
     "shots=20000 exceed the emulated QPU's max_shots=8192"),
    ({"resource": "QPU", "backend": "lightning.qubit", "noise": {"depolarizing": 0.01}},
     "backend 'lightning.qubit' takes no hqray noise model"),
    ({"resource": "QPU", "backend": "qiskit.aer", "noise": {"depolarizing": 0.01}},
     "backend 'qiskit.aer' simulates noise by sampling only: set shots"),
    ({"resource": "CPU", "device_options": {"method": "statevector"}},
     "device_options are for a PennyLane device backend, not 'engine'"),
    ({"resource": "QPU", "emulation": {"failure_rate": 1.5}}, "failure_rate"),
])
def test_tier_settings_that_cannot_work_are_refused_naming_them(tier, said):
    with pytest.raises(ConfigError, match=re.escape(said)):
        PoolConfig(tiers={"t": tier}, fallback_order=["t"])


def test_status_shows_each_tiers_shots_noise_and_qpu_limits():
    tier = TierConfig(resource="QPU", shots=1000, noise={"calibration": "ibm_manila"},
                      emulation={"job_latency_s": 2, "max_circuits_per_job": 100})
    assert tier.execution == ("1000 shots; noise: calibration ibm_manila; emulated QPU: latency 2 s/job, queue 4, "
                              "<= 100 circuits and 100000 shots/job, 0% transient failures")
