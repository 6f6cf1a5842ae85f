"""Device backends: the PennyLane devices a tier (or a spec's ``device`` strategy) runs on.

One entry adds one device: its name, how hqray's :class:`~hqray.quantum.noise.NoiseModel`
reaches it (``channels``: PennyLane channels after every gate, for mixed-state devices;
``aer``: translated to a qiskit-aer noise model; ``none``), the plugin module it needs and
the extra that installs it, and device options it takes by default or when noisy. Device
names that are not registered still run (any PennyLane device), without hqray noise.
Readout errors are applied to what a device measures (it reports exact outcome statistics),
the same way on every backend. A spec's ``seed`` seeds the engine's shots; plugin devices
sample with their own randomness (pennylane-qiskit 0.45 does not make aer's seed repeatable).

Options are data (``device_options``); a secret comes from an environment variable named
in ``device_options_env`` (``{"token": "IBMQ_TOKEN"}``), read where the device is created
(the worker), never stored in a spec, a checkpoint or a log.

**Example**

>>> get_backend("braket.local.qubit").noise, get_backend("qiskit.aer").extra
('channels', 'plugins')
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hqray.errors import CircuitError

__all__ = ["DeviceBackend", "register_backend", "get_backend", "list_backends", "create_device", "aer_noise_model"]


@dataclass(frozen=True)
class DeviceBackend:
    """One registered PennyLane device.

    Attributes:
        name: the PennyLane device name.
        description: one line for docs and status tables.
        noise: how hqray noise reaches it: ``"channels"``, ``"aer"`` or ``"none"``.
        module: the Python module its plugin provides (checked before creating it).
        extra: the hqray extra that installs the plugin.
        options: device keyword arguments it gets by default.
        noisy_options: keyword arguments it gets when the spec carries noise.
        noise_needs_shots: its noisy simulation only samples, so noise needs ``shots``.
    """

    name: str
    description: str
    noise: Literal["channels", "aer", "none"] = "none"
    module: str | None = None
    extra: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    noisy_options: dict[str, Any] = field(default_factory=dict)
    noise_needs_shots: bool = False  # its noisy simulation samples (no exact mode)

    def available(self) -> bool:
        """Whether its plugin is installed."""
        return self.module is None or importlib.util.find_spec(self.module) is not None


_BACKENDS: dict[str, DeviceBackend] = {}


def register_backend(backend: DeviceBackend, replace: bool = False) -> DeviceBackend:
    """Adds a device backend (a name already taken needs ``replace=True``)."""
    if backend.name in _BACKENDS and not replace:
        raise CircuitError(f"device backend {backend.name!r} is already registered")
    _BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> DeviceBackend:
    """The registered backend ``name``, or a generic one (any PennyLane device, no hqray noise)."""
    return _BACKENDS.get(name) or DeviceBackend(name, "a PennyLane device (not registered with hqray)")


def list_backends() -> list[DeviceBackend]:
    return list(_BACKENDS.values())


def create_device(spec) -> Any:
    """The PennyLane device for ``spec`` (a CircuitSpec): its backend's options, the spec's
    ``device_options`` and secrets from ``device_options_env``, and its noise where the
    backend takes it as a device option."""
    import pennylane as qml

    backend = get_backend(spec.device)
    if spec.noise is not None and backend.noise == "none":
        raise CircuitError(f"device {spec.device!r} does not take hqray noise models; backends that do: "
                           f"{[b.name for b in list_backends() if b.noise != 'none']} (or the engine's "
                           "density_matrix strategy)")
    if spec.noise is not None and backend.noise_needs_shots and spec.shots is None:
        raise CircuitError(f"device {spec.device!r} simulates noise by sampling only: set shots (exact noisy "
                           "values come from the engine's density_matrix strategy or default.mixed)")
    if not backend.available():
        raise CircuitError(f"device {spec.device!r} needs the {backend.module!r} plugin: "
                           f"pip install 'hqray[{backend.extra}]'")
    options = {**backend.options, **(backend.noisy_options if spec.noise is not None else {}),
               **spec.device_options, **_secrets(spec.device_options_env)}
    if spec.noise is not None and backend.noise == "aer":
        options["noise_model"] = aer_noise_model(spec.noise, spec.n_qubits)
    try:
        return qml.device(spec.device, wires=spec.n_qubits, **options)
    except Exception as error:
        raise CircuitError(f"PennyLane device {spec.device!r} could not be created with options "
                           f"{sorted(options)}: {error}") from error


def _secrets(names: dict[str, str]) -> dict[str, str]:
    missing = [variable for variable in names.values() if not os.environ.get(variable)]
    if missing:
        raise CircuitError(f"device credentials come from environment variables {missing}, which are unset or "
                           "empty where the device is created")
    return {option: os.environ[variable] for option, variable in names.items()}


ONE_QUBIT_GATES = ["id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p", "r",
                   "u", "u1", "u2", "u3"]
TWO_QUBIT_GATES = ["cx", "cy", "cz", "ch", "swap", "iswap", "ecr", "cp", "crx", "cry", "crz", "cu", "cu1", "cu3",
                   "rxx", "ryy", "rzz", "rzx"]


def aer_noise_model(noise, n_wires: int):
    """hqray's noise as a qiskit-aer ``NoiseModel``: each channel after every one- and
    two-qubit basis gate (aer transpiles PennyLane's gates to its basis first, so the channels
    follow those gates; a calibration's couplers get their own two-qubit errors, other pairs
    the mean coupler's). Readout errors are applied by hqray to what is measured, as on
    every backend."""
    from qiskit_aer.noise import NoiseModel as AerNoiseModel

    model = AerNoiseModel()
    device = noise.device()
    if device is None:
        one = _aer_channels(noise.depolarizing, noise.amplitude_damping, noise.phase_damping)
        if one is not None:
            model.add_all_qubit_quantum_error(one, ONE_QUBIT_GATES)
            model.add_all_qubit_quantum_error(one.expand(one), TWO_QUBIT_GATES)
        return model
    from hqray.quantum.noise import thermal_parameters

    def calibrated(wire: int, depolarizing: float, duration_ns: float):
        return _aer_channels(depolarizing, *thermal_parameters(device.qubits[wire], duration_ns))

    for wire in range(min(n_wires, len(device.qubits))):
        qubit = device.qubits[wire]
        error = calibrated(wire, 1.5 * qubit.gate_error, qubit.gate_time_ns)
        if error is not None:
            model.add_quantum_error(error, ONE_QUBIT_GATES, [wire])
    for coupler in device.couplers:
        a, b = coupler.qubits
        if max(a, b) < n_wires:
            per_wire = 1.5 * coupler.gate_error / 2
            first, second = (calibrated(w, per_wire, coupler.gate_time_ns) for w in (a, b))
            if first is not None and second is not None:
                model.add_quantum_error(first.expand(second), TWO_QUBIT_GATES, [a, b])
    return model


def _aer_channels(depolarizing: float, amplitude_damping: float, phase_damping: float):
    """One qubit's channels (PennyLane's parameters) as one qiskit-aer QuantumError, or None."""
    from qiskit_aer.noise import amplitude_damping_error, depolarizing_error, phase_damping_error

    errors = []
    if depolarizing:  # PennyLane's DepolarizingChannel(p) is qiskit's depolarizing_error(4p/3)
        errors.append(depolarizing_error(min(4 * depolarizing / 3, 4 / 3), 1))
    if amplitude_damping:
        errors.append(amplitude_damping_error(amplitude_damping))
    if phase_damping:
        errors.append(phase_damping_error(phase_damping))
    if not errors:
        return None
    combined = errors[0]
    for error in errors[1:]:
        combined = combined.compose(error)
    return combined


def _register_defaults(entries: list[DeviceBackend]) -> None:
    for entry in entries:
        register_backend(entry)


_register_defaults([
    DeviceBackend("default.qubit", "PennyLane's state-vector simulator"),
    DeviceBackend("lightning.qubit", "PennyLane's C++ state-vector simulator", module="pennylane_lightning"),
    DeviceBackend("default.mixed", "PennyLane's density-matrix simulator", noise="channels"),
    DeviceBackend("qiskit.aer", "qiskit-aer (pennylane-qiskit): exact on its state-vector method; noisy: its "
                  "density-matrix method with an aer noise model, sampled", noise="aer", module="qiskit_aer",
                  extra="plugins", options={"method": "statevector"}, noisy_options={"method": "density_matrix"},
                  noise_needs_shots=True),
    DeviceBackend("braket.local.qubit", "Amazon Braket's local simulator; noisy: its density-matrix backend",
                  noise="channels", module="braket.pennylane_plugin", extra="plugins",
                  noisy_options={"backend": "braket_dm"}),
])


def noise_wrapper(spec, apply: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """``apply(inputs, weights)`` with the spec's noise channels after every gate, when its
    backend takes noise as channels; ``apply`` itself otherwise."""
    if spec.noise is None or get_backend(spec.device).noise != "channels":
        return apply
    from hqray.quantum.noise import with_noise

    noisy = with_noise(lambda inputs, weights: apply(inputs, weights) or [], spec.noise)
    return lambda inputs, weights: noisy(inputs, weights) and None
