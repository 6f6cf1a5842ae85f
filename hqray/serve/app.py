"""Ray Serve application: a FastAPI ingress that holds the models and batches requests.

One deployment (``Gateway``) validates, authenticates and predicts: one hop from the
HTTP proxy. Routes::

    POST /v1/models/{name}:predict   {"instances": [[...], ...]} -> classes + probabilities
    GET  /v1/models                  metadata of every model, and this replica's traffic
    GET  /healthz                    200 when every model is loaded

Requests are validated (content type, body size, JSON, schema, finite numbers, feature
count and names, rows per request) before any circuit runs; a prediction that takes longer
than ``request_timeout_s`` is a 504; every error uses one schema.
"""

# No `from __future__ import annotations` here: FastAPI must see real types on routes.

import asyncio
import hashlib
import hmac
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from hqray.errors import ConfigError
from hqray.serve.config import ServeSettings
from hqray.serve.schemas import RequestError, decode_json, error_body, parse_instances
from hqray.training import load_model, read_metadata
from hqray.training.checkpoint import checkpoint_config

__all__ = ["build_app", "app_builder", "Gateway", "API_KEY_HEADER", "api_key_from_env", "running_http_options"]

API_KEY_HEADER = "x-api-key"


def _model_summary(name: str, checkpoint: str, trust_code: bool) -> dict:
    metadata = read_metadata(checkpoint)
    checkpoint_config(checkpoint, metadata, trust_code)  # refused here, not in a replica that keeps restarting
    return {"name": name, "version": metadata.get("created", "unknown"), "generation": metadata["generation"],
            "feature_names": metadata["feature_names"], "classes": [str(c) for c in metadata["classes"]],
            "metrics": metadata.get("metrics", {}), "circuit_spec": metadata.get("circuit_spec"),
            "versions": metadata.get("versions", {})}


# No /docs, /redoc or /openapi.json: they would answer without the API key. The schema is in the README.
api = FastAPI(title="hqray", description="Hybrid quantum-classical classifiers", version="1",
              docs_url=None, redoc_url=None, openapi_url=None)

# Routing and framework errors answer in the one error schema too (FastAPI's own are {"detail": ...}).
ROUTING_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = ROUTING_ERROR_CODES.get(error.status_code, "http_error")
    if error.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif error.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}; allowed: {_allowed_methods(request)}"
    else:
        message = str(error.detail)
    return JSONResponse(error_body(code, message), status_code=error.status_code, headers=error.headers)


ROUTE_METHODS: dict[str, set[str]] = {}


def route(method: str, path: str):
    """``@api.get(path)`` / ``@api.post(path)``, recording the route for 405 answers."""
    ROUTE_METHODS.setdefault(path, set()).add(method)
    return getattr(api, method.lower())(path)


def _allowed_methods(request: Request) -> str:
    """The methods of the routes whose path matches the request's (FastAPI's 405 carries no Allow header here)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root):] if root and path.startswith(root) else path
    methods = {method for template, allowed in ROUTE_METHODS.items() if compile_path(template)[0].match(path)
               for method in allowed}
    return ", ".join(sorted(methods)) or "none"


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse(error_body("invalid_request", "request does not match the route", error.errors()),
                        status_code=422)


@serve.deployment
@serve.ingress(api)
class Gateway:
    """Validation, authentication and batched prediction, in one hop.

    Every replica loads every model once; concurrent requests for a model are batched
    with ``@serve.batch`` and share one circuit execution. Model calls run in a thread
    pool sized to the replica's CPUs, off the event loop, so ``/healthz``, validation
    errors and the 504 timeout answer while a model computes for seconds.
    """

    def __init__(self, checkpoints: dict, summaries: dict, settings: dict, api_key_sha256: str | None):
        self.settings = ServeSettings(**settings)
        trust = self.settings.trust_code
        self.models = {name: load_model(path, trust_code=trust, scoring=True) for name, path in checkpoints.items()}
        self.summaries = summaries
        self.api_key_sha256 = api_key_sha256
        # This replica's traffic per model: requests, rows and model calls (a batch is one call).
        self.served = {name: {"requests": 0, "rows": 0, "model_calls": 0} for name in self.models}
        self._predict_batched.set_max_batch_size(self.settings.max_batch_size)
        self._predict_batched.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)
        # One thread per CPU the replica holds (at least one): model calls never run on the event loop.
        self._model_threads = ThreadPoolExecutor(max_workers=max(1, math.ceil(self.settings.replica_cpus)),
                                                 thread_name_prefix="hqray-model")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)  # both set from ServeSettings
    async def _predict_batched(self, requests: list) -> list:
        results: list = [None] * len(requests)
        for name in {name for name, _ in requests}:
            indices = [i for i, (n, _) in enumerate(requests) if n == name]
            blocks = [requests[i][1] for i in indices]
            probabilities = await self._call_model_off_loop(name, np.concatenate(blocks))
            parts = np.split(probabilities, np.cumsum([len(b) for b in blocks])[:-1])
            for index, part in zip(indices, parts, strict=True):
                results[index] = part
        return results

    async def _call_model_off_loop(self, name: str, rows: np.ndarray) -> np.ndarray:
        self.served[name]["model_calls"] += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_threads, self.models[name].predict_proba, rows)

    async def _predict(self, name: str, rows: np.ndarray) -> np.ndarray:
        self.served[name]["requests"] += 1
        self.served[name]["rows"] += len(rows)
        if self.settings.batching:
            return await self._predict_batched((name, rows))
        return await self._call_model_off_loop(name, rows)

    def replica_info(self) -> dict:
        """Which actor and process serve this replica (operations, chaos tests)."""
        import os

        import ray

        context = ray.get_runtime_context()
        return {"actor_name": context.get_actor_name(), "pid": os.getpid(), "node_id": context.get_node_id()}

    def _authorize(self, request: Request) -> None:
        if self.api_key_sha256 is None:
            return
        provided = request.headers.get(API_KEY_HEADER, "")
        digest = hashlib.sha256(provided.encode()).hexdigest()
        if not hmac.compare_digest(digest, self.api_key_sha256):
            raise RequestError(401, "unauthorized", f"missing or wrong API key (header {API_KEY_HEADER!r})")

    async def _read_body(self, request: Request) -> bytes:
        """The body, read in chunks and refused (413) as soon as it passes the limit, chunked or not."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, "body_too_large", f"body of {declared} bytes exceeds {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, "body_too_large", f"body of more than {limit} bytes (read {size} so far) "
                                                          f"exceeds {limit}")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _error(error: RequestError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message, error.details), status_code=error.status)

    @route("GET", "/healthz")
    async def health(self) -> JSONResponse:
        # Models load in the constructor: a replica that answers has all of them.
        return JSONResponse({"status": "ok", "models": sorted(self.models)})

    @route("GET", "/v1/models")
    async def list_models(self, request: Request) -> JSONResponse:
        try:
            self._authorize(request)
        except RequestError as error:
            return self._error(error)
        return JSONResponse({"models": [{**summary, "served_by_this_replica": self.served[name]}
                                        for name, summary in self.summaries.items()]})

    @route("POST", "/v1/models/{name}:predict")
    async def predict(self, name: str, request: Request) -> JSONResponse:
        try:
            self._authorize(request)
            if name not in self.models:
                raise RequestError(404, "unknown_model",
                                   f"model {name!r} is not served; models are {sorted(self.models)}")
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise RequestError(415, "unsupported_media_type",
                                   f"content type must be application/json, got {content_type or 'none'!r}")
            payload = decode_json(await self._read_body(request))
            summary = self.summaries[name]
            rows = parse_instances(payload, summary["feature_names"], self.settings.max_rows_per_request)
        except RequestError as error:
            return self._error(error)
        try:
            # Enforced here, not only by the proxy: a client can raise the proxy's timeout with
            # Serve's x-request-timeout-seconds header, and this answer keeps the error schema.
            # A request cancelled while queued for a batch is dropped from it by @serve.batch.
            probabilities = await asyncio.wait_for(self._predict(name, rows), self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            return self._error(RequestError(504, "timeout", f"no prediction within request_timeout_s "
                                                            f"({self.settings.request_timeout_s:g} s)"))
        # The model's own rule: argmax, or the decision threshold tuned in training (g9).
        predictions = self.models[name].predict_from_proba(probabilities)
        return JSONResponse({
            "model": name, "version": summary["version"], "classes": summary["classes"],
            "predictions": [str(label) for label in predictions],
            "probabilities": probabilities.round(8).tolist(),
        })


def build_app(checkpoints: dict[str, str], settings: ServeSettings, api_key: str | None = None,
              bound_host: str | None = None):
    """The Serve application for ``{name: checkpoint_dir}``.

    Args:
        checkpoints: model name -> checkpoint directory.
        settings: the service's settings.
        api_key: required when the HTTP proxy binds beyond loopback.
        bound_host: the host a running Serve's proxy really binds (see
            :func:`running_http_options`), which wins over ``settings.host``.

    Raises:
        ConfigError: non-loopback bind without an API key, bad checkpoint paths.
    """
    settings.check_binding(api_key, bound_host)
    paths = {name: str(Path(checkpoint).resolve()) for name, checkpoint in checkpoints.items()}
    summaries = {name: _model_summary(name, path, settings.trust_code)  # fails fast on bad checkpoints
                 for name, path in paths.items()}
    digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
    return Gateway.options(**settings.deployment_options()).bind(paths, summaries, settings.model_dump(), digest)


def app_builder(args: dict[str, Any]):
    """Entry point for ``serve deploy`` configs (see clusters/serve.yaml).

    ``args``: ``{"checkpoints": {name: path}, "settings": {...}, "api_key_env": "VAR"}``.
    """
    settings = ServeSettings(**args.get("settings", {}))
    running = running_http_options()  # `serve deploy` runs this beside a live Serve: its real bind counts
    return build_app(dict(args["checkpoints"]), settings, api_key_from_env(args.get("api_key_env")),
                     bound_host=running["host"] if running else None)


def api_key_from_env(variable: str | None) -> str | None:
    """The API key held by the environment variable ``variable`` (``None`` when no variable is named).

    Raises:
        ConfigError: the variable is named but unset or empty (the key would silently be off).
    """
    if not variable:
        return None
    key = os.environ.get(variable)
    if not key:
        raise ConfigError(f"api_key_env {variable}: the variable is not set or empty; set it to the API key "
                          "(on every node), or name no variable to serve on loopback without a key")
    return key


def running_http_options() -> dict | None:
    """``{"host", "port"}`` of the HTTP proxy of the Serve running on this Ray, or ``None``."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    if not ray.is_initialized():
        return None
    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:  # no Serve on this cluster yet
        return None
    options = ray.get(controller.get_http_config.remote())
    return {"host": options.host, "port": options.port}
