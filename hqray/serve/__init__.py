"""Ray Serve deployments of trained classifiers behind a validated, batched HTTP API.

**Example**::

    from hqray.serve import serve_checkpoints, ServeSettings
    serve_checkpoints({"iris": "results/train/checkpoint"}, ServeSettings(port=8000))
    # POST http://127.0.0.1:8000/v1/models/iris:predict {"instances": [[5.1, 3.5, 1.4, 0.2]]}
"""

from hqray.serve.app import API_KEY_HEADER, app_builder, build_app
from hqray.serve.client import HqrayClient
from hqray.serve.config import ServeSettings
from hqray.serve.runner import serve_checkpoints
from hqray.serve.schemas import RequestError, error_body, parse_instances

__all__ = [
    "API_KEY_HEADER",
    "HqrayClient",
    "RequestError",
    "ServeSettings",
    "app_builder",
    "build_app",
    "error_body",
    "parse_instances",
    "serve_checkpoints",
]
