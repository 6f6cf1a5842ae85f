"""Starting Serve on a (local or cluster) Ray and running the hqray application."""

from __future__ import annotations

import os

from hqray.cluster import connect
from hqray.errors import ConfigError
from hqray.ports import port_in_use
from hqray.serve.app import build_app, running_http_options
from hqray.serve.config import ServeSettings

__all__ = ["serve_checkpoints"]


def serve_checkpoints(checkpoints: dict[str, str], settings: ServeSettings, api_key: str | None = None,
                      address: str | None = None, route_prefix: str = "/", app_name: str = "hqray"):
    """Starts Serve (binding ``settings.host:port``) and deploys the models; returns the handle.

    Raises:
        ConfigError: a bind beyond loopback without an API key, checked before anything
            starts and again against the proxy Serve really runs; or a Serve already running
            on this Ray with other HTTP options (it keeps its own: the models would not be
            where the settings say); or, on a Ray started here, a port another process holds.
    """
    import ray
    from ray import serve

    build_app(checkpoints, settings, api_key)  # validates the binding before anything starts
    if address is None and not os.environ.get("RAY_ADDRESS") and not ray.is_initialized():
        _check_port_free(settings)  # a Ray will start here: fail in a second, not after its start-up
    cluster = connect(address=address, include_dashboard=False)
    running = running_http_options()
    if running is not None and (running["host"], running["port"]) != (settings.host, settings.port):
        raise ConfigError(f"Serve already runs on this Ray with its proxy on {running['host']}:{running['port']}, "
                          f"not {settings.host}:{settings.port} as asked; serve there (--host/--port) or stop "
                          "that Serve first")
    if running is None and cluster.started_locally:
        _check_port_free(settings)  # again: one of the Ray processes just started may have taken it
    serve.start(http_options=settings.http_options())
    running = running_http_options()
    application = build_app(checkpoints, settings, api_key, bound_host=running["host"] if running else None)
    return serve.run(application, name=app_name, route_prefix=route_prefix, blocking=False)


def _check_port_free(settings: ServeSettings) -> None:
    """Refuses a port something else listens on: Serve's proxy would fail to bind it and keep
    retrying, while requests to the port reach the other server."""
    host = "127.0.0.1" if settings.host == "localhost" else settings.host
    if port_in_use(settings.port, host):
        raise ConfigError(f"port {settings.port} on {settings.host} is already in use by another process; "
                          "serve on another port (--port) or stop that process")
