"""Noise models as data: device calibrations and the channels they imply.

A :class:`DeviceCalibration` holds what a QPU vendor publishes per qubit (T1, T2, readout
errors, single-qubit gate error and duration) and per coupler (two-qubit gate error and
duration). A :class:`NoiseModel` names one (a shipped file, ``hqray/quantum/calibrations``,
or a path) or gives uniform channels, and turns every gate of a circuit into the gate
followed by its channels:

- depolarizing, from the gate's error: a single-qubit depolarizing channel of probability
  ``p`` has average gate infidelity ``2p/3``, so ``p = 3 r / 2``; a two-qubit gate's error is
  split evenly over one such channel per wire (an approximation: PennyLane has no
  two-qubit depolarizing channel);
- thermal relaxation over the gate's duration: amplitude damping ``1 - exp(-t/T1)`` and
  phase damping ``1 - exp(-2t/T_phi)`` with ``1/T_phi = 1/T2 - 1/(2 T1)`` (PennyLane's
  PhaseDamping(g) multiplies coherences by ``sqrt(1 - g)``);
- readout: each qubit's confusion matrix, applied to measured probabilities and ``<Z>``.

**Example**

>>> model = NoiseModel(calibration="ibm_manila")
>>> calibration = model.device()
>>> calibration.name, len(calibration.qubits)
('ibm_manila', 5)
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hqray.errors import CircuitError, ConfigError
from hqray.validated import ValidatedModel

__all__ = ["QubitCalibration", "CouplerCalibration", "DeviceCalibration", "NoiseModel", "CALIBRATIONS",
           "calibration_from_ibm", "apply_readout", "readout_expval_z", "with_noise", "thermal_parameters"]

CALIBRATIONS = Path(__file__).parent / "calibrations"


class QubitCalibration(BaseModel):
    """One qubit: coherence times (µs), readout errors, its single-qubit gate's error and duration (ns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    t1_us: float = Field(gt=0)
    t2_us: float = Field(gt=0)
    readout_p01: float = Field(0.0, ge=0, le=1, description="P(measure 1 | prepared 0)")
    readout_p10: float = Field(0.0, ge=0, le=1, description="P(measure 0 | prepared 1)")
    gate_error: float = Field(0.0, ge=0, le=0.75)
    gate_time_ns: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _physical(self) -> QubitCalibration:
        if self.t2_us > 2 * self.t1_us + 1e-9:
            raise ValueError(f"T2 = {self.t2_us} us exceeds 2 T1 = {2 * self.t1_us} us, which no qubit can have")
        return self


class CouplerCalibration(BaseModel):
    """A two-qubit gate between ``qubits`` (control, target): its error and duration (ns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qubits: tuple[int, int]
    gate_error: float = Field(ge=0, le=0.9375)
    gate_time_ns: float = Field(0.0, ge=0)


class DeviceCalibration(ValidatedModel):
    """A device snapshot: where it comes from, its qubits and its couplers (the coupling map)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type = ConfigError

    name: str
    source: str = ""
    date: str = ""
    qubits: list[QubitCalibration] = Field(min_length=1)
    couplers: list[CouplerCalibration] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_couplers(self) -> DeviceCalibration:
        for coupler in self.couplers:
            if not all(0 <= q < len(self.qubits) for q in coupler.qubits) or coupler.qubits[0] == coupler.qubits[1]:
                raise ValueError(f"coupler {list(coupler.qubits)} needs two different qubits of "
                                 f"0..{len(self.qubits) - 1}")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> DeviceCalibration:
        """Reads a calibration JSON file, naming the file in every error."""
        path = Path(path)
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"calibration {str(path)!r} could not be read: {error}") from None
        except ConfigError as error:
            raise ConfigError(f"calibration {str(path)!r}: {error}") from None

    def route(self, a: int, b: int) -> list[CouplerCalibration]:
        """The couplers of a shortest path from qubit ``a`` to ``b`` (breadth-first search).

        >>> [c.qubits for c in DeviceCalibration.from_file(CALIBRATIONS / "ibm_manila.json").route(0, 3)]
        [(0, 1), (1, 2), (2, 3)]
        """
        parents: dict[int, tuple[int, CouplerCalibration]] = {}
        frontier, seen = [a], {a}
        while frontier and b not in seen:
            following = []
            for qubit in frontier:
                for coupler in self.couplers:
                    if qubit in coupler.qubits:
                        other = coupler.qubits[1] if coupler.qubits[0] == qubit else coupler.qubits[0]
                        if other not in seen:
                            seen.add(other)
                            parents[other] = (qubit, coupler)
                            following.append(other)
            frontier = following
        if b not in seen:
            raise CircuitError(f"{self.name} has no path between qubits {a} and {b}; its coupling map is "
                               f"{[list(c.qubits) for c in self.couplers]}")
        path, qubit = [], b
        while qubit != a:
            qubit, coupler = parents[qubit]
            path.append(coupler)
        return path[::-1]

    def coupler(self, a: int, b: int) -> CouplerCalibration:
        for coupler in self.couplers:
            if coupler.qubits in ((a, b), (b, a)):
                return coupler
        raise CircuitError(f"{self.name} has no coupler between qubits {a} and {b}; its coupling map is "
                           f"{[list(c.qubits) for c in self.couplers]}")


class NoiseModel(ValidatedModel):
    """A tier's noise: a device calibration (shipped name or file path) or uniform channels.

    With ``calibration``, the explicit channel fields must stay zero.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_type = ConfigError

    calibration: str | None = Field(None, description="a shipped calibration name, or a JSON file's path")
    depolarizing: float = Field(0.0, ge=0, le=1, description="after every gate, on each of its wires")
    amplitude_damping: float = Field(0.0, ge=0, le=1)
    phase_damping: float = Field(0.0, ge=0, le=1)
    readout_error: float = Field(0.0, ge=0, le=1, description="symmetric bit-flip probability at readout")
    routing: Literal["swap", "none"] = Field(
        "swap", description="a two-qubit gate between uncoupled qubits: 'swap' gives it the noise of the "
                            "SWAP chain a transpiler would insert; 'none' refuses it, as a device without routing")

    @model_validator(mode="after")
    def _one_source(self) -> NoiseModel:
        explicit = (self.depolarizing, self.amplitude_damping, self.phase_damping, self.readout_error)
        if self.calibration is not None and any(explicit):
            raise ValueError("give either a calibration or explicit channels, not both")
        if self.calibration is not None:
            self.device()  # the file exists and is valid
        return self

    @property
    def summary(self) -> str:
        """One line for tables: the calibration's name, or the non-zero channels.

        >>> NoiseModel(depolarizing=0.01, readout_error=0.02).summary
        'depolarizing 0.01, readout_error 0.02'
        """
        if self.calibration is not None:
            return f"calibration {self.calibration}" + (", no routing" if self.routing == "none" else "")
        channels = {"depolarizing": self.depolarizing, "amplitude_damping": self.amplitude_damping,
                    "phase_damping": self.phase_damping, "readout_error": self.readout_error}
        return ", ".join(f"{name} {value:g}" for name, value in channels.items() if value) or "none"

    def device(self) -> DeviceCalibration | None:
        if self.calibration is None:
            return None
        return _load_calibration(self.calibration)

    def gate_channels(self, op) -> list:
        """The PennyLane channels that follow gate ``op`` (an Operation on integer wires)."""
        import pennylane as qml

        wires = [int(w) for w in op.wires]
        device = self.device()
        if device is None:
            return [channel for w in wires for channel in _uniform_channels(self, w, qml)]
        if max(wires) >= len(device.qubits):
            raise CircuitError(f"the circuit uses wire {max(wires)}, but {device.name} has {len(device.qubits)} "
                               "qubits")
        if len(wires) == 1:
            qubit = device.qubits[wires[0]]
            return _calibrated_channels(qubit, 1.5 * qubit.gate_error, qubit.gate_time_ns, wires[0], qml)
        if len(wires) == 2:
            error, duration = self._two_qubit_cost(device, *wires)
            return [channel for w in wires for channel in
                    _calibrated_channels(device.qubits[w], 1.5 * error / 2, duration, w, qml)]
        raise CircuitError(f"{device.name} runs one- and two-qubit gates; decompose {op.name} on {wires} first")

    def _two_qubit_cost(self, device: DeviceCalibration, a: int, b: int) -> tuple[float, float]:
        """Error and duration (ns) of a two-qubit gate on ``a, b``: its coupler's, or with
        ``routing="swap"`` those of the CXs a transpiler runs for it on a shortest path of
        ``d`` couplers: ``d - 1`` SWAPs of 3 CXs each, then the gate (transpilers keep the new
        layout instead of swapping back). The noise lands on the gate's own wires and the
        state is not permuted: an approximation of routing, not a transpiler."""
        if self.routing == "none" or any(c.qubits in ((a, b), (b, a)) for c in device.couplers):
            coupler = device.coupler(a, b)
            return coupler.gate_error, coupler.gate_time_ns
        path = device.route(a, b)
        success, duration = 1.0, 0.0
        for index, coupler in enumerate(path):
            repeats = 1 if index == len(path) - 1 else 3  # the last coupler runs the gate itself
            success *= (1.0 - coupler.gate_error) ** repeats
            duration += repeats * coupler.gate_time_ns
        return min(1.0 - success, 0.9375), duration

    def readout_matrices(self, n_wires: int) -> np.ndarray:
        """Per wire, the confusion matrix ``M[measured, prepared]``: ``(n_wires, 2, 2)``."""
        device = self.device()
        if device is None:
            p = self.readout_error
            flips = [(p, p)] * n_wires
        else:
            flips = [(q.readout_p01, q.readout_p10) for q in device.qubits[:n_wires]]
        return np.array([[[1 - p01, p10], [p01, 1 - p10]] for p01, p10 in flips])


def _uniform_channels(model: NoiseModel, wire: int, qml) -> list:
    channels = []
    if model.depolarizing:
        channels.append(qml.DepolarizingChannel(model.depolarizing, wires=wire))
    if model.amplitude_damping:
        channels.append(qml.AmplitudeDamping(model.amplitude_damping, wires=wire))
    if model.phase_damping:
        channels.append(qml.PhaseDamping(model.phase_damping, wires=wire))
    return channels


def thermal_parameters(qubit: QubitCalibration, duration_ns: float) -> tuple[float, float]:
    """Amplitude- and phase-damping probabilities of ``duration_ns`` on ``qubit``.

    >>> q = QubitCalibration(t1_us=100, t2_us=100)
    >>> [round(v, 6) for v in thermal_parameters(q, 1000)]  # 1 us
    [0.00995, 0.00995]
    """
    t = duration_ns / 1000.0
    gamma = 1.0 - math.exp(-t / qubit.t1_us)
    dephasing_rate = max(0.0, 1.0 / qubit.t2_us - 1.0 / (2.0 * qubit.t1_us))
    return gamma, 1.0 - math.exp(-2.0 * t * dephasing_rate)


def _calibrated_channels(qubit: QubitCalibration, depolarizing: float, duration_ns: float, wire: int, qml) -> list:
    gamma, dephasing = thermal_parameters(qubit, duration_ns)
    channels = []
    if depolarizing > 0:
        channels.append(qml.DepolarizingChannel(min(depolarizing, 1.0), wires=wire))
    if gamma > 0:
        channels.append(qml.AmplitudeDamping(gamma, wires=wire))
    if dephasing > 0:
        channels.append(qml.PhaseDamping(dephasing, wires=wire))
    return channels


@lru_cache(maxsize=32)
def _load_calibration(name: str) -> DeviceCalibration:
    shipped = CALIBRATIONS / f"{name}.json"
    if shipped.is_file():
        return DeviceCalibration.from_file(shipped)
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return DeviceCalibration.from_file(path)
    available = sorted(p.stem for p in CALIBRATIONS.glob("*.json"))
    raise ConfigError(f"calibration {name!r} is neither a shipped one ({available}) nor a JSON file")


def _gates(operations) -> list:
    """Operations decomposed until each acts on at most two wires with a matrix (what devices run)."""
    flat = []
    for op in operations:
        if op.has_matrix and len(op.wires) <= 2:
            flat.append(op)
        elif op.has_decomposition:
            flat.extend(_gates(op.decomposition()))
        else:
            raise CircuitError(f"{op.name} on wires {list(op.wires)} has no one- or two-qubit decomposition to add "
                               "noise to")
    return flat


def with_noise(qfunc, model: NoiseModel):
    """``qfunc`` with every gate followed by its channels (run it on a mixed-state device such
    as ``default.mixed``). Readout errors are not channels: apply :func:`readout_expval_z` or
    :func:`apply_readout` to what it measures."""
    import pennylane as qml

    def noisy(inputs, weights):
        tape = qml.tape.make_qscript(qfunc)(inputs, weights)
        with qml.QueuingManager.stop_recording():
            gates = _gates(tape.operations)  # decompositions would queue themselves
        for op in gates:
            qml.apply(op)
            with qml.QueuingManager.stop_recording():  # made here, queued once below
                channels = model.gate_channels(op)
            for channel in channels:
                qml.apply(channel)
        measurements = [qml.apply(m) for m in tape.measurements]
        return measurements[0] if len(measurements) == 1 else measurements
    return noisy


def readout_expval_z(values: np.ndarray, wires: list[int], model: NoiseModel) -> np.ndarray:
    """``<Z>`` per wire as a readout with the model's errors reports it:
    ``(1 - p01 - p10) <Z> + (p10 - p01)`` (values ``(B, len(wires))``).

    >>> readout_expval_z(np.array([[1.0, -1.0]]), [0, 1], NoiseModel(readout_error=0.1)).tolist()
    [[0.8, -0.8]]
    """
    confusion = model.readout_matrices(max(wires) + 1)[wires]      # (k, 2, 2): M[measured, prepared]
    p01, p10 = confusion[:, 1, 0], confusion[:, 0, 1]
    return values * (1.0 - p01 - p10) + (p10 - p01)


def apply_readout(probabilities: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Probabilities ``(B, 2^n)`` (wire 0 most significant) as a noisy readout measures them.

    >>> confusion = np.array([[[0.9, 0.2], [0.1, 0.8]]])
    >>> apply_readout(np.array([[1.0, 0.0]]), confusion).round(3).tolist()
    [[0.9, 0.1]]
    """
    batch, n = probabilities.shape[0], confusion.shape[0]
    tensor = probabilities.reshape(batch, *[2] * n)
    for wire in range(n):
        tensor = np.moveaxis(np.tensordot(tensor, confusion[wire], axes=([1 + wire], [1])), -1, 1 + wire)
    return tensor.reshape(batch, -1)


def calibration_from_ibm(properties: dict[str, Any], configuration: dict[str, Any], name: str,
                         source: str) -> DeviceCalibration:
    """A calibration from IBM backend properties and configuration (the JSON that IBM devices
    and qiskit-ibm-runtime's fake backends publish): T1, T2, readout, ``sx`` and ``cx``."""
    def value(items, key):
        return next(item["value"] for item in items if item["name"] == key)

    gates = {(gate["gate"], tuple(gate["qubits"])): gate["parameters"] for gate in properties["gates"]}
    qubits = []
    for index, items in enumerate(properties["qubits"]):
        sx = gates[("sx", (index,))]
        qubits.append(QubitCalibration(
            t1_us=value(items, "T1"), t2_us=min(value(items, "T2"), 2 * value(items, "T1")),
            readout_p01=value(items, "prob_meas1_prep0"), readout_p10=value(items, "prob_meas0_prep1"),
            gate_error=value(sx, "gate_error"), gate_time_ns=value(sx, "gate_length")))
    couplers = [CouplerCalibration(qubits=tuple(pair), gate_error=value(gates[("cx", tuple(pair))], "gate_error"),
                                   gate_time_ns=value(gates[("cx", tuple(pair))], "gate_length"))
                for pair in configuration["coupling_map"] if ("cx", tuple(pair)) in gates]
    return DeviceCalibration(name=name, source=source, date=properties.get("last_update_date", ""), qubits=qubits,
                             couplers=couplers)
