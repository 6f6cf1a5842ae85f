"""Device backends: plugin simulators run hqray's circuits, with hqray's noise models, offline."""

from __future__ import annotations

import pytest
import torch

from hqray.errors import CircuitError
from hqray.quantum import CircuitSpec, execute
from hqray.quantum.backends import get_backend, list_backends
from hqray.quantum.noise import NoiseModel

NOISE = NoiseModel(depolarizing=0.02, amplitude_damping=0.01, readout_error=0.03)
SPEC = CircuitSpec(n_qubits=3, n_layers=2, precision="double")


def case(spec: CircuitSpec = SPEC, rows: int = 4):
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(rows, spec.n_qubits, dtype=torch.float64, generator=generator) * 3,
            torch.rand(spec.weight_shape, dtype=torch.float64, generator=generator) * 6)


def on(device: str, **fields) -> CircuitSpec:
    return SPEC.model_copy(update={"strategy": "device", "device": device, **fields})


def plugin(module: str):
    return pytest.importorskip(module, reason="the plugins extra is not installed (pip install 'hqray[plugins]')")


@pytest.mark.parametrize("device", ["default.mixed", "braket.local.qubit"])
def test_channel_backends_run_the_noise_model_exactly_as_the_engine(device):
    if device.startswith("braket"):
        plugin("braket.pennylane_plugin")
    inputs, weights = case()
    engine = execute(SPEC.model_copy(update={"noise": NOISE}), inputs, weights)
    outputs = execute(on(device, noise=NOISE), inputs, weights)
    assert (outputs - engine).abs().max() < 1e-6
    assert (outputs - execute(SPEC, inputs, weights)).abs().max() > 1e-2  # and the noise is there


def test_qiskit_aer_runs_exactly_without_noise_and_close_with_its_translated_noise_model():
    plugin("qiskit_aer")
    inputs, weights = case()
    exact = execute(SPEC, inputs, weights)
    assert (execute(on("qiskit.aer"), inputs, weights) - exact).abs().max() < 1e-6
    engine = execute(SPEC.model_copy(update={"noise": NOISE}), inputs, weights)
    with pytest.raises(CircuitError, match="simulates noise by sampling only: set shots"):
        execute(on("qiskit.aer", noise=NOISE), inputs, weights)
    noisy = execute(on("qiskit.aer", noise=NOISE, shots=20_000, seed=3), inputs, weights)
    # aer puts the channels after its own transpiled basis gates: close to the engine, not equal.
    assert (noisy - engine).abs().max() < 0.15 and (noisy - exact).abs().max() > 1e-2


def test_a_calibrated_noise_model_becomes_per_qubit_and_per_coupler_aer_errors():
    plugin("qiskit_aer")
    from hqray.quantum.backends import aer_noise_model

    model = aer_noise_model(NoiseModel(calibration="ibm_manila"), 3)
    assert set(model.noise_qubits) == {0, 1, 2}
    assert "cx" in model.noise_instructions and "rz" in model.noise_instructions


def test_qiskit_aer_shots_sample_near_the_exact_values():
    plugin("qiskit_aer")
    inputs, weights = case()
    sampled = execute(on("qiskit.aer", shots=4000), inputs, weights)
    exact = execute(SPEC, inputs, weights)
    assert 0 < (sampled - exact).abs().max() < 5 / 4000**0.5  # sampled: within 5 sigma of a <Z> estimate


def test_device_options_reach_the_device():
    plugin("qiskit_aer")
    from hqray.quantum.backends import create_device

    device = create_device(on("qiskit.aer", device_options={"method": "statevector"}))
    assert device.backend.options.method == "statevector"


def test_credentials_come_from_named_environment_variables_only(monkeypatch):
    monkeypatch.delenv("HQRAY_TEST_TOKEN", raising=False)
    spec = on("default.qubit", device_options_env={"token": "HQRAY_TEST_TOKEN"})
    with pytest.raises(CircuitError, match=r"environment variables \['HQRAY_TEST_TOKEN'\], which are unset"):
        execute(spec, *case())
    assert "HQRAY_TEST_TOKEN" in repr(spec) and "secret" not in repr(spec)


def test_a_device_that_takes_no_noise_model_is_refused_with_the_ones_that_do():
    with pytest.raises(CircuitError, match=r"takes no hqray noise model.*'default.mixed'"):
        execute(on("lightning.qubit", noise=NOISE), *case())


def test_the_registry_names_each_plugin_and_its_extra():
    names = {b.name: b for b in list_backends()}
    assert {"default.qubit", "default.mixed", "qiskit.aer", "braket.local.qubit"} <= set(names)
    assert names["qiskit.aer"].extra == names["braket.local.qubit"].extra == "plugins"
    assert get_backend("some.plugin").noise == "none"  # unregistered devices still run, without hqray noise
