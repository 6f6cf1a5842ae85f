"""ServeSettings: binding, batching, limits, replicas and resources of the HTTP service."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from hqray.errors import ConfigError
from hqray.validated import ValidatedModel

__all__ = ["ServeSettings", "PROXY_TIMEOUT_MARGIN_S"]

# The HTTP proxy's own timeout is the Gateway's plus this margin: the Gateway answers a slow
# prediction first, in the error schema; the proxy's cut-off only catches requests that never
# reach a replica (queued). A client can raise the proxy's timeout with Serve's
# ``x-request-timeout-seconds`` header, but not the Gateway's.
PROXY_TIMEOUT_MARGIN_S = 1.0


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeSettings(ValidatedModel):
    """Settings of ``hqray serve`` (all validated; unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="bind address; non-loopback needs an API key")
    port: int = Field(8000, ge=1, le=65535)
    batching: bool = True
    max_batch_size: int = Field(32, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(
        0.0, ge=0.0, le=10.0,
        description="how long a batch waits for more requests; 0: it takes the requests that queued "
                    "while the previous batch ran (no added latency when idle)")
    max_rows_per_request: int = Field(1024, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=64)
    replicas: int = Field(1, ge=1, le=256)
    autoscaling: bool = False
    max_replicas: int = Field(4, ge=1, le=256)
    max_ongoing_requests: int = Field(64, ge=1)
    max_queued_requests: int = Field(256, ge=1)
    request_timeout_s: float = Field(
        30.0, gt=0.0, description="a prediction not answered within this many seconds gets a 504 "
                                  "(the proxy cuts off queued requests a second later)")
    tier: Literal["cpu", "gpu", "qpu"] = Field("cpu", description="resource each model replica requests")
    replica_cpus: float = Field(1.0, ge=0.0, description="CPUs each model replica requests")
    access_log: bool = Field(True, description="log a line per request in each replica (Serve's access log)")
    trust_code: bool = Field(False, description="load checkpoints whose circuit lives in a user's module "
                                                "(imports, i.e. runs, that module)")

    @model_validator(mode="after")
    def _check_replicas(self) -> ServeSettings:
        if self.autoscaling and self.max_replicas < self.replicas:
            raise ConfigError(f"max_replicas ({self.max_replicas}) must be at least replicas ({self.replicas}), "
                              "the autoscaling minimum")
        return self

    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def check_binding(self, api_key: str | None, bound_host: str | None = None) -> None:
        """Refuses a bind beyond loopback without an API key.

        ``bound_host`` is what a running Serve's proxy really binds (an existing Serve keeps
        its own HTTP options; ``serve deploy`` configs set them apart from these settings);
        it wins over ``host``.

        >>> ServeSettings().check_binding(None, bound_host="0.0.0.0")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hqray.errors.ConfigError: the HTTP proxy binds '0.0.0.0', beyond this machine: set an API key ...
        """
        host = bound_host if bound_host is not None else self.host
        if not is_loopback_host(host) and not api_key:
            raise ConfigError(f"the HTTP proxy binds {host!r}, beyond this machine: "
                              "set an API key (--api-key-env VAR) or bind 127.0.0.1")

    def deployment_options(self) -> dict:
        from hqray.cluster.resources import tier_actor_options  # Ray: only when deploying

        options = {"ray_actor_options": tier_actor_options(self.tier, self.replica_cpus),
                   "max_ongoing_requests": self.max_ongoing_requests, "max_queued_requests": self.max_queued_requests,
                   "logging_config": {"enable_access_log": self.access_log}}
        if self.autoscaling:
            options["autoscaling_config"] = {"min_replicas": self.replicas, "max_replicas": self.max_replicas,
                                             "target_ongoing_requests": max(1, self.max_batch_size // 2)}
        else:
            options["num_replicas"] = self.replicas
        return options

    def http_options(self) -> dict:
        return {"host": self.host, "port": self.port,
                "request_timeout_s": self.request_timeout_s + PROXY_TIMEOUT_MARGIN_S}
