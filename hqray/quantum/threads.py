"""One process, a fixed number of compute threads: torch's and every BLAS / OpenMP pool's."""

from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "use_threads"]

# Read by OpenMP, OpenBLAS and MKL when they load: they cover libraries not loaded yet.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def use_threads(threads: int) -> dict[str, int]:
    """Makes this process compute on ``threads`` threads: torch, NumPy's BLAS, OpenMP.

    ``torch.set_num_threads`` alone leaves NumPy's OpenBLAS (and SciPy's) with a thread
    per core, and their idle threads spin before they sleep. In a Ray actor holding one
    CPU, the NumPy BLAS calls of each block's preprocessing kept a second core busy for no gain
    (measured ad hoc: a scoring loop of 2M rows used 4.98 CPU-s in 2.60 s of wall time,
    2.27 CPU-s in 2.27 s once capped), so a second actor on a 2-core machine had no core
    of its own. Pools already loaded are capped through ``threadpoolctl``; the environment
    variables cap those that load later. Meant for a process that hqray owns (a Ray actor),
    as the setting lasts for the process.

    Args:
        threads: the number of threads (at least 1).

    Returns:
        Each loaded pool's library file and its thread count after the call.

    Example::

        from hqray.quantum.threads import use_threads

        use_threads(1)  # at the start of an actor that holds 1 CPU
    """
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = max(1, int(threads))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}
