"""The engine's strategies give PennyLane default.qubit's numbers, gradients included."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqray.errors import CircuitError
from hqray.quantum import CircuitSpec, FallbackWarning, execute, plan
from hqray.quantum.noise import NoiseModel
from hqray.quantum.reference import build_qnode, stack_outputs

FAST = ("folded", "statevector")


def reference(spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor):
    """Outputs and gradients from a PennyLane default.qubit QNode (backprop, broadcasting)."""
    qnode = build_qnode(spec.model_copy(update={"strategy": "device", "precision": "double"}),
                        "default.qubit", "backprop")
    x = inputs.detach().double().requires_grad_(True)
    w = weights.detach().double().requires_grad_(True)
    outputs = stack_outputs(spec, qnode(x, w))
    _weighted_sum(outputs).backward()
    return outputs.detach(), x.grad, w.grad


def _weighted_sum(outputs: torch.Tensor) -> torch.Tensor:
    # Distinct weights per output column so every column's gradient is checked.
    return (outputs * torch.arange(1, outputs.shape[1] + 1, dtype=outputs.dtype)).sum()


def engine(spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor, strategy: str):
    dtype = torch.float64 if spec.precision == "double" else torch.float32
    x = inputs.detach().to(dtype).requires_grad_(True)
    w = weights.detach().to(dtype).requires_grad_(True)
    outputs = execute(spec, x, w, strategy=strategy)
    _weighted_sum(outputs).backward()
    zeros = torch.zeros_like
    return outputs.detach(), (x.grad if x.grad is not None else zeros(x)), w.grad


def assert_matches(spec, inputs, weights, strategy, tolerance):
    expected, expected_dx, expected_dw = reference(spec, inputs, weights)
    outputs, dx, dw = engine(spec, inputs, weights, strategy)
    assert torch.allclose(outputs.double(), expected, atol=tolerance), (outputs - expected).abs().max()
    if expected_dx is None:
        expected_dx = torch.zeros_like(dx)
    # Gradients to the same stated tolerance as outputs (1e-6 double, 1e-4 single).
    assert torch.allclose(dx.double(), expected_dx, atol=tolerance), (dx - expected_dx).abs().max()
    assert torch.allclose(dw.double(), expected_dw, atol=tolerance), (dw - expected_dw).abs().max()


def random_case(spec: CircuitSpec, batch: int = 5, n_inputs: int | None = None, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch, n_inputs or spec.n_qubits, generator=generator, dtype=torch.float64) * 6 - 3
    weights = torch.rand(spec.weight_shape, generator=generator, dtype=torch.float64) * 6.3
    return inputs, weights


COMBINATIONS = list(itertools.product(
    ["strongly_entangling", "basic_entangler", "ry_cnot"], ["X", "Y", "Z"], [False, True],
    ["expval_z", "probs"]))


class TestExactness:
    @pytest.mark.parametrize("strategy", FAST)
    @pytest.mark.parametrize(("ansatz", "rotation", "reupload", "measurement"), COMBINATIONS)
    def test_every_combination_float64(self, strategy, ansatz, rotation, reupload, measurement):
        if strategy == "folded" and reupload:
            pytest.skip("folded does not run re-uploading circuits (covered by fallback tests)")
        for n_qubits in (1, 2, 3, 5):
            spec = CircuitSpec(n_qubits=n_qubits, ansatz=ansatz, embedding_rotation=rotation,
                               reupload=reupload, measurement=measurement, n_layers=3, precision="double")
            assert_matches(spec, *random_case(spec, seed=n_qubits), strategy, 1e-6)

    @pytest.mark.parametrize("strategy", FAST)
    def test_float32(self, strategy):
        spec = CircuitSpec(n_qubits=6, n_layers=2)
        assert_matches(spec, *random_case(spec), strategy, 1e-4)

    @pytest.mark.parametrize("n_qubits", [7, 8, 10])
    def test_folded_at_the_sizes_auto_picks_it(self, n_qubits):
        # `auto` chooses the folded strategy for small circuits with large batches, up to 8
        # qubits and beyond; it is checked where it is used, not only up to 6 qubits.
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=2, precision="double")
        assert_matches(spec, *random_case(spec, batch=4), "folded", 1e-6)

    @pytest.mark.parametrize("n_qubits", [8, 10, 12])
    def test_wide_circuits_statevector(self, n_qubits):
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=2, precision="double")
        assert_matches(spec, *random_case(spec, batch=3), "statevector", 1e-6)

    def test_fewer_features_than_qubits(self):
        spec = CircuitSpec(n_qubits=4, n_layers=2, precision="double")
        for strategy in FAST:
            assert_matches(spec, *random_case(spec, n_inputs=2), strategy, 1e-6)

    def test_state_output_equals_pennylane_state(self):
        spec = CircuitSpec(n_qubits=3, n_layers=2, measurement="state", precision="double",
                           embedding_rotation="Z")
        inputs, weights = random_case(spec)
        qnode = build_qnode(spec.model_copy(update={"strategy": "device"}), "default.qubit", "backprop")
        expected = qnode(inputs, weights)
        assert torch.allclose(execute(spec, inputs, weights, "statevector"), expected, atol=1e-10)

    @settings(max_examples=25, deadline=None)
    @given(n_qubits=st.integers(1, 6), n_layers=st.integers(1, 4),
           ansatz=st.sampled_from(["strongly_entangling", "basic_entangler", "ry_cnot"]),
           rotation=st.sampled_from(["X", "Y", "Z"]), reupload=st.booleans(),
           measurement=st.sampled_from(["expval_z", "probs"]), batch=st.integers(1, 7),
           seed=st.integers(0, 10_000))
    def test_property_auto_matches_reference(self, n_qubits, n_layers, ansatz, rotation, reupload,
                                             measurement, batch, seed):
        spec = CircuitSpec(n_qubits=n_qubits, n_layers=n_layers, ansatz=ansatz, embedding_rotation=rotation,
                           reupload=reupload, measurement=measurement, precision="double")
        assert_matches(spec, *random_case(spec, batch=batch, seed=seed), "auto", 1e-6)


class TestPlanning:
    def test_small_wide_batches_fold(self):
        assert plan(CircuitSpec(n_qubits=4), 1000).strategy == "folded"

    def test_many_qubits_use_the_state_vector(self):
        assert plan(CircuitSpec(n_qubits=12), 256).strategy == "statevector"

    def test_shots_and_noise_run_on_the_density_matrix_strategy(self):
        assert plan(CircuitSpec(n_qubits=2, shots=100), 10).strategy == "density_matrix"
        noisy = CircuitSpec(n_qubits=2, noise=NoiseModel(depolarizing=0.1))
        chosen = plan(noisy, 10)
        assert chosen.strategy == "density_matrix" and chosen.rejected["folded"].startswith("noise")
        assert "density_matrix" in chosen.rejected["device"]

    def test_explicit_strategy_falls_back_with_a_warning(self):
        spec = CircuitSpec(n_qubits=3, reupload=True, precision="double")
        inputs, weights = random_case(spec)
        with pytest.warns(FallbackWarning, match="re-uploading"):
            outputs = execute(spec, inputs, weights, strategy="folded")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert torch.allclose(outputs, execute(spec, inputs, weights, strategy="statevector"))

    def test_unknown_strategy(self):
        with pytest.raises(CircuitError, match="unknown strategy 'gpu'"):
            plan(CircuitSpec(), 1, "gpu")


class TestDevices:
    def test_lightning_adjoint_matches(self):
        spec = CircuitSpec(n_qubits=3, n_layers=2, strategy="device", device="lightning.qubit",
                           diff_method="adjoint", precision="double")
        inputs, weights = random_case(spec, batch=3)
        expected, _, expected_dw = reference(spec, inputs, weights)
        outputs, _, dw = engine(spec, inputs, weights, "device")
        assert torch.allclose(outputs, expected, atol=1e-8)
        assert torch.allclose(dw, expected_dw, atol=1e-6)

    def test_depolarizing_noise_shrinks_expectations(self):
        exact = CircuitSpec(n_qubits=2, n_layers=1, ansatz="ry_cnot", precision="double")
        noisy = exact.model_copy(update={"noise": NoiseModel(depolarizing=0.2)})
        inputs = torch.zeros(2, 2, dtype=torch.float64)
        weights = torch.zeros(exact.weight_shape, dtype=torch.float64)
        assert torch.allclose(execute(exact, inputs, weights), torch.ones(2, 2, dtype=torch.float64))
        # PennyLane's single-qubit depolarizing channel maps <Z> to (1 - 4p/3) <Z>, after every
        # gate on each of its wires. Wire 0: embedding RY, ansatz RY, CNOT: three times. Wire 1:
        # twice before the CNOT, which makes <Z1> the old <Z0 Z1> (s^2 s^2), then once more.
        s = 1 - 4 * 0.2 / 3
        expected = torch.tensor([[s**3, s**5]] * 2, dtype=torch.float64)
        assert torch.allclose(execute(noisy, inputs, weights), expected, atol=1e-10)

    def test_finite_shots_estimate_within_sampling_error(self):
        spec = CircuitSpec(n_qubits=2, n_layers=1, shots=4000, precision="double")
        inputs, weights = random_case(spec, batch=2)
        exact = execute(spec.model_copy(update={"shots": None}), inputs, weights)
        sampled = execute(spec, inputs, weights)
        assert not torch.equal(sampled, exact)
        assert torch.allclose(sampled, exact, atol=0.1)  # std of a 4000-shot <Z> is <= 0.016


class TestBadSpecsAndInputs:
    def test_zero_qubits(self):
        with pytest.raises(CircuitError, match="n_qubits: Input should be greater than or equal to 1"):
            CircuitSpec(n_qubits=0)

    def test_unknown_gate(self):
        with pytest.raises(CircuitError, match=r"unknown circuit 'toffoli_wall'; registered: .*'qcnn'"):
            CircuitSpec(ansatz="toffoli_wall")

    def test_too_many_features(self):
        spec = CircuitSpec(n_qubits=3)
        with pytest.raises(CircuitError, match="takes 1 to 3 features, got 5"):
            execute(spec, torch.zeros(2, 5), torch.zeros(spec.weight_shape))

    def test_wrong_weight_shape(self):
        with pytest.raises(CircuitError, match=r"expected weights of shape \(2, 3, 3\), got \(2, 3\)"):
            execute(CircuitSpec(n_qubits=3), torch.zeros(2, 3), torch.zeros(2, 3))

    def test_nan_inputs(self):
        spec = CircuitSpec(n_qubits=2)
        inputs = torch.zeros(3, 2)
        inputs[2, 0] = float("nan")
        with pytest.raises(CircuitError, match=r"NaN/inf \(first rows: \[2\]\)"):
            execute(spec, inputs, torch.zeros(spec.weight_shape))

    def test_empty_batch(self):
        spec = CircuitSpec(n_qubits=2)
        with pytest.raises(CircuitError, match="empty"):
            execute(spec, torch.zeros(0, 2), torch.zeros(spec.weight_shape))

    def test_a_noisy_circuit_reports_measurements_not_the_state(self):
        with pytest.raises(CircuitError, match="'state' needs an exact, noiseless circuit"):
            CircuitSpec(noise={"depolarizing": 0.1}, measurement="state")

    def test_noise_does_not_run_on_a_device_that_takes_no_noise_model(self):
        spec = CircuitSpec(n_qubits=2, noise={"depolarizing": 0.1}, strategy="device")
        inputs, weights = random_case(spec)
        with pytest.raises(CircuitError, match="no strategy can run.*'default.qubit' takes no hqray noise model"):
            execute(spec, inputs, weights)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    spec = CircuitSpec(n_qubits=6, n_layers=2)
    inputs, weights = random_case(spec)
    for strategy in FAST:
        cpu = execute(spec, inputs.float(), weights.float(), strategy)
        gpu = execute(spec, inputs.float().cuda(), weights.float().cuda(), strategy)
        assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)

