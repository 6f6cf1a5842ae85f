"""Quantum trajectories: unbiased estimates of the density-matrix engine, for wider circuits."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from hqray.errors import CircuitError
from hqray.quantum import CircuitSpec, execute, plan
from hqray.quantum.circuits import Circuit
from hqray.quantum.mixed import run_noisy
from hqray.quantum.noise import NoiseModel
from hqray.quantum.trajectories import run_trajectories


@pytest.mark.parametrize("noise", [
    NoiseModel(depolarizing=0.05, amplitude_damping=0.05, phase_damping=0.05, readout_error=0.02),
    NoiseModel(calibration="ibm_manila"),
], ids=["uniform", "ibm_manila"])
def test_estimates_agree_with_the_density_matrix_within_their_statistical_error(noise):
    circuit = Circuit(n_qubits=4, embedding="angle", ansatz="hardware_efficient",
                      ansatz_options={"entangler": "linear"}, n_layers=2, measurement="expval_z")
    generator = torch.Generator().manual_seed(3)
    inputs = torch.rand(3, 4, dtype=torch.float64, generator=generator)
    weights = torch.rand(circuit.weight_shape, dtype=torch.float64, generator=generator)
    exact = run_noisy(circuit.qfunc(), 4, inputs, weights, noise)
    trajectories = 4000
    estimate = run_trajectories(circuit.qfunc(), 4, inputs, weights, noise, trajectories=trajectories, seed=1)
    # Each <Z> of a trajectory lies in [-1, 1]: the mean's standard error is at most 1/sqrt(T).
    assert (estimate - exact).abs().max() < 5 / np.sqrt(trajectories)
    assert torch.equal(estimate, run_trajectories(circuit.qfunc(), 4, inputs, weights, noise,
                                                  trajectories=trajectories, seed=1))  # seeded


def test_a_noisy_circuit_wider_than_density_matrices_runs_on_trajectories():
    n, p = 15, 0.05
    spec = CircuitSpec(n_qubits=n, n_layers=1, ansatz="ry_cnot", noise=NoiseModel(depolarizing=p),
                       trajectories=100, seed=0)
    chosen = plan(spec, 1)
    assert chosen.strategy == "trajectories" and "14" in chosen.rejected["density_matrix"]
    inputs = torch.full((1, n), 0.9)
    weights = torch.zeros(spec.weight_shape)
    outputs = execute(spec, inputs, weights)
    # RY(0.9) then RY(0) on each wire, each followed by depolarizing: <Z0> = (1 - 4p/3)^2 cos(0.9)
    # before the CNOT chain, whose control wire 0 keeps it, with one more channel after its CNOT.
    # A trajectory's <Z0> is +-cos(0.9) or +-1-ish: a standard deviation below 0.45, so the
    # mean of 100 is within 0.25 (over 5 standard errors) of the exact value.
    expected = (1 - 4 * p / 3) ** 3 * np.cos(0.9)
    assert outputs.shape == (1, n) and abs(float(outputs[0, 0]) - expected) < 0.25


def test_trajectories_refuse_to_train_naming_the_strategy_that_can():
    spec = CircuitSpec(n_qubits=2, noise=NoiseModel(depolarizing=0.1), strategy="trajectories")
    weights = torch.zeros(spec.weight_shape, requires_grad=True)
    with pytest.raises(CircuitError, match="estimates without gradients; train on the density_matrix"):
        execute(spec, torch.zeros(2, 2), weights)


def test_a_measurement_of_the_state_is_refused():
    with pytest.raises(CircuitError, match="not the state"):
        run_trajectories(lambda x, w: qml.state(), 1, torch.zeros(1, 1), torch.zeros(0), NoiseModel(depolarizing=0.1))
