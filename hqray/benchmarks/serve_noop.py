"""The no-op Serve deployments of `hqray bench serve`: the floors of the HTTP path.

Same proxy, FastAPI ingress, JSON parsing and response; no model. ``NoOp`` answers each
request on its own (the floor for latency); ``NoOpBatched`` passes requests through
``@serve.batch`` as the model app does: its rate over a model's unbatched rate is what
batching would give that model if its calls cost nothing (not a strict ceiling: a slower
model gathers larger batches, which spread the batching machinery's per-batch cost).
(No `from __future__ import annotations`: FastAPI must see real types on routes.)
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

noop_api = FastAPI()
noop_batched_api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(noop_api)
class NoOp:
    @noop_api.post("/v1/models/{name}:predict")
    async def predict(self, name: str, request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"model": name, "predictions": ["x"] * len(body["instances"])})


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(noop_batched_api)
class NoOpBatched:
    @noop_batched_api.post("/v1/models/{name}:predict")
    async def predict(self, name: str, request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"model": name, "predictions": await self._answer(len(body["instances"]))})

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _answer(self, row_counts: list[int]) -> list[list[str]]:
        return [["x"] * rows for rows in row_counts]
