"""The no-op Serve deployment of `hqray bench serve`: the floor of the HTTP path.

Same proxy, FastAPI ingress, JSON parsing and response; no model. (No `from __future__
import annotations`: FastAPI must see real types on routes.)
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

noop_api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(noop_api)
class NoOp:
    @noop_api.post("/v1/models/{name}:predict")
    async def predict(self, name: str, request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"model": name, "predictions": ["x"] * len(body["instances"])})
