"""A quantum layer whose circuits run on the QuantumPool (generation g7)."""

from __future__ import annotations

import logging
import math
import threading
import time

import ray
import torch
from torch import nn

from hqray.cluster.config import PoolConfig
from hqray.cluster.pool import PoolError, QuantumPool
from hqray.cluster.resources import connect
from hqray.models import HybridConfig, register_quantum_backend
from hqray.quantum import CircuitSpec

__all__ = ["PoolQuantumLayer", "shared_pool", "close_shared_pools"]

logger = logging.getLogger(__name__)

_POOLS: dict[tuple[str, ...], QuantumPool] = {}
_POOLS_LOCK = threading.Lock()


def _free_tiers(config: PoolConfig, tiers: tuple[str, ...], free: dict[str, float]):
    """Tiers capped at the workers their free resources allow, and those that get any."""
    capped, order = dict(config.tiers), []
    for name in tiers:
        tier = config.tiers[name]
        slots = math.floor(free.get(tier.resource, 0.0) * tier.workers_per_unit + 1e-9)
        if tier.max_workers is not None:
            slots = min(slots, tier.max_workers)
        if slots >= 1:
            capped[name] = tier.model_copy(update={"max_workers": slots})
            order.append(name)
    return capped, order


def shared_pool(tiers: tuple[str, ...]) -> QuantumPool:
    """The process's pool over ``tiers`` (connecting to Ray and starting it on first use).

    Each tier gets the workers its resource has *free* now, not the cluster's total: inside
    a Ray Tune trial the trial itself (and its neighbours) hold some of the CPUs, and
    workers that cannot be placed would only time out.
    """
    with _POOLS_LOCK:
        if tiers not in _POOLS:
            connect()
            config = PoolConfig(fallback_order=list(tiers))
            # Resources held by work that is finishing (a trial being torn down) come back
            # within seconds: wait for them up to the pool's worker start timeout.
            deadline = time.monotonic() + config.worker_start_timeout_s
            while True:
                free = ray.available_resources()
                capped, order = _free_tiers(config, tiers, free)
                if order or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            if not order:
                raise PoolError(f"no free resources for the pool tiers {list(tiers)} (free: {free}); g7 needs "
                                "spare ones for its workers: in a sweep, lower max_concurrent_trials or "
                                "resources_per_trial.cpu")
            _POOLS[tiers] = QuantumPool(PoolConfig(tiers=capped, fallback_order=order))
        return _POOLS[tiers]


def close_shared_pools() -> None:
    """Shuts down every shared pool of this process."""
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.shutdown()
        _POOLS.clear()


class _PoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, weights, spec, pool):
        ctx.save_for_backward(inputs, weights)
        ctx.spec, ctx.pool = spec, pool
        outputs = pool.run(spec, inputs.detach().cpu().numpy(), weights.detach().cpu().numpy())
        return torch.from_numpy(outputs).to(device=inputs.device, dtype=inputs.dtype)

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, weights = ctx.saved_tensors
        result = ctx.pool.vjp(ctx.spec, inputs.detach().cpu().numpy(), weights.detach().cpu().numpy(),
                              grad_outputs.detach().cpu().numpy())
        grad_inputs = torch.from_numpy(result.grad_inputs).to(inputs)
        grad_weights = torch.from_numpy(result.grad_weights).to(weights)
        return grad_inputs, grad_weights, None, None


class PoolQuantumLayer(nn.Module):
    """Like :class:`hqray.quantum.QuantumLayer`, but every batch runs on a QuantumPool.

    Forward passes call ``pool.run``; backward passes call ``pool.vjp``, so training uses
    the pool's workers end to end. The pool is found by its tiers at call time, so the
    module pickles (and checkpoints) without actor handles.
    """

    def __init__(self, spec: CircuitSpec, tiers: tuple[str, ...], init_scale: float = 0.05,
                 pool: QuantumPool | None = None):
        super().__init__()
        self.spec = spec
        self.tiers = tuple(tiers)
        self.weights = nn.Parameter(torch.randn(spec.weight_shape) * init_scale)
        self._pool = pool

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        pool = self._pool or shared_pool(self.tiers)
        dtype = torch.float64 if self.spec.precision == "double" else torch.float32
        outputs = _PoolFunction.apply(inputs.to(dtype), self.weights.to(dtype), self.spec, pool)
        return outputs.to(inputs.dtype if inputs.dtype in (torch.float32, torch.float64) else torch.float32)


def _pool_backend(config: HybridConfig, spec: CircuitSpec) -> nn.Module:
    return PoolQuantumLayer(spec, tuple(config.pool_tiers))


register_quantum_backend("pool", _pool_backend)
