"""The command line, run as a user runs it: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import psutil
import pytest

from hqray.ports import free_port
from tests.cluster.test_connect import assert_only_loopback, listeners


def hqray(*args: str, cwd=None, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hqray", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`hqray train --mlflow` run where MLflow's default store lands in a temporary directory."""
    output = tmp_path_factory.mktemp("train")
    tracking_dir = tmp_path_factory.mktemp("mlflow")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    completed = hqray("train", "--dataset", "iris", "--generation", "g6", "--folds", "3",
                      "--epochs", "6", "--output", str(output), "--mlflow", cwd=tracking_dir, env=env)
    assert completed.returncode == 0, completed.stderr
    return output, completed, tracking_dir


def test_train_writes_metrics_in_the_documented_shape(trained):
    output, _, _ = trained
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["dataset"] == "iris" and metrics["generation"] == "g6"
    assert len(metrics["folds"]) == 3
    for key in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc"):
        assert key in metrics["folds"][0] and key in metrics["mean"] and key in metrics["std"]
    for baseline in ("logreg", "svc", "random_forest"):
        assert set(metrics["baselines"][baseline]) >= {"mean", "std"}


def test_train_writes_plots_and_a_loadable_checkpoint(trained):
    output, _, _ = trained
    for name in ("roc.png", "pr.png", "confusion.png"):
        assert (output / name).read_bytes().startswith(b"\x89PNG")
    from hqray import load_model
    from hqray.data import load_dataset

    model = load_model(output / "checkpoint")
    data = load_dataset("iris")
    predictions = model.predict(data.features)
    # Both classes, and mostly right: a model stuck on one class fails here.
    assert set(predictions) == {"setosa", "versicolor"}
    assert (predictions == np.asarray(data.class_names)[data.labels]).mean() >= 0.9


def test_train_logs_metrics_baselines_and_a_pickle_free_checkpoint_to_mlflow(trained, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from hqray import load_model

    output, completed, tracking_dir = trained
    uri = f"sqlite:///{tracking_dir}/mlflow.db"  # MLflow's default store, in the working directory
    assert "logged MLflow run" in completed.stdout
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["hqray-train"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    metrics = json.loads((output / "metrics.json").read_text())
    assert run.data.params["generation"] == "g6" and run.data.params["folds"] == "3"
    assert run.data.metrics["accuracy_mean"] == pytest.approx(metrics["mean"]["accuracy"])
    assert run.data.metrics["baseline.logreg.accuracy_mean"] == pytest.approx(
        metrics["baselines"]["logreg"]["mean"]["accuracy"])
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run.info.run_id, "fold_accuracy")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [fold["accuracy"] for fold in metrics["folds"]])
    files = {f.path for f in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert files == {"checkpoint/weights.pt", "checkpoint/preprocessing.npz", "checkpoint/metadata.json"}
    local = client.download_artifacts(run.info.run_id, "checkpoint", str(tmp_path))
    original = load_model(output / "checkpoint")
    restored = load_model(local)
    rows = np.random.default_rng(0).normal(5, 1, size=(8, 4))
    np.testing.assert_allclose(restored.predict_proba(rows), original.predict_proba(rows))


def test_train_prints_folds_mean_and_baselines(trained):
    _, completed, _ = trained
    assert "per fold" in completed.stdout and "logreg" in completed.stdout and "±" in completed.stdout
    # Which features the baselines saw, and the final refit's time next to the CV's.
    text = " ".join(completed.stdout.split())
    assert "baselines: all 4 features, standardised in-fold" in text
    assert "final refit" in text


def test_dataset_options_and_config_overrides(tmp_path):
    completed = hqray("train", "-d", "iris", "-o", "task=multiclass", "-g", "g0", "--folds", "2",
                      "--epochs", "2", "--no-baselines", "--set", "hidden_units=4", "--output", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["hidden_units"] == 4 and metrics["baselines"] == {}
    assert len(metrics["class_names"]) == 3


def test_set_circuit_names_a_registered_circuit(tmp_path):
    completed = hqray("train", "-d", "iris", "-g", "g6", "--folds", "2", "--epochs", "2", "--no-baselines",
                      "--set", "circuit=qcnn", "--set", "circuit.embedding=iqp", "--output", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    circuit = json.loads((tmp_path / "metrics.json").read_text())["config"]["circuit"]
    assert (circuit["embedding"], circuit["ansatz"]) == ("iqp", "qcnn")
    refused = hqray("train", "-d", "iris", "-g", "g6", "--set", "ansatz=qcnn", "--output", str(tmp_path / "x"))
    assert refused.returncode == 2 and "circuit.ansatz" in refused.stdout + refused.stderr


def test_train_refuses_an_output_holding_the_users_files_unless_overwrite(tmp_path):
    (tmp_path / "paper.md").write_text("draft")
    arguments = ("train", "-d", "iris", "-g", "g0", "--folds", "2", "--epochs", "1", "--no-baselines",
                 "--output", str(tmp_path))
    refused = hqray(*arguments)
    assert refused.returncode == 2 and "holds files hqray did not write (paper.md)" in refused.stdout, refused.stdout
    assert not (tmp_path / "metrics.json").exists()
    written = hqray(*arguments, "--overwrite")
    assert written.returncode == 0, written.stdout + written.stderr
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "paper.md").read_text() == "draft"


@pytest.mark.parametrize(("args", "message"), [
    (["train", "-d", "nope"], "unknown dataset 'nope'"),
    (["train", "-d", "iris", "-o", "tsk=binary"], "tsk: unknown field"),
    (["train", "-d", "iris", "-g", "g99"], "unknown model family or generation 'g99'"),
    (["train", "-d", "iris", "-g", "qsvm"], "'qsvm' is an estimator family"),
    (["train", "-d", "iris", "--set", "learning_rate"], "must look like key=value"),
    (["train", "-d", "iris", "--folds", "1"], "folds must be >= 2, got 1"),
])
def test_bad_input_exits_2_with_a_named_error(args, message, tmp_path):
    completed = hqray(*args, "--output", str(tmp_path))
    assert completed.returncode == 2
    assert message in completed.stdout.replace("\n", " ")


def test_datasets_and_generations_listings():
    datasets = hqray("datasets")
    assert datasets.returncode == 0 and "genomics" in datasets.stdout and "individuals_per_populat" in datasets.stdout
    families = hqray("families")
    assert families.returncode == 0
    for name in ("g10", "qsvm", "iqp_kernel", "projected_kernel", "variational", "kernel", "classical"):
        assert name in families.stdout, name


HEAVY_MODULES = ("torch", "ray", "pennylane", "sklearn", "matplotlib")


def heavy_imports_after(*args: str, cwd=None) -> tuple[int, list[str], str]:
    """Runs the CLI in a fresh interpreter; returns its exit code and which heavy packages it imported."""
    code = ("import json, sys\n"
            "from hqray.cli import main\n"
            f"code = main({list(args)!r})\n"
            f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_MODULES!r}))\n"
            "print('HEAVY=' + json.dumps(heavy))\n"
            "sys.exit(code)\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    line = [line for line in completed.stdout.splitlines() if line.startswith("HEAVY=")]
    assert line, completed.stdout + completed.stderr
    return completed.returncode, json.loads(line[-1][len("HEAVY="):]), completed.stdout


@pytest.mark.parametrize("args", [
    ["--help"], ["train", "--help"], ["sweep", "--help"], ["serve", "--help"], ["bench", "engine", "--help"],
    ["predict", "--help"], ["generations"], ["families"], ["datasets"], ["circuits"],
])
def test_help_and_listings_start_without_torch_ray_or_pennylane(args):
    code, heavy, _ = heavy_imports_after(*args)
    assert code == 0 and heavy == []


def test_circuits_lists_every_registered_circuit_with_weights_and_readout():
    code, _, output = heavy_imports_after("circuits")
    text = " ".join(output.split())
    for name in ("angle", "amplitude", "rot", "iqp", "hamiltonian", "strongly_entangling", "basic_entangler", "ry_cnot",
                 "hardware_efficient", "qcnn", "tree_tensor"):
        assert f"│ {name} " in output or f"{name} │" in text, name
    assert "(L, n, 3)" in text and "(log2 n, 6)" in text and "<Z> on one readout" in text


@pytest.mark.parametrize(("args", "message"), [
    (["train", "-d", "iris", "--set", "bogus=1"], "bogus: unknown field"),
    (["train", "-d", "iris", "-g", "g99"], "unknown model family or generation 'g99'"),
    (["train", "-d", "nope"], "unknown dataset 'nope'"),
    (["train", "-d", "iris", "-o", "tsk=1"], "tsk: unknown field"),
    (["sweep", "STUDY"], "folsd: unknown field"),
])
def test_validation_errors_answer_before_torch_ray_or_pennylane_load(args, message, tmp_path):
    study = tmp_path / "typo.yaml"
    study.write_text("name: typo\ndataset: {name: iris}\ngenerations: [g0]\nfolsd: 3\n")
    code, heavy, stdout = heavy_imports_after(*[str(study) if arg == "STUDY" else arg for arg in args])
    assert code == 2 and message in stdout.replace("\n", " ")
    assert heavy == []


def test_a_yaml_syntax_error_is_one_line_naming_file_and_place(tmp_path):
    study = tmp_path / "broken.yaml"
    study.write_text("name: x\n  bad: [\n")
    completed = hqray("sweep", str(study))
    assert completed.returncode == 2
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    assert "broken.yaml" in lines[0] and "(line 2, column" in lines[0]


def test_the_hqray_command_imports_a_circuit_module_from_the_working_directory(tmp_path):
    """As README's "Bring your own circuit" says: `my_circuits:ladder` next to the study, and the
    installed `hqray` script (not `python -m`, which puts the directory on sys.path itself)."""
    import shutil

    from tests.user_circuits import LADDER_MODULE

    (tmp_path / "t_cwd_circuits.py").write_text(LADDER_MODULE)
    completed = subprocess.run([shutil.which("hqray") or "hqray", "train", "-d", "iris", "-g", "g6", "--set",
                                "circuit=t_cwd_circuits:ladder", "--folds", "2", "--epochs", "1", "--no-baselines",
                                "--output", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["config"]["circuit"]["ansatz"] == "t_cwd_circuits:ladder"


def test_bench_engine_quick_writes_json_rows(tmp_path):
    path = tmp_path / "engine.json"
    completed = hqray("bench", "engine", "--quick", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(path.read_text())
    methods = {row["method"] for row in rows}
    assert {"hqray-auto", "hqray-compiler", "default.qubit-broadcast", "qnode-per-sample"} <= methods
    for row in rows:
        assert {"n_qubits", "layers", "batch", "method", "samples_per_s", "peak_mb"} <= set(row)
        assert row["samples_per_s"] > 0


def test_bench_engine_circuits_grid_compares_any_circuit_with_the_baselines_it_finds(tmp_path):
    import importlib.util

    path = tmp_path / "circuits.json"
    completed = hqray("bench", "engine", "--grid", "circuits", "--quick", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(path.read_text())
    assert {row["circuit"] for row in rows} == {"qcnn", "random"}
    methods = {row["method"] for row in rows}
    assert {"hqray-compiler", "default.qubit-torch"} <= methods
    has_jax = importlib.util.find_spec("jax") is not None
    assert ("default.qubit-jax-jit" in methods) == has_jax
    if not has_jax:
        assert "default.qubit-jax-jit: left out, needs jax" in completed.stdout
    assert all(row["samples_per_s"] > 0 and row["threads"] >= 1 for row in rows)
    # Small peaks: every method was timed with freed memory kept for reuse (glibc here).
    assert all(row["heap_reuse"] is True and row["peak_mb"] >= 0 for row in rows), rows
    # A cheap cell is timed as often as its budget allows, from a warm call, not the first
    # call's compilation, beyond the old cap of 5.
    assert all(row["repeats"] > 5 for row in rows if row["method"] == "hqray-compiler"), rows
    assert "x default.qubit-torch" in completed.stdout


def test_bench_kernel_quick_writes_json_rows(tmp_path):
    path = tmp_path / "kernel.json"
    completed = hqray("bench", "kernel", "--quick", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(path.read_text())
    assert {row["method"] for row in rows} == {"hqray", "per-pair"}
    for row in rows:
        assert {"n_samples", "n_qubits", "method", "seconds"} <= set(row) and row["seconds"] > 0


def test_bench_predict_times_start_up_apart_from_scoring(tmp_path):
    path = tmp_path / "predict.json"
    completed = hqray("bench", "predict", "--rows", "3000", "--widths", "4", "--json", str(path),
                      "--workdir", str(tmp_path), "--scaling-seconds", "1", "--floor-tries", "1", timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(path.read_text())
    rows = {row["method"]: row for row in results["rows"]}
    assert set(rows) == {"in-process", "hqray predict, 1 actor", "hqray predict, 2 actors"}
    for method in ("hqray predict, 1 actor", "hqray predict, 2 actors"):
        row = rows[method]
        assert 0 < row["startup_seconds"] and 0 < row["scoring_seconds"] < row["seconds"], row
        assert row["scoring_rows_per_s"] > row["rows_per_s"]
        assert len(row["actor_peak_mb"]) >= int(method[len("hqray predict, ")]), row  # each actor sampled
    (ratio,) = results["ratios"]
    assert ratio["two_vs_one_actor_once_scoring"] > 0 and "once scoring" in completed.stdout
    # Ray Data's own start-up, measured in the same run, and the end-to-end ceiling it allows.
    floor = results["ray_data_floor_s"]
    assert 0 < floor["1"] and 0 < floor["2"] and 0 < ratio["two_vs_one_actor_ceiling"], (floor, ratio)
    assert "Ray Data's own start-up" in completed.stdout and "at best" in completed.stdout
    # What a second core gives the same scoring without Ray, measured in the same run.
    assert results["two_process_scaling"]["4"] > 0 and "two processes scoring at once" in completed.stdout


def test_bench_sweep_quick_runs_the_study_on_a_loopback_cluster_of_nodes(tmp_path):
    path = tmp_path / "sweep.json"
    completed = hqray("bench", "sweep", "--quick", "--setup", "2 nodes", "--json", str(path), timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(path.read_text())
    (row,) = results["rows"]
    # One trial per grid point of each of the three families, all on the two worker nodes.
    assert (row["setup"], row["nodes"], row["cpus"], row["trials"]) == ("2 nodes", 2, 2, 3)
    assert row["trials_per_hour"] > 0
    assert results["study"]["generations"] == ["dressed_quantum_circuit", "separable_variational", "iqp_kernel"]
    assert "2 nodes: 3 trials in" in completed.stdout


def test_serve_command_answers_http_and_stops_on_interrupt(trained, tmp_path):
    import signal
    import time

    import httpx

    output, _, _ = trained
    port = free_port()
    # Output goes to a file: an unread pipe fills up with Ray's logs and blocks the server.
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "hqray", "serve", str(output / "checkpoint"),
                                "--name", "iris", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.monotonic() + 120, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert health is not None and health.status_code == 200
        response = httpx.post(f"http://127.0.0.1:{port}/v1/models/iris:predict",
                              json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10)
        assert response.status_code == 200 and response.json()["predictions"] == ["setosa"]
        # Everything the command started listens on loopback only, its model replica included
        # (the entry-point check of tests/cluster/test_connect.py, for `hqray serve`).
        seen = listeners(psutil.Process(process.pid))
        assert any(name.startswith("ray::ServeReplica") for name, _, _ in seen), seen
        assert_only_loopback(seen, "")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("hqray serve did not stop on SIGINT; its log ends:\n"
                                 + (tmp_path / "serve.log").read_text()[-3000:]) from None
        finally:
            log.close()


def test_serve_stops_when_interrupted_while_still_starting(trained, tmp_path):
    """Ctrl+C while the Serve app is still deploying stops the server as well (the signal only
    sets a flag, checked once Serve is up, so no Ray call in between can swallow it)."""
    import signal
    import time

    output, _, _ = trained
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "hqray", "serve", str(output / "checkpoint"),
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while "Started a local Ray instance" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)  # Ray is up, the Serve app is still deploying
        try:
            assert process.wait(timeout=90) is not None
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("interrupted during start-up, hqray serve kept running:\n"
                                 + log_path.read_text()[-3000:]) from None
    assert "serving ['checkpoint']" not in log_path.read_text()


def test_serve_refuses_a_port_another_process_listens_on(trained):
    import socket

    output, _, _ = trained
    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        port = other_server.getsockname()[1]
        completed = hqray("serve", str(output / "checkpoint"), "--port", str(port))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in completed.stdout.replace("\n", " ")
    assert "Started a local Ray instance" not in completed.stdout + completed.stderr  # refused before Ray


def test_serve_refuses_a_public_bind_without_a_key(trained):
    output, _, _ = trained
    completed = hqray("serve", str(output / "checkpoint"), "--host", "0.0.0.0")
    assert completed.returncode == 2
    assert "set an API key" in completed.stdout.replace("\n", " ")


def test_cluster_status_reports_resources_and_tier_workers():
    completed = hqray("cluster", "status", "--num-qpus", "3")
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout
    assert "QPU=3" in output and "embedded local Ray" in output
    import torch

    # The gpu tier gets a worker per GPU this machine has; with none, a notice says it is skipped.
    gpus = torch.cuda.device_count()
    assert (f"GPU={gpus}" in output) and (("tier 'gpu' skipped" in output) == (gpus == 0))
