"""Starting Serve on a (local or cluster) Ray and running the hqray application."""

from __future__ import annotations

from hqray.cluster import connect
from hqray.errors import ConfigError
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
            where the settings say).
    """
    from ray import serve

    build_app(checkpoints, settings, api_key)  # validates the binding before anything starts
    connect(address=address, include_dashboard=False)
    running = running_http_options()
    if running is not None and (running["host"], running["port"]) != (settings.host, settings.port):
        raise ConfigError(f"Serve already runs on this Ray with its proxy on {running['host']}:{running['port']}, "
                          f"not {settings.host}:{settings.port} as asked; serve there (--host/--port) or stop "
                          "that Serve first")
    serve.start(http_options=settings.http_options())
    running = running_http_options()
    application = build_app(checkpoints, settings, api_key, bound_host=running["host"] if running else None)
    return serve.run(application, name=app_name, route_prefix=route_prefix, blocking=False)
