"""`hqray bench predict`: `hqray predict` on Ray Data (1 and 2 actors) vs in-process scoring.

One g6 checkpoint per width (4 and 30 features) scores a generated Parquet table. Each
method does the same work end to end: read the table, score every row, write the
probabilities as Parquet. In-process reads the whole table into memory and calls
``predict_proba`` once (what a script does); ``hqray predict`` streams. Memory: the peak
RSS of the driver process above its start, and the peak unique memory of each scoring
actor (sampled every 0.5 s), at two table sizes, to show that streaming memory does not grow
with the row count. Start-up (actors, checkpoint load) and scoring are also timed apart;
an untimed run on a small table first lets Ray Data start its own helper actors.

Two measurements put the ratios in context: Ray Data's own start-up (actors that import
nothing), and what two processes scoring at once (``predict_proba``, one thread each, no
Ray) get from this machine against one alone: the most two actors can gain once scoring.
"""

from __future__ import annotations

import multiprocessing
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from hqray.benchmarks.common import PeakMemory, machine_info

__all__ = ["run_predict_benchmark"]

ROW_GROUP = 250_000
SCORER_PROCESS = "MapBatches(_ScoringWriter)"  # in the titles Ray Data gives the scoring actors


def make_checkpoint(width: int, directory: Path, n_qubits: int | None = None) -> Path:
    """A g6 model fitted on 2,000 generated rows of ``width`` features (1 epoch: speed, not quality).

    ``n_qubits`` overrides g6's circuit width (a heavier model: scoring, not I/O, dominates).
    """
    from hqray.training import HybridClassifier, save_checkpoint

    rng = np.random.default_rng(width)
    features = rng.normal(size=(2000, width))
    labels = (features[:, : min(width, 3)].sum(axis=1) > 0).astype(int)
    names = [f"f{i}" for i in range(width)]
    options = {"n_qubits": n_qubits} if n_qubits else {}
    model = HybridClassifier("g6", epochs=1, **options).fit(features, labels, names)
    return save_checkpoint(model, directory / f"g6_{width}_{n_qubits or 'default'}")


def write_table(path: Path, rows: int, width: int, seed: int = 0) -> Path:
    """A Parquet table of standard normal features, written in row groups (bounded memory)."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([(f"f{i}", pa.float64()) for i in range(width)])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            block = rng.normal(size=(min(ROW_GROUP, rows - start), width))
            writer.write_table(pa.table({f"f{i}": block[:, i] for i in range(width)}, schema=schema))
    return path


class ActorMemory:
    """Peak unique memory (USS, MB) of each scoring actor process, sampled in a thread.

    USS, not RSS: an actor's RSS also counts the pages of Ray's shared object store it has
    read, which grow with the rows that passed through it though they belong to the store.
    Every 0.5 s: a pass over the process table and two actors' USS costs ~13 ms of CPU (ad
    hoc), 13% of a core at 0.1 s, taken from the actors when two of them fill both cores.
    Until ``expected`` actors have been seen it samples every 0.1 s: the actors of a small
    table can start and finish between two samples 0.5 s apart.
    """

    def __init__(self, expected: int = 0, interval: float = 0.5, first_interval: float = 0.1):
        self.expected, self.interval, self.first_interval, self.peaks = expected, interval, first_interval, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            for process in psutil.process_iter(["cmdline"]):
                if SCORER_PROCESS not in " ".join(process.info["cmdline"] or []):
                    continue
                try:
                    unique = process.memory_full_info().uss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                self.peaks[process.pid] = max(self.peaks.get(process.pid, 0.0), unique)
            self._done.wait(self.interval if len(self.peaks) >= self.expected else self.first_interval)

    def __enter__(self) -> ActorMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def score_in_process(checkpoint: Path, table: Path, output: Path) -> None:
    """The script way: the whole table in memory, one predict_proba, one Parquet file out."""
    from hqray.training import load_model

    model = load_model(checkpoint)
    features = pq.read_table(table).to_pandas().to_numpy()
    probabilities = model.predict_proba(features)
    pq.write_table(pa.table({f"proba_{c}": probabilities[:, i] for i, c in enumerate(model.classes_)}), output)


def wait_for_free_cpus(timeout: float = 120.0) -> float:
    """Waits until every CPU of the local Ray is free again (the previous run's actors have
    exited; Ray Data stops them after a run ends); returns the seconds waited.

    Without this, a run could start while the last one's actors still hold their CPUs and
    its read tasks wait for one.
    """
    import ray

    started = time.perf_counter()
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"Ray's CPUs were not all free {timeout:.0f} s after the last run: "
                               f"{ray.available_resources().get('CPU', 0)} of {ray.cluster_resources().get('CPU', 0)}")
        time.sleep(0.1)
    return time.perf_counter() - started


class _FirstCall:
    """A Ray Data actor that imports nothing and scores nothing: it stamps when it first runs."""

    def __call__(self, batch: dict) -> dict:
        return {"started": np.full(len(batch["id"]), time.time())}


def ray_data_floor(actors: int) -> float:
    """Seconds from starting a Ray Data pool of ``actors`` actors that import nothing to its
    first call: Ray Data's own start-up on this machine, before any scoring code runs (the
    benchmark keeps the least of three tries). ``hqray predict``'s start-up is this plus
    whatever of its imports and checkpoint load Ray Data's start does not overlap."""
    import ray

    wait_for_free_cpus()
    started = time.time()
    calls = ray.data.range(4 * actors, override_num_blocks=4 * actors).map_batches(
        _FirstCall, batch_format="numpy", num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2)).to_pandas()
    return round(float(calls["started"].min()) - started, 2)


def ray_data_start_up(tries: int = 3) -> dict[str, float]:
    """:func:`ray_data_floor` for 1 and 2 actors, the least of ``tries`` alternating tries
    each (a floor, on a noisy host), keyed by the actor count as text."""
    seconds = [(actors, ray_data_floor(actors)) for _ in range(tries) for actors in (1, 2)]
    return {str(n): min(s for actors, s in seconds if actors == n) for n in (1, 2)}


def _score_for(checkpoint: str, width: int, seconds: float, start_together, rates) -> None:
    """One process scoring a 131,072-row block again and again for ``seconds``; puts its rows/s."""
    from hqray.quantum.threads import use_threads
    from hqray.training import load_model

    model = load_model(checkpoint, scoring=True)
    use_threads(1)
    block = np.random.default_rng(0).normal(size=(131_072, width))
    model.predict_proba(block)  # warm: first-call allocations
    start_together.wait()
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict_proba(block)
        rows += block.shape[0]
    rates.put(rows / (time.perf_counter() - started))


def two_process_scaling(checkpoint: Path, width: int, seconds: float = 5.0) -> float:
    """Rows/s of two processes scoring at once (each alone on one thread, no Ray) over one
    process alone: how much a second core gives this scoring on this machine."""
    context = multiprocessing.get_context("spawn")

    def rows_per_s(processes: int) -> float:
        start_together, rates = context.Barrier(processes), context.Queue()
        workers = [context.Process(target=_score_for, args=(str(checkpoint), width, seconds, start_together, rates))
                   for _ in range(processes)]
        for worker in workers:
            worker.start()
        try:
            total = sum(rates.get(timeout=300) for _ in workers)
        except queue.Empty:
            raise RuntimeError(f"a scoring process gave no rate within 300 s (exit codes: "
                               f"{[worker.exitcode for worker in workers]})") from None
        finally:
            for worker in workers:
                worker.join(timeout=60)
        return total

    return round(rows_per_s(2) / rows_per_s(1), 2)


def _measure(method: str, run: Callable[[], object], rows: int, actors: int = 0) -> dict:
    wait_for_free_cpus()
    memory = PeakMemory(interval=0.02)
    with ActorMemory(expected=actors) as sampled, memory.measure():
        started = time.perf_counter()
        report = run()
        seconds = time.perf_counter() - started
    row = {"method": method, "rows": rows, "seconds": round(seconds, 2), "rows_per_s": rows / seconds,
           "driver_peak_mb": round(memory.peak_mb, 1),
           "actor_peak_mb": sorted(round(mb, 1) for mb in sampled.peaks.values())}
    if hasattr(report, "scoring_seconds"):  # a PredictionReport: start-up (actors, load) apart from scoring
        row.update(startup_seconds=round(report.startup_seconds, 2), scoring_seconds=round(report.scoring_seconds, 2),
                   scoring_rows_per_s=rows / report.scoring_seconds)
    return row


def run_predict_benchmark(row_counts: tuple[int, ...] = (1_000_000, 10_000_000), widths: tuple[int, ...] = (4, 30),
                          workdir: str | None = None, log: Callable[[str], None] = print,
                          n_qubits: int | None = None, scaling_seconds: float = 5.0, floor_tries: int = 3) -> dict:
    """Runs every method on every (rows, width); returns machine info, rows and ratios.

    ``scaling_seconds``: how long each process scores in :func:`two_process_scaling`;
    ``floor_tries``: tries of Ray Data's own start-up per actor count (the least is kept).
    """
    from hqray.cluster import connect
    from hqray.serve.batch import predict_table

    info = machine_info()
    log(f"machine: {info}")
    results, scaling = [], {}
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        root = Path(scratch)
        checkpoints = {width: make_checkpoint(width, root, n_qubits) for width in widths}
        for width, checkpoint in checkpoints.items():  # before Ray starts: its processes would share the cores
            scaling[str(width)] = two_process_scaling(checkpoint, width, scaling_seconds)
            log(f"{width} features: two processes scoring at once (no Ray) {scaling[str(width)]}x one alone")
        # 2 actors x 1 CPU + 1 CPU for the read and write tasks (the cluster check asks for it).
        connect(num_cpus=3, include_dashboard=False)
        # Ray Data's first run starts its own actors: not the first method's cost.
        predict_table(checkpoints[widths[0]], write_table(root / "warm_up.parquet", 1000, widths[0]), root / "warm_up")
        floor = ray_data_start_up(floor_tries)
        log(f"Ray Data's own start-up (actors that import nothing, to their first call; least of "
            f"{floor_tries}): 1 actor {floor['1']} s, 2 actors {floor['2']} s")
        for width, checkpoint in checkpoints.items():
            for rows in row_counts:
                table = write_table(root / f"table_{width}_{rows}.parquet", rows, width)
                methods = {  # what runs, and how many scoring actors it starts
                    "in-process": (partial(score_in_process, checkpoint, table, root / "inproc.parquet"), 0),
                    "hqray predict, 1 actor": (partial(predict_table, checkpoint, table, root / "out1", actors=1), 1),
                    "hqray predict, 2 actors": (partial(predict_table, checkpoint, table, root / "out2", actors=2), 2),
                }
                for method, (run, actors) in methods.items():
                    row = {"width": width, "n_qubits": n_qubits or "g6 default", **_measure(method, run, rows, actors)}
                    results.append(row)
                    phases = (f", start-up {row['startup_seconds']} s + scoring {row['scoring_seconds']} s"
                              if "startup_seconds" in row else "")
                    log(f"{width} features, {rows:,} rows, {method}: {row['rows_per_s']:,.0f} rows/s "
                        f"({row['seconds']} s{phases}), driver +{row['driver_peak_mb']} MB, "
                        f"actors {row['actor_peak_mb']} MB")
                table.unlink()
    return {"machine": info, "ray_data_floor_s": floor, "two_process_scaling": scaling, "rows": results,
            "ratios": ratios(results, floor)}


def ratios(results: list[dict], floor: dict[str, float]) -> list[dict]:
    """Per (width, rows): 2 actors / 1 actor and each against in-process, from the same run.

    ``two_vs_one_actor_ceiling`` is the end-to-end ratio two actors would reach if both
    pipelines started in Ray Data's own start-up time (:func:`ray_data_floor`) and two actors
    scored in exactly half of one actor's time: ``(floor_1 + scoring_1) / (floor_2 + scoring_1 / 2)``.
    """
    out = []
    keys = sorted({(r["width"], r["rows"]) for r in results})
    for width, rows in keys:
        cell = [r for r in results if (r["width"], r["rows"]) == (width, rows)]
        by = {r["method"]: r["rows_per_s"] for r in cell}
        one, two, local = by["hqray predict, 1 actor"], by["hqray predict, 2 actors"], by["in-process"]
        scoring = {r["method"]: r.get("scoring_rows_per_s") for r in cell}
        steady_one, steady_two = scoring["hqray predict, 1 actor"], scoring["hqray predict, 2 actors"]
        scoring_one = next(r["scoring_seconds"] for r in cell if r["method"] == "hqray predict, 1 actor")
        ceiling = (floor["1"] + scoring_one) / (floor["2"] + scoring_one / 2)
        out.append({"width": width, "rows": rows, "two_vs_one_actor": round(two / one, 2),
                    "two_vs_one_actor_once_scoring": round(steady_two / steady_one, 2) if steady_one else None,
                    "two_vs_one_actor_ceiling": round(ceiling, 2), "two_actors_vs_in_process": round(two / local, 2)})
    return out
