"""Kernel Gram tiles on the QuantumPool: QuantumKernelSVC(executor="pool")."""

from __future__ import annotations

import json

import numpy as np

from hqray.cluster.layer import shared_pool
from hqray.cluster.pool import QuantumPool
from hqray.quantum.kernels import QuantumKernel, register_kernel_executor, tiles

__all__ = ["pool_gram"]


def pool_gram(kernel: QuantumKernel, left: np.ndarray, right: np.ndarray | None,
              pool: QuantumPool | None = None, tiers: tuple[str, ...] = ("gpu", "cpu")) -> np.ndarray:
    """The Gram matrix with every tile computed on pool workers (retries, fallback, no loss).

    A failed tile is recomputed elsewhere, never left as zeros; tiles that no tier can
    compute raise PoolError naming them.
    """
    pool = pool or shared_pool(tuple(tiers))
    symmetric = right is None
    n_columns = left.shape[0] if symmetric else right.shape[0]
    bounds = tiles(left.shape[0], n_columns, kernel.tile_rows, symmetric)
    settings = json.dumps({"kind": kernel.kind, "gamma": kernel.gamma, "shots": kernel.shots,
                           "seed": kernel.seed})
    blocks = pool.gram_tiles(settings, left, right, bounds)
    return kernel.assemble(left.shape[0], n_columns, zip(bounds, blocks, strict=True), symmetric)


register_kernel_executor("pool", lambda kernel, left, right, options:
                         pool_gram(kernel, left, right, tiers=options.get("tiers", ("gpu", "cpu"))))
