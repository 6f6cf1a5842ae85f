"""The `hqray` command line: parsing and display only; the work lives in the library."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hqray.config_files import yaml_problem
from hqray.errors import ConfigError, HqrayError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Hybrid quantum-classical machine learning on Ray.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (results go to benchmarks/).")
app.add_typer(bench_app, name="bench")
# Piped output (logs, CI) gets room for the tables; a terminal keeps its own width.
console = Console() if sys.stdout.isatty() else Console(width=120)
TRUST_CODE_HELP = ("load checkpoints whose circuit lives in your own module (package.module:name); "
                   "importing it runs its code")
MLFLOW_HELP = ("log to MLflow: $MLFLOW_TRACKING_URI, else MLflow's local default (sqlite:///mlflow.db here, "
               "artifacts in mlruns/)")


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values are parsed as YAML scalars/lists (``100``, ``true``, ``[a, b]``)."""
    result = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"{what} {item!r} must look like key=value")
        try:
            result[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"{what} {item!r}: value is not valid YAML: {yaml_problem(error)}") from None
    return result


def _format(mean: float, std: float | None = None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.3f}" if std is None else f"{mean:.3f}±{std:.3f}"


SUMMARY_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "bal. acc.", "f1": "f1",
                   "roc_auc": "roc_auc", "pr_auc": "pr_auc"}


def _results_tables(result) -> tuple[Table, Table]:
    """Per-fold values, then mean ± std of the model and each baseline (same folds)."""
    from hqray.training import SAME_FEATURES_SUFFIX

    folds = Table(title=f"{result.dataset} · {result.generation} · per fold")
    folds.add_column("fold")
    keys = list(result.folds[0])
    for key in keys:
        folds.add_column(key[:9], justify="right")
    for index, fold in enumerate(result.folds):
        folds.add_row(str(index + 1), *[_format(fold.get(k)) for k in keys])
    summary = Table(title=f"mean ± std over {len(result.folds)} folds (identical folds for every row)")
    summary.add_column("model")
    for label in SUMMARY_METRICS.values():
        summary.add_column(label, justify="right")
    summary.add_row(f"[bold]{result.generation}", *[_format(result.mean[k], result.std[k]) for k in SUMMARY_METRICS])
    for name, baseline in result.baselines.items():
        summary.add_row(name, *[_format(baseline["mean"].get(k), baseline["std"].get(k)) for k in SUMMARY_METRICS])
    # Which features each baseline saw, once per kind ("all 30 features, ...", "the model's 4 PCA ...").
    seen = dict.fromkeys(("same-feature baselines" if name.endswith(SAME_FEATURES_SUFFIX) else "baselines")
                         + f": {entry['features']}" for name, entry in result.baselines.items())
    summary.caption = "; ".join(seen) or None
    return folds, summary


@app.command()
def train(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name (see `hqray datasets`)"),
    dataset_option: list[str] = typer.Option([], "--dataset-option", "-o", help="dataset option key=value"),
    generation: str = typer.Option("g6", "--generation", "-g", help="generation id (see `hqray generations`)"),
    folds: int = typer.Option(5, help="stratified folds"),
    epochs: int | None = typer.Option(None, help="maximum epochs (default: the generation's)"),
    seed: int = typer.Option(0, help="seed of folds, initialisation and shuffling"),
    output: Path = typer.Option(Path("results/train"), "--output", help="output directory"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                   help="classical baselines on the same folds, on every feature"),
    same_feature_baselines: bool = typer.Option(False, "--same-feature-baselines",
                                                help="also run the baselines on the model's own reduced features"),
    set_option: list[str] = typer.Option([], "--set", help="any HybridConfig field key=value"),
    address: str | None = typer.Option(None, help="Ray cluster for a pool generation (g7); default: "
                                                  "$RAY_ADDRESS, else an embedded local Ray on loopback"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into an --output holding other files "
                                                              "(nothing is deleted)"),
    mlflow: bool = typer.Option(False, "--mlflow", help=MLFLOW_HELP),
    mlflow_uri: str | None = typer.Option(None, "--mlflow-uri", help="MLflow tracking URI (implies --mlflow)"),
) -> None:
    """Cross-validates a generation on a dataset next to classical baselines."""
    from hqray.data import load_dataset
    from hqray.models import make_config
    from hqray.training.families import get_family

    if not get_family(generation).trains_by_epoch:  # unknown names: ConfigError listing every family
        raise ConfigError(f"{generation!r} is an estimator family (hqray families): `hqray train` trains "
                          "generations; compare it in a study (hqray sweep) or build it in Python with "
                          f"get_family({generation!r}).build(settings, seed)")
    options = parse_assignments(set_option, "--set")
    if epochs is not None:
        options["epochs"] = epochs
    config = make_config(generation, seed=seed, **options)
    data = load_dataset(dataset, **parse_assignments(dataset_option, "--dataset-option"))
    track = _mlflow_requested(mlflow, mlflow_uri)
    # torch and scikit-learn load only once the arguments are known to be good.
    from hqray.training import DEFAULT_BASELINES, train_and_save

    if config.quantum_device == "pool":
        _start_pool_layer(config, address)
    console.print(f"[bold]{data.name}[/]: {data.n_samples} rows, {data.n_features} features, "
                  f"classes {data.class_counts()}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        task = progress.add_task(f"{generation} × {folds} folds, epochs", total=config.epochs, status="")

        def on_epoch(epoch: int, records: list[dict[str, float]]) -> None:
            metric = f"val_{config.early_stopping_metric}"
            values = [r[metric] for r in records if not math.isnan(r[metric])]
            mean = sum(values) / len(values) if values else float("nan")
            progress.update(task, completed=epoch, status=f"{metric} {mean:.4f}")

        result = train_and_save(data, config, output, folds=folds, seed=seed,
                                baselines=DEFAULT_BASELINES if baselines else (), on_epoch=on_epoch,
                                same_feature_baselines=same_feature_baselines, overwrite=overwrite)
        progress.update(task, completed=config.epochs)
    for table in _results_tables(result):
        console.print(table)
    console.print(f"wrote {output}/metrics.json, roc.png, pr.png, confusion.png and {output}/checkpoint "
                  f"(cross-validation {result.seconds:.1f} s + final refit {result.refit_seconds:.1f} s)")
    if track:
        from hqray.training.tracking import log_training_run

        run_id = log_training_run(result, output, uri=mlflow_uri)
        console.print(f"logged MLflow run {run_id} (experiment hqray-train) at {_mlflow_location(mlflow_uri)}")


def _mlflow_requested(flag: bool, uri: str | None) -> bool:
    """Whether to track in MLflow; checks that MLflow is installed before any work starts."""
    if not (flag or uri):
        return False
    from hqray.training.tracking import require_mlflow

    require_mlflow()
    return True


def _mlflow_location(uri: str | None) -> str:
    from hqray.training.tracking import tracking_uri

    return tracking_uri(uri)


def _start_pool_layer(config, address: str | None) -> None:
    """Connects to Ray for a pool generation (g7) and shows the tiers its layer will use."""
    import atexit

    from hqray.cluster import PoolConfig, close_shared_pools, connect

    info = connect(address=address, include_dashboard=False)
    console.print(info.summary())
    console.print(_tiers_table(PoolConfig(fallback_order=list(config.pool_tiers)), info.resources))

    def stop() -> None:
        import ray

        close_shared_pools()
        ray.shutdown()

    atexit.register(stop)


def _tiers_table(config, resources: dict[str, float]) -> Table:
    """The workers each pool tier gets on ``resources``, in fallback order."""
    from hqray.cluster import planned_workers

    tiers = Table(title=f"pool tiers (fallback order {' -> '.join(config.fallback_order)})")
    for column in ("tier", "resource", "backend", "results", "workers", "note"):
        tiers.add_column(column)
    for name, (slots, notice) in planned_workers(config, resources).items():
        tier = config.tiers[name]
        tiers.add_row(name, tier.resource, tier.backend, tier.execution, str(slots), notice or "")
    return tiers


def _show_hqray_logs() -> None:
    """hqray's own INFO lines (cluster found, study finished) on the console."""
    import logging

    from rich.logging import RichHandler

    logger = logging.getLogger("hqray")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=console, show_path=False))
        logger.setLevel(logging.INFO)


@app.command()
def sweep(
    study_file: Path = typer.Argument(..., help="study YAML (see tune_spaces/)"),
    address: str | None = typer.Option(None, help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)"),
    resume: bool = typer.Option(False, "--resume", help="finish an interrupted run of this study"),
    smoke_test: bool = typer.Option(False, "--smoke-test", help="shrink the study to seconds (CI)"),
    storage: str | None = typer.Option(None, help="Tune storage: a path or s3:// URI (multi-node clusters "
                                                  "need shared storage); the study uses STORAGE/STUDY; "
                                                  "default RESULTS_DIR/STUDY/tune"),
    results_dir: Path = typer.Option(Path("results"), "--results-dir", help="where STUDY/ is written"),
    num_cpus: int | None = typer.Option(None, help="CPUs of the embedded local Ray (default: all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into a RESULTS_DIR/STUDY holding other "
                                                              "files (nothing is deleted)"),
    mlflow: bool = typer.Option(False, "--mlflow", help=MLFLOW_HELP + "; a run per trial under the study's run"),
    mlflow_uri: str | None = typer.Option(None, "--mlflow-uri", help="MLflow tracking URI (implies --mlflow)"),
) -> None:
    """Runs a study: a Ray Tune search per generation on k identical folds, next to baselines."""
    from hqray.tune import load_study

    study = load_study(study_file)  # a malformed study fails here, before Ray starts
    track = _mlflow_requested(mlflow, mlflow_uri)
    from hqray.tune import run_study

    _show_hqray_logs()

    def announce(generation: str, index: int, count: int) -> None:
        console.rule(f"[bold]{study.name}[/]: generation {generation} ({index + 1}/{count})")

    result = run_study(study, address=address, resume=resume, smoke_test=smoke_test, storage=storage,
                       results_dir=results_dir, num_cpus=num_cpus, on_generation=announce, overwrite=overwrite,
                       mlflow=(mlflow_uri or True) if track else False)
    console.print(_leaderboard_table(result))
    # The sentences under leaderboard.md's table: the quantum/classical verdict and the notes.
    console.print(Markdown(result.markdown.split("\n\n", 2)[-1]))
    console.print(f"wrote {result.directory}/leaderboard.md, leaderboard.csv, trials.parquet, plots/"
                  + (f" and {result.best_checkpoint} (serve it: hqray serve {result.best_checkpoint})"
                     if result.best_checkpoint else ""))
    if track:
        console.print(f"logged the study to MLflow (experiment {study.name}) at {_mlflow_location(mlflow_uri)}")


def _leaderboard_table(result) -> Table:
    """The study's leaderboard for a terminal: the main metrics, names never cut.

    ``leaderboard.md`` keeps every metric; a terminal is too narrow for all of them.
    """
    board, study = result.leaderboard, result.study
    metrics = [m for m in dict.fromkeys([study.metric, "accuracy", "balanced_accuracy", "roc_auc"])
               if m in board and board[m].notna().any()]
    table = Table(title=f"study {study.name}: best trial per generation and baselines, mean ± std over "
                        f"{study.folds} identical folds, ranked by {study.metric}")
    table.add_column("rank", justify="right")
    table.add_column("model", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for metric in metrics:
        table.add_column(metric, justify="right", no_wrap=True)
    table.add_column("trials", justify="right")
    table.add_column("wall s", justify="right")
    for _, row in board.iterrows():
        table.add_row(str(row["rank"]), str(row["model"]), str(row["kind"]),
                      *[_format(row.get(m), row.get(f"{m}_std")) for m in metrics],
                      str(row["trials"]), f"{row['wall_s']:.1f}")
    return table


cluster_app = typer.Typer(no_args_is_help=True, help="Ray cluster and QuantumPool.")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status")
def cluster_status(
    address: str | None = typer.Option(None, help="cluster address (default: $RAY_ADDRESS, else a local Ray)"),
    pool_config: Path | None = typer.Option(None, "--pool-config", help="PoolConfig YAML (default tiers)"),
    num_qpus: float = typer.Option(4, help="virtual QPUs of a local Ray"),
) -> None:
    """Resources found, and the workers each pool tier would get."""
    import ray

    from hqray.cluster import PoolConfig, connect

    config = PoolConfig.from_yaml(pool_config) if pool_config else PoolConfig()
    info = connect(address=address, num_qpus=num_qpus, include_dashboard=False)
    console.print(info.summary())
    nodes = Table(title="nodes")
    for column in ("node", "address", "CPU", "GPU", "QPU"):
        nodes.add_column(column)
    for node in info.nodes:
        nodes.add_row(node["node_id"][:12], str(node["address"]),
                      *[f"{node['resources'].get(k, 0):g}" for k in ("CPU", "GPU", "QPU")])
    console.print(nodes)
    console.print(_tiers_table(config, info.resources))
    ray.shutdown()


@app.command("serve")
def serve_command(
    checkpoints: list[Path] = typer.Argument(..., help="checkpoint directories (e.g. results/train/checkpoint)"),
    name: list[str] = typer.Option([], "--name", help="model names, one per checkpoint (default: directory names)"),
    host: str = typer.Option("127.0.0.1", help="bind address; non-loopback needs --api-key-env"),
    port: int = typer.Option(8000, help="HTTP port"),
    replicas: int = typer.Option(1, help="replicas per model"),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="environment variable holding the API key"),
    max_batch_size: int = typer.Option(32, help="rows batched into one circuit execution"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS, else local)"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
) -> None:
    """Serves checkpoints over HTTP with Ray Serve until interrupted."""
    import signal
    import threading

    from hqray.serve import ServeSettings, api_key_from_env, serve_checkpoints

    if name and len(name) != len(checkpoints):
        raise ConfigError(f"--name given {len(name)} times for {len(checkpoints)} checkpoints")
    names = name or [path.parent.name if path.name == "checkpoint" else path.name for path in checkpoints]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}; use --name")
    api_key = api_key_from_env(api_key_env)
    settings = ServeSettings(host=host, port=port, replicas=replicas, max_batch_size=max_batch_size,
                             trust_code=trust_code)
    # Ctrl+C / SIGTERM only set a flag: an interrupt that lands while Serve is still starting
    # would otherwise be swallowed inside Ray and the server would never stop.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve_checkpoints(dict(zip(names, (str(p) for p in checkpoints), strict=True)), settings, api_key, address=address)
    if not stop.is_set():
        console.print(f"serving {names} at http://{host}:{port}  (POST /v1/models/NAME:predict, GET /v1/models, "
                      f"GET /healthz){'; API key required' if api_key else ''}. Ctrl+C stops.")
    while not stop.wait(0.5):
        pass
    from ray import serve

    console.print("stopping")
    serve.shutdown()


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="checkpoint directory (e.g. results/train/checkpoint)"),
    source: str = typer.Argument(..., metavar="INPUT", help="CSV or Parquet file, a directory of them, or a glob"),
    output: Path = typer.Option(..., "--output", "-o", help="Parquet output directory (errors: OUTPUT/_errors.csv)"),
    id_column: str | None = typer.Option(None, "--id-column", help="input column to keep as each row's id "
                                                                   "(default: file and row number)"),
    tier: str = typer.Option("cpu", help="resource each scoring actor holds: cpu, gpu or qpu"),
    actors: int = typer.Option(1, help="scoring actors (each loads the checkpoint once)"),
    actor_cpus: float = typer.Option(1.0, help="CPUs per actor on the cpu tier (its torch threads)"),
    batch_size: int = typer.Option(131_072, help="rows per scoring call"),
    address: str | None = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS, else local)"),
    trust_code: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP),
) -> None:
    """Scores a table of any size with Ray Data; exits 1 if any row could not be scored."""
    from hqray.cluster import connect
    from hqray.serve.batch import predict_table

    info = connect(address=address, include_dashboard=False)
    console.print(info.summary())
    report = predict_table(checkpoint, source, output, id_column=id_column, tier=tier, actors=actors,
                           actor_cpus=actor_cpus, batch_size=batch_size, trust_code=trust_code)
    console.print(report.summary(), soft_wrap=True, highlight=False)
    if report.errors:
        console.print(f"[red]error:[/] {report.errors:,} of {report.rows + report.errors:,} rows could not be "
                      f"scored; their ids and reasons are in {report.errors_file}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def datasets() -> None:
    """Lists the datasets and their options."""
    from hqray.data import list_datasets

    table = Table(title="datasets")
    for column in ("name", "description", "options (default)"):
        table.add_column(column)
    for entry in list_datasets():
        options = ", ".join(
            f"{name}={'required' if field.is_required() else repr(field.default)}"
            for name, field in entry.options_model.model_fields.items()) or "-"
        table.add_row(entry.name, entry.description, options)
    console.print(table)


@app.command()
def circuits() -> None:
    """Lists the registered circuits: embeddings and ansätze, their options and what they measure."""
    from hqray.quantum.circuits import list_circuits

    table = Table(title="circuits (a model: --set circuit=NAME, circuit.embedding=..., circuit.reupload=true)")
    for column in ("name", "kind", "description", "options (default)", "weights", "measures"):
        table.add_column(column)
    for entry in list_circuits():
        options = ", ".join(f"{name}={field.default!r}" for name, field in entry.options.model_fields.items()) or "-"
        weights = "inputs" if entry.kind == "embedding" else _weight_formula(entry)
        measures = "-" if entry.kind == "embedding" else (
            "<Z> on one readout wire" if entry.readout else "<Z> on every wire")
        table.add_row(entry.name, entry.kind, entry.description, options, weights, measures)
    console.print(table)


def _weight_formula(entry) -> str:
    """The weight shape for n qubits and L layers, written with the letters."""
    small, large = entry.weight_shape(4, 5, entry.options()), entry.weight_shape(16, 7, entry.options())
    parts = []
    for a, b in zip(small, large, strict=True):
        parts.append(str(a) if a == b else {(5, 7): "L", (4, 16): "n", (3, 15): "n-1", (2, 4): "log2 n"}.get(
            (a, b), f"{a} at n=4, L=5"))
    return "(" + ", ".join(parts) + ")"


@app.command()
def families() -> None:
    """Lists every model family a study can compare: generations and estimator families."""
    from hqray.training.families import list_families

    table = Table(title="model families (study files list them under `generations:`)")
    for column in ("name", "kind", "title", "what it is", "settings", "default search"):
        table.add_column(column)
    for family in list_families():
        if family.options is None:  # a generation: HybridConfig fields, its own defaults shown
            settings = ", ".join(f"{k}={v}" for k, v in family.defaults.items()) or "-"
            settings += " (HybridConfig: hqray train --set KEY=VALUE)"
        else:
            settings = ", ".join(f"{k}={v!r}" for k, v in family.validate({}).items())
        search = ", ".join(f"{k}={v}" for k, v in family.search_space.items()) or "-"
        table.add_row(family.name, family.kind, family.title, family.description, settings, search)
    console.print(table)


@app.command()
def generations() -> None:
    """Lists the model families (same as `hqray families`)."""
    families()


def _write_json(path: Path | None, data) -> None:
    """Writes a benchmark's results when --json was given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        console.print(f"wrote {path}")


@bench_app.command("engine")
def bench_engine(
    json_path: Path | None = typer.Option(None, "--json", help="write the rows to this JSON file"),
    quick: bool = typer.Option(False, "--quick", help="a small grid for CI (seconds)"),
    threads: int | None = typer.Option(None, help="torch threads (default: torch's)"),
    device: str = typer.Option("cpu", help="cpu, or cuda: every method on the GPU (its own grid)"),
    methods: list[str] = typer.Option([], "--methods", help="only these methods (hqray-auto always runs)"),
    max_qubits: int | None = typer.Option(None, help="leave out larger circuits"),
    grid: str = typer.Option("sel", help="sel: the engine's strategies on StronglyEntanglingLayers; "
                                         "circuits: any circuit through the tape compiler (eager, and jit up "
                                         "to 8 qubits) vs default.qubit (torch, JAX) and tensorcircuit-ng "
                                         "(needs the bench extra)"),
    circuits: list[str] = typer.Option([], "--circuits", help="--grid circuits: only these cells, as NAME or "
                                                               "NAME:QUBITS (e.g. qcnn:12)"),
) -> None:
    """Engine vs PennyLane default.qubit, lightning.qubit, JAX and one-QNode-per-sample."""
    if grid not in ("sel", "circuits"):
        raise typer.BadParameter(f"--grid {grid!r}: expected 'sel' or 'circuits'")
    if circuits and grid != "circuits":
        raise typer.BadParameter("--circuits picks cells of --grid circuits")
    if grid == "circuits":
        from hqray.benchmarks.circuits import run_circuit_benchmark, summary

        rows = run_circuit_benchmark(quick=quick, threads=threads, log=console.print, only=tuple(methods),
                                     max_qubits=max_qubits, circuits=tuple(circuits))
        for cell in summary(rows):
            console.print(f"{cell['circuit']} n={cell['n_qubits']} B={cell['batch']} threads={cell['threads']}: "
                          f"hqray ({cell['hqray_method']}) {cell['vs_default_qubit_torch']:.1f}x default.qubit-torch, "
                          f"{cell['vs_best_jax']:.2f}x the best JAX path")
    else:
        from hqray.benchmarks.engine import run_engine_benchmark

        rows = run_engine_benchmark(quick=quick, threads=threads, log=console.print, device=device,
                                    only=tuple(methods), max_qubits=max_qubits)
    _write_json(json_path, rows)


@bench_app.command("pool")
def bench_pool(
    json_path: Path | None = typer.Option(None, "--json", help="write the results to this JSON file"),
    rows: int = typer.Option(100_000, help="rows per job"),
    qubits: list[int] = typer.Option([4, 8], "--qubits", help="circuit sizes"),
) -> None:
    """QuantumPool (1 and 2 CPU workers) vs the in-process engine, plus a chaos run."""
    from hqray.benchmarks.pool import run_pool_benchmark

    results = run_pool_benchmark(rows=rows, log=console.print, qubits=tuple(qubits))
    _write_json(json_path, results)


@bench_app.command("noisy")
def bench_noisy(
    json_path: Path | None = typer.Option(None, "--json", help="write the results to this JSON file"),
    qubits: list[int] = typer.Option([4, 8, 10], "--qubits", help="circuit sizes"),
    batch: int = typer.Option(256, help="rows per batch"),
) -> None:
    """The QPU tier's density-matrix engine vs default.mixed (and qiskit-aer where installed)."""
    from hqray.benchmarks.noisy import run_noisy_benchmark

    _write_json(json_path, run_noisy_benchmark(qubits=tuple(qubits), batch=batch, log=console.print))


@bench_app.command("predict")
def bench_predict(
    json_path: Path | None = typer.Option(None, "--json", help="write the results to this JSON file"),
    rows: list[int] = typer.Option([1_000_000, 10_000_000], "--rows", help="table sizes"),
    widths: list[int] = typer.Option([4, 30], "--widths", help="feature counts"),
    workdir: Path | None = typer.Option(None, help="where the generated tables go (default: the temp dir)"),
    qubits: int | None = typer.Option(None, help="the g6 model's circuit width (default: g6's own)"),
    scaling_seconds: float = typer.Option(5.0, min=0.1, help="seconds each process scores when two score at once"),
    floor_tries: int = typer.Option(3, min=1, help="tries of Ray Data's own start-up per actor count (least kept)"),
) -> None:
    """`hqray predict` with 1 and 2 actors vs in-process predict_proba, and their memory."""
    from hqray.benchmarks.predict import run_predict_benchmark

    results = run_predict_benchmark(tuple(rows), tuple(widths), str(workdir) if workdir else None, log=console.print,
                                    n_qubits=qubits, scaling_seconds=scaling_seconds, floor_tries=floor_tries)
    for ratio in results["ratios"]:
        console.print(f"{ratio['width']} features, {ratio['rows']:,} rows: 2 actors / 1 actor "
                      f"{ratio['two_vs_one_actor']}x end to end, {ratio['two_vs_one_actor_once_scoring']}x once "
                      f"scoring (at best {ratio['two_vs_one_actor_ceiling']}x end to end, Ray Data's start-up); "
                      f"2 actors / in-process {ratio['two_actors_vs_in_process']}x")
    _write_json(json_path, results)


@bench_app.command("kernel")
def bench_kernel(
    json_path: Path | None = typer.Option(None, "--json", help="write the rows to this JSON file"),
    quick: bool = typer.Option(False, "--quick", help="N=200, 4 qubits, no pool (seconds)"),
    sizes: list[int] = typer.Option([], "--sizes", help="sample counts (default 500, 2000, 10000)"),
    qubits: list[int] = typer.Option([], "--qubits", help="qubit counts (default 4, 8, 12)"),
) -> None:
    """Quantum-kernel Gram matrices: hqray (in-process, pool) vs one circuit per pair."""
    from hqray.benchmarks.kernel import run_kernel_benchmark

    options = {"sizes": (200,), "qubits": (4,), "with_pool": False} if quick else {}
    if sizes:
        options["sizes"] = tuple(sizes)
    if qubits:
        options["qubits"] = tuple(qubits)
    rows = run_kernel_benchmark(log=console.print, **options)
    _write_json(json_path, rows)


@bench_app.command("serve")
def bench_serve(
    json_path: Path | None = typer.Option(None, "--json", help="write the results to this JSON file"),
    rounds: int | None = typer.Option(None, "--rounds", min=1,
                                      help="interleaved rounds of every variant per concurrency level [default: 3]"),
) -> None:
    """HTTP latency / throughput: batched vs unbatched vs a no-op floor (loopback, bounded)."""
    from hqray.benchmarks.serve import run_serve_benchmark

    results = run_serve_benchmark(log=console.print, **({"rounds": rounds} if rounds else {}))
    _write_json(json_path, results)


@bench_app.command("sweep")
def bench_sweep(
    json_path: Path | None = typer.Option(None, "--json", help="write the results to this JSON file"),
    quick: bool = typer.Option(False, "--quick", help="3 trials of 2 folds and 2 epochs (CI)"),
    setups: list[str] = typer.Option([], "--setup", help="'1 cpu', '2 cpus', 'N nodes' (default: all three)"),
) -> None:
    """A study's trials per hour on 1 CPU, 2 CPUs and a 3-node loopback cluster."""
    from hqray.benchmarks.sweep import SETUPS, run_sweep_benchmark

    results = run_sweep_benchmark(quick=quick, setups=tuple(setups) or SETUPS, log=console.print)
    for row in results["rows"]:
        console.print(f"{row['setup']}: {row['trials_per_hour']:.0f} trials/hour ({row['speedup_vs_first']}x)")
    _write_json(json_path, results)


@bench_app.command("train")
def bench_train(
    json_path: Path | None = typer.Option(None, "--json", help="write the timings to this JSON file"),
) -> None:
    """End-to-end `hqray train` (iris binary, g6, 5 folds): engine vs the plain PennyLane layer."""
    from hqray.benchmarks.train import run_train_benchmark

    rows = run_train_benchmark(log=console.print)
    _write_json(json_path, rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns hqray errors into one red line and exit code 2."""
    # As under `python -m`: modules in the working directory import, so a circuit named
    # "my_circuits:ladder" next to a study file is found (uvicorn's --app-dir does the same).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code = app(args=argv, standalone_mode=False)  # click returns a typer.Exit's code here
    except HqrayError as error:
        # One line whatever its length (a wrapped error reads as several), markup in it shown as is.
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        return 2
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.Abort:
        return 130
    except Exception as error:  # click usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
