"""`hqray bench serve`: HTTP latency and throughput of served models, on loopback.

One run: the same checkpoint served with batching and without, and no-op Serve deployments
(same proxy, FastAPI ingress, JSON in and out; no model), one unbatched (the latency floor)
and one through ``@serve.batch`` (what batching gives a model whose calls cost nothing). Single-
row requests at concurrency 1, 8 and 32 from :class:`HttpConnection` keep-alive connections;
each level runs every variant in a few interleaved rounds, each bounded in requests and
seconds, so the ratios come with their spread within the same run.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable

import numpy as np

from hqray.benchmarks.common import machine_info, median_ms
from hqray.errors import ConfigError
from hqray.ports import free_port

__all__ = ["run_serve_benchmark"]

CONCURRENCY = (1, 8, 32)
REQUESTS_PER_LEVEL = {1: 200, 8: 600, 32: 1200}
SECONDS_PER_LEVEL = 15.0
ROUNDS = 3  # interleaved rounds of every variant per level; ratios are medians over rounds
# Two models: the engine-backed g6 (about 1 ms a call) and the same model on PennyLane's
# default.qubit (milliseconds of fixed cost per call), where batching has work to share.
MODELS = {"engine": {}, "pennylane": {"quantum_device": "default.qubit", "diff_method": "backprop"}}


class HttpConnection:
    """One HTTP/1.1 keep-alive connection that POSTs pre-encoded JSON bodies.

    The load generator shares the machine's cores with Serve's proxy and replicas, so its
    own work per request takes CPU from the server it measures: a general-purpose client
    (connection pools, header objects, JSON encoding per request) lowers the very floor it
    measures. This one writes a pre-encoded request and reads the status line, headers and
    body, nothing more.

    Example (inside a coroutine, with a server on ``port``)::

        connection = await HttpConnection.open("127.0.0.1", port)
        status, body = await connection.post("/v1/models/iris:predict", b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}')
    """

    def __init__(self, host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self.host, self.port, self.reader, self.writer = host, port, reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(host, reader, writer, port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Returns ``(status, body)``; reconnects if the server closed the connection."""
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                          + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            payload = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
                chunks.append(await self.reader.readexactly(size + 2))
            await self.reader.readuntil(b"\r\n")  # the empty trailer
            payload = b"".join(chunk[:-2] for chunk in chunks)
        else:
            raise ValueError(f"response to {path} has neither Content-Length nor chunked encoding: {head!r}")
        if headers.get(b"connection") == b"close":
            await self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return status, payload

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


async def _load(port: int, path: str, concurrency: int, bodies: list[bytes]) -> dict:
    """``concurrency`` connections POST single-row bodies until the level's request or time
    bound; a response counts as an error unless it is a 200 with predictions. Returns the
    latencies (s), the wall time of the level and the error count."""
    total = REQUESTS_PER_LEVEL[concurrency]
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + SECONDS_PER_LEVEL
    connections = [await HttpConnection.open("127.0.0.1", port) for _ in range(concurrency)]

    async def worker(connection: HttpConnection) -> None:
        nonlocal issued, errors
        while issued < total and time.monotonic() < deadline:
            issued += 1
            body = bodies[issued % len(bodies)]
            started = time.perf_counter()
            status, payload = await connection.post(path, body)
            latencies.append(time.perf_counter() - started)
            errors += status != 200 or b'"predictions"' not in payload

    try:
        for _ in range(min(20, total)):  # warm-up
            await connections[0].post(path, bodies[0])
        began = time.perf_counter()
        await asyncio.gather(*(worker(connection) for connection in connections))
        elapsed = time.perf_counter() - began
    finally:
        for connection in connections:
            await connection.close()
    return {"latencies": latencies, "elapsed": elapsed, "errors": errors}


def _summary(rounds: list[dict]) -> dict:
    """One variant at one level over its rounds: requests/s per round and their median;
    p50/p99 over every request of every round."""
    values = np.concatenate([np.asarray(r["latencies"]) for r in rounds]) * 1000
    per_round = [len(r["latencies"]) / r["elapsed"] for r in rounds]
    return {"requests": int(values.size), "errors": int(sum(r["errors"] for r in rounds)),
            "requests_per_s": float(np.median(per_round)), "requests_per_s_per_round": per_round,
            "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


def _served(port: int, variant: str) -> dict:
    """The Gateway's own counters (requests, rows, model calls) of a model variant."""
    import httpx

    models = httpx.get(f"http://127.0.0.1:{port}/{variant}/v1/models", timeout=10).json()["models"]
    return models[0]["served_by_this_replica"]


def run_serve_benchmark(log: Callable[[str], None] = print, batch_wait_timeout_s: float | None = None,
                        access_log: bool = True, concurrency_levels: tuple[int, ...] = CONCURRENCY,
                        rounds: int = ROUNDS) -> dict:
    """Returns per concurrency level and variant: requests/s (median of ``rounds``
    interleaved rounds, and each round's), p50/p99 ms, errors, rows per model call; the
    two target ratios, each the median of its per-round ratios with every round's listed;
    and each model's in-process ``predict_proba`` time for 1 and 32 rows.
    ``batch_wait_timeout_s`` None: ServeSettings' default."""
    from ray import serve

    from hqray.cluster import connect
    from hqray.data import load_dataset
    from hqray.serve import ServeSettings, build_app

    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    info = machine_info()
    log(f"machine: {info}")
    data = load_dataset("iris", task="multiclass")
    checkpoints, call_ms = _fit_models(data, log)
    connect(num_cpus=2, include_dashboard=False)
    port = free_port()
    wait = {} if batch_wait_timeout_s is None else {"batch_wait_timeout_s": batch_wait_timeout_s}
    batched = ServeSettings(port=port, replica_cpus=0.25, max_batch_size=32, access_log=access_log, **wait)
    unbatched = ServeSettings(port=port, replica_cpus=0.25, batching=False, access_log=access_log)
    serve.start(http_options=batched.http_options())
    for label, checkpoint in checkpoints.items():
        serve.run(build_app({"iris": checkpoint}, batched), name=f"{label}-batched", route_prefix=f"/{label}-batched")
        serve.run(build_app({"iris": checkpoint}, unbatched), name=f"{label}-unbatched",
                  route_prefix=f"/{label}-unbatched")
    from hqray.benchmarks.serve_noop import NoOp, NoOpBatched

    logging_config = {"enable_access_log": access_log}
    serve.run(NoOp.options(logging_config=logging_config).bind(), name="noop", route_prefix="/noop")
    serve.run(NoOpBatched.options(logging_config=logging_config).bind(), name="noop-batched",
              route_prefix="/noop-batched")
    bodies = [json.dumps({"instances": [row]}).encode() for row in data.features.tolist()]
    variants = ["noop", "noop-batched"] + [f"{label}-{mode}" for label in MODELS for mode in ("batched", "unbatched")]
    results: dict = {"machine": info, "rounds": rounds, "in_process_call_ms": call_ms, "levels": {}}
    try:
        for concurrency in concurrency_levels:
            measured: dict[str, list[dict]] = {variant: [] for variant in variants}
            calls: dict[str, list[int]] = {variant: [0, 0] for variant in variants if not variant.startswith("noop")}
            # Rounds interleave the variants, so a slow spell of the shared machine falls on
            # all of them rather than on one.
            for round_index in range(rounds):
                for variant in variants:
                    before = _served(port, variant) if variant in calls else None
                    measured[variant].append(asyncio.run(
                        _load(port, f"/{variant}/v1/models/iris:predict", concurrency, bodies)))
                    if before is not None:
                        after = _served(port, variant)
                        calls[variant][0] += after["rows"] - before["rows"]
                        calls[variant][1] += after["model_calls"] - before["model_calls"]
                    latest = measured[variant][-1]
                    log(f"concurrency {concurrency:>2} round {round_index + 1}/{rounds} {variant:>19}: "
                        f"{len(latest['latencies']) / latest['elapsed']:7.1f} req/s, errors {latest['errors']}")
            level = {variant: _summary(rounds_measured) for variant, rounds_measured in measured.items()}
            for variant, (rows, model_calls) in calls.items():
                level[variant]["rows_per_model_call"] = rows / model_calls if model_calls else None
            for variant, stats in level.items():
                log(f"concurrency {concurrency:>2} {variant:>19}: {stats['requests_per_s']:7.1f} req/s (median), "
                    f"p50 {stats['p50_ms']:6.2f} ms, p99 {stats['p99_ms']:7.2f} ms, errors {stats['errors']}"
                    + (f", {stats['rows_per_model_call']:.1f} rows a model call"
                       if stats.get("rows_per_model_call") else ""))
            results["levels"][str(concurrency)] = level
    finally:
        serve.shutdown()
        import ray

        ray.shutdown()
    results.update(target_ratios(results["levels"], log))
    return results


def _fit_models(data, log: Callable[[str], None]) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Each model of MODELS fitted and checkpointed, and its in-process call time for 1 and 32 rows."""
    from hqray.training import HybridClassifier, save_checkpoint

    names = np.asarray(data.class_names)[data.labels]
    checkpoints, call_ms = {}, {}
    for label, options in MODELS.items():
        model = HybridClassifier("g6", epochs=10, options=options or None).fit(
            data.features, names, list(data.feature_names))
        checkpoints[label] = str(save_checkpoint(model, tempfile.mkdtemp()))
        # What one model call costs in this process before Ray starts: the work batching can
        # share (per call) next to the work it cannot (per row).
        call_ms[label] = {f"{rows}_rows": median_ms(lambda x=data.features[:rows], model=model: model.predict_proba(x))
                          for rows in (1, 32)}
        log(f"{label}: predict_proba in process, median ms: "
            + ", ".join(f"{key.replace('_', ' ')} {value:.2f}" for key, value in call_ms[label].items()))
    return checkpoints, call_ms


def target_ratios(levels: dict, log: Callable[[str], None] = lambda line: None) -> dict:
    """Each model's two target ratios from the measured levels (medians of per-round ratios)."""
    one, many = levels["1"], levels["32"]
    results: dict = {}

    def per_round(numerator: str, denominator: str) -> list[float]:
        return [a / b for a, b in zip(many[numerator]["requests_per_s_per_round"],
                                      many[denominator]["requests_per_s_per_round"], strict=True)]

    for label in MODELS:
        results[f"{label}_p50_ratio_to_floor_at_1"] = one[f"{label}-batched"]["p50_ms"] / one["noop"]["p50_ms"]
        speedups = per_round(f"{label}-batched", f"{label}-unbatched")
        # What batching would give this model if its calls cost nothing: the batched no-op over
        # the model unbatched. Not a strict bound: a slower model gathers larger batches, which
        # spreads @serve.batch's own per-batch cost over more requests.
        zero_cost = per_round("noop-batched", f"{label}-unbatched")
        results[f"{label}_batching_speedup_at_32"] = float(np.median(speedups))
        results[f"{label}_batching_speedup_at_32_per_round"] = speedups
        results[f"{label}_zero_cost_batching_at_32"] = float(np.median(zero_cost))
        results[f"{label}_zero_cost_batching_at_32_per_round"] = zero_cost
        log(f"{label}: p50 at concurrency 1 = {results[f'{label}_p50_ratio_to_floor_at_1']:.2f}x the no-op floor; "
            f"batching at concurrency 32 = {results[f'{label}_batching_speedup_at_32']:.2f}x unbatched requests/s "
            f"(rounds: {', '.join(f'{v:.2f}' for v in speedups)}; with calls that cost nothing: "
            f"{results[f'{label}_zero_cost_batching_at_32']:.2f}x)")
    return results
