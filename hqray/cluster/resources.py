"""Joining or starting Ray, and what the cluster offers each tier."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import ray

from hqray.cluster.config import PoolConfig
from hqray.cluster.loopback import (
    WORKER_SETUP_HOOK,
    enter_loopback_mode,
    exposed_listeners,
    in_loopback_mode,
    loopback_wanted,
)
from hqray.errors import ConfigError

__all__ = ["connect", "ClusterInfo", "describe_cluster", "planned_workers", "tier_actor_options", "TIERS",
           "DEFAULT_VIRTUAL_QPUS"]

logger = logging.getLogger("hqray.cluster")
DEFAULT_VIRTUAL_QPUS = 4


@dataclass
class ClusterInfo:
    """Resources of the connected cluster."""

    address: str
    started_locally: bool
    resources: dict[str, float]
    available: dict[str, float]
    nodes: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        keys = ("CPU", "GPU", "QPU")
        found = ", ".join(f"{k}={self.resources.get(k, 0):g}" for k in keys)
        where = "embedded local Ray" if self.started_locally else f"cluster at {self.address}"
        return f"{where}: {len(self.nodes)} node(s), {found}"


def describe_cluster(started_locally: bool = False) -> ClusterInfo:
    """The connected cluster's resources and alive nodes."""
    nodes = [{"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
              "resources": {k: v for k, v in n.get("Resources", {}).items() if k in ("CPU", "GPU", "QPU")}}
             for n in ray.nodes() if n.get("Alive")]
    context = ray.get_runtime_context()
    address = getattr(context, "gcs_address", None) or "local"
    return ClusterInfo(address=address, started_locally=started_locally,
                       resources=ray.cluster_resources(), available=ray.available_resources(), nodes=nodes)


def connect(address: str | None = None, num_qpus: float = DEFAULT_VIRTUAL_QPUS, num_cpus: int | None = None,
            num_gpus: int | None = None, include_dashboard: bool | None = None,
            node_ip_address: str = "127.0.0.1", metrics_export_port: int | None = None) -> ClusterInfo:
    """Joins a Ray cluster, or starts an embedded local one with virtual QPUs.

    Args:
        address: cluster address; default ``$RAY_ADDRESS``; with neither, a local Ray starts.
        num_qpus: virtual ``QPU`` units of the local Ray (ignored when joining a cluster,
            whose nodes declare their own: ``ray start --resources='{"QPU": 4}'``).
        num_cpus, num_gpus: limits of the local Ray (default: all of this machine's).
        include_dashboard: start the Ray dashboard with a local Ray.
        node_ip_address: address the local Ray binds to (loopback unless told otherwise).
        metrics_export_port: port of the local Ray's Prometheus endpoint
            (``http://<node_ip_address>:<port>/metrics``: the pool's ``hqray_pool_*``
            counters and latency histogram, with Ray's own metrics); default: Ray picks one.

    A local Ray whose node misses Ray's fixed 30 s startup deadline (a machine whose cores
    are busy) is started again, up to three times, with a warning.

    A Ray this starts (or joins on a loopback address) runs in Ray's single-machine mode,
    whatever was imported first, and is checked: if any of its processes listens beyond
    loopback, it is stopped and a ConfigError says so. ``HQRAY_RAY_LOOPBACK=0`` opts out.

    Returns:
        A :class:`ClusterInfo`; already connected sessions are described, not restarted.

    Raises:
        ConfigError: the local Ray listens beyond loopback, or a remote address is asked
            for by a process that already runs Ray's single-machine mode.

    Ray's token authentication stays as Ray configures it (on by default for local Ray
    since Ray 2.59; set ``RAY_AUTH_MODE=token`` on clusters).
    """
    if ray.is_initialized():
        if loopback_wanted():
            _refuse_exposed(shutdown=False)  # a Ray this process started, with ray.init, on every interface
        return describe_cluster()
    address = address or os.environ.get("RAY_ADDRESS")
    if loopback_wanted() and (not address or _is_loopback(address)):
        enter_loopback_mode()
    elif address and in_loopback_mode():
        raise ConfigError(
            f"cannot join the cluster at {address!r}: this process runs Ray's single-machine mode (it started a "
            "local Ray before, or RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set) and would advertise 127.0.0.1 to "
            "other nodes; join from a new process"
        )
    if address:
        ray.init(address=address, namespace="hqray", log_to_driver=True)
        info = describe_cluster(started_locally=False)
    else:
        setup = {"runtime_env": {"worker_process_setup_hook": WORKER_SETUP_HOOK}} if in_loopback_mode() else {}
        # address="local": a new embedded Ray, even when a `ray start` cluster on this machine
        # is what /tmp/ray/ray_current_cluster names (ray.init() would silently join that one).
        _start_local(num_cpus=num_cpus, num_gpus=num_gpus, resources={"QPU": float(num_qpus)},
                     namespace="hqray", include_dashboard=include_dashboard, _node_ip_address=node_ip_address,
                     **({"_metrics_export_port": metrics_export_port} if metrics_export_port else {}), **setup)
        info = describe_cluster(started_locally=True)
    if loopback_wanted():
        _refuse_exposed(shutdown=True)
    logger.info(info.summary())
    return info


# Ray gives its raylet a fixed 30 s to register with the GCS; on a machine whose cores are
# busy (a laptop mid-build, a CI host running other tests) the first start can miss that.
LOCAL_START_ATTEMPTS = 3


def _start_local(**init_options) -> None:
    """``ray.init(address="local")``, started again (up to LOCAL_START_ATTEMPTS times) when
    Ray's node misses its startup deadline on a busy machine; other errors are raised at once."""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address="local", **init_options)
            return
        except Exception as error:  # noqa: BLE001 - Ray raises a bare Exception for this timeout
            if "timed out during startup" not in str(error) or attempt == LOCAL_START_ATTEMPTS:
                raise
            logger.warning("the local Ray did not start in time (attempt %d of %d, the machine is busy): "
                           "starting it again", attempt, LOCAL_START_ATTEMPTS)
            ray.shutdown()


def _refuse_exposed(shutdown: bool) -> None:
    """Raises when the Ray this process started listens beyond loopback (stopping it if hqray started it)."""
    exposed = exposed_listeners()
    if not exposed:
        return
    if shutdown:
        ray.shutdown()
    raise ConfigError(
        f"the local Ray listens beyond loopback ({', '.join(exposed[:4])}{', ...' if len(exposed) > 4 else ''}); "
        "start it with hqray.cluster.connect() instead of ray.init(), or set HQRAY_RAY_LOOPBACK=0 to accept "
        "a Ray reachable from other machines"
    )


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1", "auto") or host.startswith("127.")


TIERS = ("cpu", "gpu", "qpu")


def tier_actor_options(tier: str, cpus: float = 1.0) -> dict:
    """Ray resources of one actor that runs a model on ``tier`` (a Serve replica, a scoring actor).

    >>> tier_actor_options("qpu")
    {'num_cpus': 0, 'resources': {'QPU': 1}}
    """
    if tier not in TIERS:
        raise ConfigError(f"tier {tier!r} is not one of {list(TIERS)}")
    return {"cpu": {"num_cpus": cpus}, "gpu": {"num_cpus": 0, "num_gpus": 1},
            "qpu": {"num_cpus": 0, "resources": {"QPU": 1}}}[tier]


def planned_workers(config: PoolConfig, resources: dict[str, float]) -> dict[str, tuple[int, str | None]]:
    """Workers each tier gets on these resources, with a notice for tiers that get none."""
    plan = {}
    for name, tier in config.active_tiers().items():
        units = resources.get(tier.resource, 0.0)
        slots = math.floor(units * tier.workers_per_unit + 1e-9)
        if tier.max_workers is not None:
            slots = min(slots, tier.max_workers)
        notice = None if slots >= 1 else (
            f"tier {name!r} skipped: the cluster has {units:g} {tier.resource}, "
            f"enough for no worker at {tier.workers_per_unit:g} per unit")
        plan[name] = (slots, notice)
    return plan
