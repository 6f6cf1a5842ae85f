"""Pool configuration: tiers (QPU, GPU, CPU), fallback order, retries, backpressure.

Loadable from YAML (``PoolConfig.from_yaml(path)``); every field is validated and an
error names the field and the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hqray.config_files import read_yaml_mapping
from hqray.errors import ConfigError
from hqray.quantum import CircuitSpec
from hqray.quantum.noise import NoiseModel
from hqray.validated import ValidatedModel

__all__ = ["TierConfig", "PoolConfig", "QpuEmulation", "default_tiers"]


class QpuEmulation(BaseModel):
    """How an emulated QPU behaves as a scheduler sees hardware: per-job latency, a queue
    of limited depth, limits on circuits and shots per job, and transient job failures.

    A job is one shard: one circuit per row. The pool sizes shards to these limits (many
    rows per job when latency dominates) and retries failed jobs like any failed shard.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_latency_s: float = Field(0.0, ge=0.0, le=3600.0, description="queueing + execution overhead of each job")
    queue_depth: int = Field(4, ge=1, description="jobs the device holds at once (running or queued)")
    max_circuits_per_job: int = Field(300, ge=1, description="circuits (rows) one job may carry")
    max_shots: int = Field(100_000, ge=1, description="most shots a job may ask for")
    failure_rate: float = Field(0.0, ge=0.0, le=1.0, description="probability that a job fails transiently")
    seed: int | None = Field(None, ge=0, description="seed of the failure draws (None: fresh)")

    @property
    def summary(self) -> str:
        """One line for status tables.

        >>> QpuEmulation(job_latency_s=2, failure_rate=0.05).summary
        'latency 2 s/job, queue 4, <= 300 circuits and 100000 shots/job, 5% transient failures'
        """
        return (f"latency {self.job_latency_s:g} s/job, queue {self.queue_depth}, <= {self.max_circuits_per_job} "
                f"circuits and {self.max_shots} shots/job, {self.failure_rate:.0%} transient failures")


class TierConfig(BaseModel):
    """One tier of workers.

    Attributes:
        resource: the Ray resource a worker holds: ``QPU`` (custom), ``GPU`` or ``CPU``.
        backend: ``"engine"`` (hqray's engine: exact, or with ``noise`` / ``shots`` its
            batched density-matrix strategy) or a PennyLane device name
            (``hqray.quantum.backends``: ``qiskit.aer``, ``braket.local.qubit``, ...).
        device_options: the device's keyword arguments, as data.
        device_options_env: device options read from environment variables on the worker
            (``{"token": "IBMQ_TOKEN"}``): credentials by variable name only.
        strategy: engine strategy (``auto``, ``folded``, ``statevector``, ``compiled``,
            ``density_matrix``, ``trajectories``).
        shots: finite shots, drawn from each row's exact outcome distribution; ``None`` is exact.
        noise: a noise model (``{calibration: ibm_manila}`` or explicit channels such as
            ``{depolarizing: 0.01, readout_error: 0.02}``), after every gate: on the engine,
            or on a device backend that takes it (default.mixed, braket.local.qubit as
            channels; qiskit.aer as an aer noise model).
        seed: seed of the shot sampler (``None``: fresh randomness per shard).
        emulation: an emulated QPU's latency, queue, limits and failures
            (:class:`QpuEmulation`), wrapping whichever backend the tier runs.
        diff_method: ``"best"`` (exact gradients of the simulation) or ``"parameter-shift"``
            (the shifted circuits of a shard run as one job, sampled, as on hardware).
        workers_per_unit: workers per unit of the resource (2 means half a unit each).
        max_workers: cap on the tier's workers (``None``: as many as the resource allows).
        max_shard_rows: most rows in one shard sent to a worker.
        max_shard_state_mb: most quantum-state memory one shard may hold (rows x 2^n
            amplitudes, or 4^n for a noisy tier's density matrix); bounds a shard's memory
            as circuits grow.
        timeout_s: a shard not back within this many seconds is retried elsewhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: Literal["QPU", "GPU", "CPU"]
    backend: str = "engine"
    device_options: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    device_options_env: dict[str, str] = Field(default_factory=dict)
    strategy: Literal["auto", "folded", "statevector", "compiled", "density_matrix", "trajectories"] = "auto"
    shots: int | None = Field(None, ge=1)
    noise: NoiseModel | None = None
    seed: int | None = Field(None, ge=0)
    emulation: QpuEmulation | None = None
    diff_method: Literal["best", "parameter-shift"] = "best"
    workers_per_unit: float = Field(1.0, gt=0.0, le=64.0)
    max_workers: int | None = Field(None, ge=1)
    max_shard_rows: int = Field(262144, ge=1)
    max_shard_state_mb: float = Field(256.0, gt=0.0)
    timeout_s: float = Field(60.0, gt=0.0)

    @model_validator(mode="after")
    def _noise_on_the_engine(self) -> TierConfig:
        from hqray.quantum.backends import get_backend, list_backends

        if self.noise is not None and self.backend != "engine" and get_backend(self.backend).noise == "none":
            raise ValueError(f"backend {self.backend!r} takes no hqray noise model; 'engine' and "
                             f"{[b.name for b in list_backends() if b.noise != 'none']} do")
        if self.noise is not None and self.shots is None and get_backend(self.backend).noise_needs_shots:
            raise ValueError(f"backend {self.backend!r} simulates noise by sampling only: set shots")
        if self.emulation is not None and self.shots is not None and self.shots > self.emulation.max_shots:
            raise ValueError(f"shots={self.shots} exceed the emulated QPU's max_shots={self.emulation.max_shots}")
        if self.backend == "engine" and (self.device_options or self.device_options_env):
            raise ValueError("device_options are for a PennyLane device backend, not 'engine'")
        return self

    @property
    def exact(self) -> bool:
        return self.shots is None and self.noise is None

    @property
    def execution(self) -> str:
        """What this tier's results are: ``exact``, or its shots and noise (for status tables).

        >>> default_tiers()["qpu"].execution
        '1024 shots; noise: calibration ibm_nairobi; parameter-shift gradients'
        """
        parts = ([f"options {sorted({**self.device_options, **self.device_options_env})}"]
                 if self.device_options or self.device_options_env else [])
        parts += ([f"{self.shots} shots"] if self.shots else []) + (
            [f"noise: {self.noise.summary}"] if self.noise else [])
        parts += ["parameter-shift gradients"] if self.diff_method == "parameter-shift" else []
        parts += [f"emulated QPU: {self.emulation.summary}"] if self.emulation else []
        return "; ".join(parts) or "exact"

    def state_bytes_per_row(self, n_qubits: int, double: bool) -> int:
        """Memory of one row's quantum state on this tier: 2^n amplitudes, or 4^n for a
        density matrix (noise and shots run on the engine's density-matrix strategy)."""
        density_matrix = self.backend == "default.mixed" or (self.noise is not None) or (
            self.backend == "engine" and self.shots is not None)
        return (4 if density_matrix else 2) ** n_qubits * (16 if double else 8)

    def worker_spec(self, spec: CircuitSpec) -> CircuitSpec:
        """The spec as this tier runs it (its backend, shots and noise)."""
        if self.backend == "engine":
            return CircuitSpec(**{**spec.model_dump(), "strategy": self.strategy, "shots": self.shots,
                                  "noise": self.noise, "seed": self.seed, "diff_method": self.diff_method})
        diff_method = "parameter-shift" if self.shots else self.diff_method
        return CircuitSpec(**{**spec.model_dump(), "strategy": "device", "device": self.backend,
                              "shots": self.shots, "noise": self.noise, "seed": self.seed,
                              "device_options": self.device_options,
                              "device_options_env": self.device_options_env, "diff_method": diff_method})


def default_tiers() -> dict[str, TierConfig]:
    """QPU: a hardware-like simulator (1024 shots; the noise of the shipped ibm_nairobi
    calibration, 7 qubits, gates between uncoupled qubits routed; parameter-shift
    gradients); GPU, CPU: exact."""
    return {
        "qpu": TierConfig(resource="QPU", backend="engine", shots=1024, diff_method="parameter-shift",
                          noise=NoiseModel(calibration="ibm_nairobi"),
                          max_shard_rows=512, timeout_s=120.0),
        "gpu": TierConfig(resource="GPU", backend="engine"),
        "cpu": TierConfig(resource="CPU", backend="engine"),
    }


class PoolConfig(ValidatedModel):
    """Tiers, their fallback order and the pool's limits.

    **Example**

    >>> config = PoolConfig(fallback_order=["cpu"])
    >>> list(config.active_tiers())
    ['cpu']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[str, TierConfig] = Field(default_factory=default_tiers)
    fallback_order: list[str] = Field(default_factory=lambda: ["qpu", "gpu", "cpu"], min_length=1)
    retries: int = Field(2, ge=0, le=100, description="extra attempts on the same tier before falling back")
    max_worker_losses: int = Field(20, ge=0, description="re-sends of a shard whose worker died, "
                                   "before such losses count as failed attempts")
    max_inflight_shards: int = Field(16, ge=1, description="shards submitted and not yet back (backpressure)")
    target_shard_seconds: float = Field(0.5, gt=0.0, description="shards are sized to take about this long")
    min_shard_rows: int = Field(64, ge=1, description="fewest rows in a shard, unless the tier's memory "
                                "cap (max_shard_state_mb) or max_shard_rows allow fewer")
    worker_start_timeout_s: float = Field(60.0, gt=0.0)
    max_worker_restarts: int = Field(5, ge=0, description="restarts of a worker slot whose worker died or "
                                     "did not start, with exponential backoff, before the slot is given up")
    shared_memory_mb: float = Field(512.0, ge=0.0, description="shared memory (/dev/shm) for jobs' arrays "
                                    "with workers on the pool's node; 0 sends everything through Ray's object store")

    @model_validator(mode="after")
    def _check_order(self) -> PoolConfig:
        unknown = [name for name in self.fallback_order if name not in self.tiers]
        if unknown:
            raise ConfigError(
                f"fallback_order names tiers {unknown} that do not exist; tiers are {sorted(self.tiers)}"
            )
        if len(set(self.fallback_order)) != len(self.fallback_order):
            raise ConfigError(f"fallback_order repeats a tier: {self.fallback_order}")
        return self

    def active_tiers(self) -> dict[str, TierConfig]:
        """The tiers in fallback order."""
        return {name: self.tiers[name] for name in self.fallback_order}

    @classmethod
    def from_yaml(cls, path: str | Path) -> PoolConfig:
        values = read_yaml_mapping(path, "pool config")
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"pool config {str(path)!r}: {error}") from None
