"""Ports on this machine: one that is free and that Ray will not take, and whether one is taken.

Ray's own processes (agents, metrics, the GCS of a second Ray) take ports by binding port 0,
which draws from the kernel's ephemeral range (Linux: 32768-60999 by default), and its workers
take 10002-19999. A port found free by the same bind-to-0 trick can be handed to one of those
processes before the server it was meant for binds it: in CI, the port given to `hqray serve`
answered ``401`` from a token-authenticated Ray agent. ``free_port`` therefore draws from the
ports between Ray's worker range and the ephemeral range.
"""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

__all__ = ["free_port", "port_in_use"]

_RAY_WORKER_PORTS_END = 19999
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _quiet_range() -> tuple[int, int] | None:
    """Ports no bind-to-0 and no Ray worker takes on this machine, or ``None`` if unknown."""
    try:
        ephemeral_low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    low, high = _RAY_WORKER_PORTS_END + 1, ephemeral_low - 1
    return (low, high) if high - low >= 1000 else None


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something on this machine already listens on ``host:port``.

    Binds as servers do (``SO_REUSEADDR``), so a port left in ``TIME_WAIT`` counts as free.

    >>> import socket
    >>> with socket.socket() as server:
    ...     server.bind(("127.0.0.1", 0)); server.listen()
    ...     port_in_use(server.getsockname()[1])
    True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, drawn from outside the ranges Ray's processes take.

    >>> 1 <= free_port() <= 65535
    True
    """
    quiet = _quiet_range()
    if quiet is not None:
        draw = random.Random()  # not the global generator: tests seed it
        for _ in range(200):
            port = draw.randint(*quiet)
            if not port_in_use(port, host):
                return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
