"""CircuitWorker: the Ray actor that runs circuit shards on one unit of a tier's resource."""

from __future__ import annotations

import json
import os
import random
import time
from functools import lru_cache

import numpy as np
import ray
import torch

from hqray.cluster.config import TierConfig
from hqray.cluster.transport import SharedLayout, attach
from hqray.quantum import CircuitSpec, execute
from hqray.quantum.kernels import gram_tile, sample_shots
from hqray.quantum.memory import retain_heap_memory
from hqray.quantum.threads import use_threads

__all__ = ["CircuitWorker"]


@lru_cache(maxsize=64)
class QpuJobError(RuntimeError):
    """An emulated QPU job failed (transiently, or over a limit): the pool retries the shard."""


def _compiled(spec_json: str, tier_json: str) -> CircuitSpec:
    """The tier's version of a spec, parsed once per worker (specs travel as JSON)."""
    tier = TierConfig.model_validate_json(tier_json)
    return tier.worker_spec(CircuitSpec.model_validate_json(spec_json))


@ray.remote(max_restarts=0, max_task_retries=0)
class CircuitWorker:
    """Executes shards of a batch: forward passes and vector-Jacobian products.

    One actor per resource unit (or fraction, ``workers_per_unit``); the pool places them
    with a placement group so a tier's workers spread over the nodes holding its resource.
    Inputs arrive as one array per job plus a row range, so a job's data is stored once,
    not once per shard: an object-store array, or for a worker on the pool's own node a
    shared-memory segment the worker also writes its outputs into
    (:mod:`hqray.cluster.transport`). The worker keeps the memory one shard frees for the
    next (:func:`~hqray.quantum.memory.retain_heap_memory`): shards repeat the same shapes.
    """

    def __init__(self, tier_name: str, tier_json: str, threads: int):
        self.tier_name = tier_name
        self.tier_json = tier_json
        self.threads = use_threads(threads)
        self.heap_retained = retain_heap_memory()
        self._injected_delays: list[float] = []
        self._emulation = TierConfig.model_validate_json(tier_json).emulation
        self._failures = random.Random(self._emulation.seed if self._emulation else None)

    def info(self) -> dict:
        context = ray.get_runtime_context()
        return {"tier": self.tier_name, "node_id": context.get_node_id(), "pid": os.getpid(),
                "resources": context.get_assigned_resources(), "threads": torch.get_num_threads(),
                "thread_pools": self.threads, "heap_retained": self.heap_retained}

    def inject_delay(self, seconds: float, calls: int = 1) -> None:
        """Chaos testing: the next ``calls`` shards sleep ``seconds`` first (a hung worker)."""
        self._injected_delays += [seconds] * calls

    def _pause_if_injected(self) -> None:
        if self._injected_delays:
            time.sleep(self._injected_delays.pop(0))

    def _run_as_qpu_job(self, circuits: int) -> None:
        """An emulated QPU's job: refused beyond its circuit limit, waits its latency (before
        the compute the pool measures), and fails transiently at its failure rate."""
        emulation = self._emulation
        if emulation is None:
            return
        if circuits > emulation.max_circuits_per_job:
            raise QpuJobError(f"a job of {circuits} circuits exceeds the device's limit of "
                              f"{emulation.max_circuits_per_job}")
        time.sleep(emulation.job_latency_s)
        if self._failures.random() < emulation.failure_rate:
            raise QpuJobError(f"transient QPU job failure (emulated rate {emulation.failure_rate:g})")

    def forward(self, spec_json: str, inputs: np.ndarray | SharedLayout, start: int, stop: int,
                weights: np.ndarray, write_shared: bool = False) -> tuple[np.ndarray | None, float]:
        """Outputs of rows ``start:stop`` and the seconds spent computing them.

        ``inputs`` is the job's array, or a :class:`SharedLayout` on the pool's node; with
        ``write_shared`` the outputs go into the layout's ``outputs`` and None is returned.
        """
        self._pause_if_injected()
        self._run_as_qpu_job(stop - start)
        began = time.perf_counter()
        spec = _compiled(spec_json, self.tier_json)
        shared = attach(inputs) if isinstance(inputs, SharedLayout) else None
        with torch.no_grad():
            outputs = execute(spec, _rows(shared["inputs"] if shared else inputs, start, stop),
                              torch.from_numpy(np.array(weights)))
        if write_shared:
            shared["outputs"][start:stop] = outputs.numpy()
            return None, time.perf_counter() - began
        return outputs.numpy(), time.perf_counter() - began

    def gram_tiles(self, kernel_json: str, left: np.ndarray, right: np.ndarray, bounds: np.ndarray,
                   start: int, stop: int) -> tuple[list[np.ndarray], float]:
        """Kernel tiles ``bounds[start:stop]``; a tier with shots returns finite-shot estimates."""
        self._pause_if_injected()
        began = time.perf_counter()
        settings = json.loads(kernel_json)
        tier = TierConfig.model_validate_json(self.tier_json)
        shots = tier.shots or settings.get("shots")
        blocks = []
        for index in range(start, stop):
            r0, r1, c0, c1 = (int(v) for v in bounds[index])
            block = gram_tile(left[r0:r1], right[c0:c1], settings["kind"], settings["gamma"])
            if shots:
                block = sample_shots(block, int(shots), int(settings.get("seed", 0)) + index)
            blocks.append(block)
        return blocks, time.perf_counter() - began

    def vjp(self, spec_json: str, inputs: np.ndarray | SharedLayout, start: int, stop: int, weights: np.ndarray,
            grad_outputs: np.ndarray | None, write_shared: bool = False
            ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, float]:
        """Outputs, gradient of rows ``start:stop`` and (summed) gradient of the weights.

        With a :class:`SharedLayout`, ``grad_outputs`` is read from it (pass None); with
        ``write_shared`` the outputs and input gradients go into it and come back as None.
        """
        self._pause_if_injected()
        self._run_as_qpu_job(stop - start)
        began = time.perf_counter()
        spec = _compiled(spec_json, self.tier_json)
        shared = attach(inputs) if isinstance(inputs, SharedLayout) else None
        shard_inputs = _rows(shared["inputs"] if shared else inputs, start, stop).requires_grad_(True)
        shard_weights = torch.from_numpy(np.array(weights)).requires_grad_(True)
        outputs = execute(spec, shard_inputs, shard_weights)
        grad = _rows(shared["grad_outputs"] if shared else grad_outputs, start, stop).to(outputs.dtype)
        grad_inputs, grad_weights = torch.autograd.grad(outputs, (shard_inputs, shard_weights), grad,
                                                        allow_unused=True)
        if grad_inputs is None:  # e.g. an RZ embedding, whose outputs do not depend on inputs
            grad_inputs = torch.zeros_like(shard_inputs)
        if write_shared:
            shared["outputs"][start:stop] = outputs.detach().numpy()
            shared["grad_inputs"][start:stop] = grad_inputs.numpy()
            return None, None, grad_weights.numpy(), time.perf_counter() - began
        return (outputs.detach().numpy(), grad_inputs.numpy(), grad_weights.numpy(),
                time.perf_counter() - began)


def _rows(array: np.ndarray, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` as a tensor. Object-store arrays are read-only and torch wants
    writable memory, so those are copied; shared-memory views are used in place."""
    rows = array[start:stop]
    return torch.from_numpy(rows if rows.flags.writeable else np.array(rows))
