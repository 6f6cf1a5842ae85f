"""`hqray bench serve`: HTTP latency and throughput of served models, on loopback.

One run: the same checkpoint served with batching and without, and a no-op Serve
deployment (same proxy, FastAPI ingress, JSON in and out; no model) as the floor. Single-
row requests at concurrency 1, 8 and 32; each level is bounded in requests and seconds.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from collections.abc import Callable

import numpy as np

from hqray.benchmarks.common import machine_info

__all__ = ["run_serve_benchmark"]

CONCURRENCY = (1, 8, 32)
REQUESTS_PER_LEVEL = {1: 200, 8: 600, 32: 1200}
SECONDS_PER_LEVEL = 15.0
# Two models: the engine-backed g6 (about 1 ms a call) and the same model on PennyLane's
# default.qubit (milliseconds of fixed cost per call), where batching has work to share.
MODELS = {"engine": {}, "pennylane": {"quantum_device": "default.qubit", "diff_method": "backprop"}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _load(url: str, concurrency: int, rows: list) -> dict:
    import httpx

    total = REQUESTS_PER_LEVEL[concurrency]
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + SECONDS_PER_LEVEL
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker(index: int) -> None:
            nonlocal issued, errors
            while issued < total and time.monotonic() < deadline:
                issued += 1
                row = rows[issued % len(rows)]
                started = time.perf_counter()
                response = await client.post(url, json={"instances": [row]})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        for _ in range(min(20, total)):  # warm-up
            await client.post(url, json={"instances": [rows[0]]})
        began = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    values = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "requests_per_s": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


def run_serve_benchmark(log: Callable[[str], None] = print) -> dict:
    from ray import serve

    import hqray.cluster  # noqa: F401  (loopback mode before ray starts)
    from hqray.cluster import connect
    from hqray.data import load_dataset
    from hqray.serve import ServeSettings, build_app
    from hqray.training import HybridClassifier, save_checkpoint

    info = machine_info()
    log(f"machine: {info}")
    data = load_dataset("iris", task="multiclass")
    names = np.asarray(data.class_names)[data.labels]
    checkpoints = {}
    for label, options in MODELS.items():
        model = HybridClassifier("g6", epochs=10, options=options or None).fit(
            data.features, names, list(data.feature_names))
        checkpoints[label] = str(save_checkpoint(model, tempfile.mkdtemp()))
    connect(num_cpus=2, include_dashboard=False)
    port = _free_port()
    batched = ServeSettings(port=port, replica_cpus=0.25, max_batch_size=32, batch_wait_timeout_s=0.002)
    unbatched = ServeSettings(port=port, replica_cpus=0.25, batching=False)
    serve.start(http_options=batched.http_options())
    for label, checkpoint in checkpoints.items():
        serve.run(build_app({"iris": checkpoint}, batched), name=f"{label}-batched", route_prefix=f"/{label}-batched")
        serve.run(build_app({"iris": checkpoint}, unbatched), name=f"{label}-unbatched",
                  route_prefix=f"/{label}-unbatched")
    from hqray.benchmarks.serve_noop import NoOp

    serve.run(NoOp.bind(), name="noop", route_prefix="/noop")
    rows = data.features.tolist()
    variants = ["noop"] + [f"{label}-{mode}" for label in MODELS for mode in ("batched", "unbatched")]
    results: dict = {"machine": info, "levels": {}}
    try:
        for concurrency in CONCURRENCY:
            level = {}
            for variant in variants:
                url = f"http://127.0.0.1:{port}/{variant}/v1/models/iris:predict"
                level[variant] = asyncio.run(_load(url, concurrency, rows))
                stats = level[variant]
                log(f"concurrency {concurrency:>2} {variant:>19}: {stats['requests_per_s']:7.1f} req/s, "
                    f"p50 {stats['p50_ms']:6.2f} ms, p99 {stats['p99_ms']:7.2f} ms, errors {stats['errors']}")
            results["levels"][str(concurrency)] = level
    finally:
        serve.shutdown()
        import ray

        ray.shutdown()
    one, many = results["levels"]["1"], results["levels"]["32"]
    for label in MODELS:
        results[f"{label}_p50_ratio_to_floor_at_1"] = one[f"{label}-batched"]["p50_ms"] / one["noop"]["p50_ms"]
        results[f"{label}_batching_speedup_at_32"] = (many[f"{label}-batched"]["requests_per_s"]
                                                      / many[f"{label}-unbatched"]["requests_per_s"])
        log(f"{label}: p50 at concurrency 1 = {results[f'{label}_p50_ratio_to_floor_at_1']:.2f}x the no-op floor; "
            f"batching at concurrency 32 = {results[f'{label}_batching_speedup_at_32']:.2f}x unbatched requests/s")
    return results
