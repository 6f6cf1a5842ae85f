"""Ray Serve deployments of trained classifiers behind a validated, batched HTTP API.

**Example**::

    from hqray.serve import serve_checkpoints, ServeSettings
    serve_checkpoints({"iris": "results/train/checkpoint"}, ServeSettings(port=8000))
    # POST http://127.0.0.1:8000/v1/models/iris:predict {"instances": [[5.1, 3.5, 1.4, 0.2]]}
"""

from hqray._lazy import lazy_exports

# Everything here needs Ray Serve: it loads on first use.
__getattr__, __dir__ = lazy_exports(__name__, {
    "hqray.serve.app": ["API_KEY_HEADER", "api_key_from_env", "app_builder", "build_app", "running_http_options"],
    "hqray.serve.batch": ["PredictionReport", "batch_predict", "predict_table"],
    "hqray.serve.client": ["HqrayClient"],
    "hqray.serve.config": ["ServeSettings"],
    "hqray.serve.runner": ["serve_checkpoints"],
    "hqray.serve.schemas": ["RequestError", "error_body", "parse_instances"],
})

__all__ = [
    "API_KEY_HEADER",
    "HqrayClient",
    "PredictionReport",
    "api_key_from_env",
    "RequestError",
    "ServeSettings",
    "app_builder",
    "batch_predict",
    "build_app",
    "error_body",
    "parse_instances",
    "predict_table",
    "running_http_options",
    "serve_checkpoints",
]
