"""Keeping a Ray that hqray starts on loopback, whatever was imported first.

Ray binds its servers (GCS, raylet, workers, agents) to every interface unless it runs
in its single-machine mode, which it reads from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
when ``ray`` is first imported. Setting only the variable therefore depends on import
order (a script that imports ray before hqray got a Ray listening on ``0.0.0.0``).
:func:`enter_loopback_mode` sets both the variable, which every process Ray starts
inherits, and the value this process already read; :func:`exposed_listeners` then checks
the sockets Ray really opened, so a Ray that would listen beyond loopback is refused, not
trusted. ``HQRAY_RAY_LOOPBACK=0`` leaves Ray's binding alone.
"""

from __future__ import annotations

import ipaddress
import os

import psutil

__all__ = ["LOOPBACK_OPT_OUT", "enter_loopback_mode", "in_loopback_mode", "loopback_wanted",
           "exposed_listeners", "WORKER_SETUP_HOOK", "keep_grpc_servers_on_loopback"]

LOOPBACK_OPT_OUT = "HQRAY_RAY_LOOPBACK"
RAY_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's own servers: a process with these children started its Ray (rather than joining one).
RAY_SERVER_PROCESSES = ("gcs_server", "raylet")


def loopback_wanted() -> bool:
    """False only when the user opted out with ``HQRAY_RAY_LOOPBACK=0``."""
    return os.environ.get(LOOPBACK_OPT_OUT, "1") != "0"


def enter_loopback_mode() -> None:
    """Ray's single-machine mode for this process and every process its Ray starts."""
    from ray._private import ray_constants

    os.environ[RAY_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # read on each use; the import-time copy was the only one


# Run in every worker process of a Ray hqray starts on loopback (ray.init's runtime_env).
WORKER_SETUP_HOOK = "hqray.cluster.loopback.keep_grpc_servers_on_loopback"


def keep_grpc_servers_on_loopback() -> None:
    """Binds gRPC servers that Ray's Python code starts in a worker to 127.0.0.1, not ``[::]``.

    Ray Serve 2.60 replicas start an inter-deployment gRPC server on ``[::]:0`` whatever
    the node's address (``ray/serve/_private/replica.py``); in single-machine mode every
    peer reaches it at 127.0.0.1, so loopback is all it needs. Runs as Ray's
    ``worker_process_setup_hook``, before any replica module imports the function.
    """
    from ray._common import tls_utils

    original = tls_utils.add_port_to_grpc_server
    if getattr(original, "hqray_loopback", False):
        return

    def add_port_on_loopback(server, address: str):
        host, _, port = address.rpartition(":")
        if host in ("[::]", "0.0.0.0", ""):
            address = f"127.0.0.1:{port}"
        return original(server, address)

    add_port_on_loopback.hqray_loopback = True
    tls_utils.add_port_to_grpc_server = add_port_on_loopback


def in_loopback_mode() -> bool:
    """Whether this process runs Ray's single-machine mode (it cannot then join a remote cluster)."""
    from ray._private import ray_constants

    return not ray_constants.ENABLE_RAY_CLUSTER


def _is_loopback_ip(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def exposed_listeners() -> list[str]:
    """Listening sockets beyond loopback of the Ray this process started, as ``"name pid ip:port"``.

    Empty when this process started no Ray (it joined a cluster, whose servers are not its own).
    """
    me = psutil.Process()
    children = me.children(recursive=True)
    names = {}
    for process in children:
        try:
            names[process.pid] = process.name()
        except psutil.Error:
            continue
    if not any(name in RAY_SERVER_PROCESSES for name in names.values()):
        return []
    exposed = []
    for process in (me, *children):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:  # exited meanwhile
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN and not _is_loopback_ip(connection.laddr.ip):
                name = names.get(process.pid, "driver")
                exposed.append(f"{name} {process.pid} {connection.laddr.ip}:{connection.laddr.port}")
    return sorted(exposed)
