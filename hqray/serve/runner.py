"""Starting Serve on a (local or cluster) Ray and running the hqray application."""

from __future__ import annotations

from hqray.cluster import connect
from hqray.serve.app import build_app
from hqray.serve.config import ServeSettings

__all__ = ["serve_checkpoints"]


def serve_checkpoints(checkpoints: dict[str, str], settings: ServeSettings, api_key: str | None = None,
                      address: str | None = None, route_prefix: str = "/", app_name: str = "hqray"):
    """Starts Serve (binding ``settings.host:port``) and deploys the models; returns the handle."""
    from ray import serve

    application = build_app(checkpoints, settings, api_key)  # validates binding before starting anything
    connect(address=address, include_dashboard=False)
    serve.start(http_options=settings.http_options())
    return serve.run(application, name=app_name, route_prefix=route_prefix, blocking=False)
