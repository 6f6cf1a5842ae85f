"""Noise models as data: shipped calibrations, the channels they imply, and their physics on default.mixed."""

from __future__ import annotations

import json
import math

import numpy as np
import pennylane as qml
import pytest
import torch

from hqray.errors import CircuitError, ConfigError
from hqray.quantum.noise import (
    CALIBRATIONS,
    DeviceCalibration,
    NoiseModel,
    apply_readout,
    readout_expval_z,
    thermal_parameters,
    with_noise,
)


@pytest.mark.parametrize("name", ["ibm_manila", "ibm_nairobi", "ibm_lima"])
def test_shipped_calibrations_load_and_say_where_they_come_from(name):
    device = NoiseModel(calibration=name).device()
    assert device.name == name and "qiskit-ibm-runtime" in device.source and device.date
    assert all(q.t2_us <= 2 * q.t1_us for q in device.qubits)
    assert device.couplers and all(0 < c.gate_error < 0.2 for c in device.couplers)
    assert name in (CALIBRATIONS / "README.md").read_text()


def test_gate_channels_follow_the_calibration():
    model = NoiseModel(calibration="ibm_manila")
    qubit = model.device().qubits[2]
    channels = model.gate_channels(qml.RX(0.3, wires=2))
    assert [c.name for c in channels] == ["DepolarizingChannel", "AmplitudeDamping", "PhaseDamping"]
    assert channels[0].parameters[0] == pytest.approx(1.5 * qubit.gate_error)
    assert channels[1].parameters[0] == pytest.approx(1 - math.exp(-qubit.gate_time_ns / 1000 / qubit.t1_us))
    two = model.gate_channels(qml.CNOT(wires=[1, 2]))
    assert [c.wires.tolist() for c in two if c.name == "DepolarizingChannel"] == [[1], [2]]
    with pytest.raises(CircuitError, match=r"no coupler between qubits 0 and 4; its coupling map is \[\[0, 1\]"):
        NoiseModel(calibration="ibm_manila", routing="none").gate_channels(qml.CNOT(wires=[0, 4]))
    # Routed (the default): manila is a chain, so 0 -> 4 takes 3 SWAPs (9 CXs) and the gate.
    path = model.device().route(0, 4)
    assert [c.qubits for c in path] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    error = 1 - np.prod([(1 - c.gate_error) ** 3 for c in path[:-1]]) * (1 - path[-1].gate_error)
    routed = model.gate_channels(qml.CNOT(wires=[0, 4]))
    assert [c.parameters[0] for c in routed if c.name == "DepolarizingChannel"] == pytest.approx([0.75 * error] * 2)
    assert error > 9 * min(c.gate_error for c in path)  # worse than any one coupler's gate
    assert thermal_parameters(qubit, 0.0) == (0.0, 0.0)


def test_bad_calibrations_and_models_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"calibration 'ibm_nowhere' is neither a shipped one \(\['ibm_lima'"):
        NoiseModel(calibration="ibm_nowhere")
    with pytest.raises(ConfigError, match="either a calibration or explicit channels"):
        NoiseModel(calibration="ibm_lima", depolarizing=0.01)
    bad = json.loads((CALIBRATIONS / "ibm_lima.json").read_text())
    bad["qubits"][0]["t2_us"] = 3 * bad["qubits"][0]["t1_us"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"bad.json.*exceeds 2 T1"):
        DeviceCalibration.from_file(tmp_path / "bad.json")


def test_amplitude_damping_and_readout_match_their_closed_forms_on_default_mixed():
    def flip(inputs, weights):
        qml.PauliX(wires=0)
        qml.RY(inputs[..., 0], wires=1)
        return [qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(1))]

    model = NoiseModel(amplitude_damping=0.2, readout_error=0.1)
    node = qml.QNode(with_noise(flip, model), qml.device("default.mixed", wires=2))
    angle = 0.7
    damped = np.array([[float(v) for v in node(torch.tensor([[angle]]), torch.zeros(1))]])
    # |1> decays to |0> with probability 0.2 after X; RY(a)|0>: <Z> = cos a, damped towards +1.
    z1 = math.cos(angle)
    expected = np.array([[-1 + 2 * 0.2, z1 + 0.2 * (1 - z1)]])
    np.testing.assert_allclose(damped, expected, atol=1e-6)
    reported = readout_expval_z(damped, [0, 1], model)
    np.testing.assert_allclose(reported, expected * 0.8, atol=1e-6)  # symmetric flips: (1 - 2p) <Z>


def test_readout_of_probabilities_agrees_with_the_expval_formula():
    model = NoiseModel(calibration="ibm_manila")
    rng = np.random.default_rng(0)
    amplitudes = rng.normal(size=(4, 8))
    probabilities = amplitudes**2 / (amplitudes**2).sum(axis=1, keepdims=True)
    noisy = apply_readout(probabilities, model.readout_matrices(3))
    np.testing.assert_allclose(noisy.sum(axis=1), 1.0)
    signs = 1 - 2 * ((np.arange(8)[:, None] >> np.array([2, 1, 0])) & 1)  # <Z> of each wire per basis state
    np.testing.assert_allclose(noisy @ signs, readout_expval_z(probabilities @ signs, [0, 1, 2], model), atol=1e-12)


def test_a_calibrated_device_runs_a_registered_circuit_close_to_its_noiseless_values():
    from hqray.quantum.circuits import Circuit

    circuit = Circuit(n_qubits=3, ansatz="hardware_efficient", ansatz_options={"entangler": "linear"})
    inputs = torch.tensor([[0.3, 1.1, 2.0]], dtype=torch.float64)
    weights = torch.linspace(0.1, 1.2, 12, dtype=torch.float64).reshape(circuit.weight_shape)
    exact = circuit.run(inputs, weights).numpy()
    noisy_node = qml.QNode(with_noise(circuit.qfunc(), NoiseModel(calibration="ibm_manila")),
                           qml.device("default.mixed", wires=3))
    noisy = np.array([[float(v) for v in noisy_node(inputs, weights)]])
    difference = np.abs(noisy - exact)
    assert 1e-4 < difference.max() < 0.05  # a few-percent effect of 1e-3 gate errors and ~100 us T1
    ring = Circuit(n_qubits=5, ansatz="hardware_efficient")  # CX 4 -> 0: not on manila's chain
    with pytest.raises(CircuitError, match="no coupler between qubits 4 and 0"):
        qml.QNode(with_noise(ring.qfunc(), NoiseModel(calibration="ibm_manila", routing="none")),
                  qml.device("default.mixed", wires=5))(torch.zeros(1, 5), torch.zeros(ring.weight_shape))
