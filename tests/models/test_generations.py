"""Every generation builds, trains a few steps, and does what its entry says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hqray.errors import ConfigError
from hqray.models import (
    ClassicalLinear,
    HybridNet,
    Int8DynamicLinear,
    list_generations,
    make_config,
    quantize_int8,
)
from hqray.training import HybridClassifier

# g7's layer runs on the QuantumPool (Ray): trained in tests/cluster/test_pool.py.
GENERATION_IDS = [g.id for g in list_generations() if g.id != "g7"]


def test_registry_lists_the_generations_in_numeric_order_then_the_others():
    from hqray.models.benchmark_families import BENCHMARK_FAMILIES

    ids = [g.id for g in list_generations()]
    assert ids[:11] == [f"g{i}" for i in range(11)]
    assert ids[11:] == sorted(family.id for family in BENCHMARK_FAMILIES)


def test_g7_without_the_ray_layer_is_a_clear_error():
    # A fresh interpreter: in this one another test module may have imported hqray.cluster.
    import subprocess
    import sys

    code = ("from hqray.models import HybridNet, make_config\n"
            "try:\n    HybridNet(make_config('g7'), n_features=4, n_classes=2)\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.stdout.strip() == ("ConfigError quantum_device 'pool' needs the Ray layer: "
                                        "import hqray.cluster first"), completed.stderr


@pytest.mark.parametrize("generation", GENERATION_IDS)
def test_every_generation_trains(generation):
    torch.manual_seed(0)
    model = HybridNet(make_config(generation), n_features=4, n_classes=3)
    inputs, labels = torch.randn(24, 4), torch.randint(0, 3, (24,))
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer = torch.optim.Adam(trainable, lr=0.05)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    if model.quantum is not None:
        assert not torch.equal(model.quantum.weights.detach(), before[[id(p) for p in trainable].index(
            id(model.quantum.weights))])


@pytest.mark.parametrize("generation", GENERATION_IDS)
def test_every_generation_has_defaults_and_a_search_space(generation):
    entry = next(g for g in list_generations() if g.id == generation)
    assert entry.search_space, f"{generation} has no search space"
    make_config(generation)  # defaults validate


class TestG0Sparsity:
    def test_small_weights_are_zero_in_the_forward_pass(self):
        layer = ClassicalLinear(10, 10, sparsity_threshold=0.2)
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(-0.5, 0.5, 100).reshape(10, 10))
        assert 0.3 < layer.sparsity() < 0.5
        effective = layer.effective_weight()
        assert (effective[layer.weight.abs() < 0.2] == 0).all()

    def test_pruned_weights_still_get_gradients(self):
        layer = ClassicalLinear(4, 2, sparsity_threshold=10.0)  # everything pruned
        layer(torch.randn(3, 4)).sum().backward()
        assert layer.weight.grad.abs().sum() > 0


class TestG2LoRA:
    def test_base_frozen_adapters_train(self):
        model = HybridNet(make_config("g2"), 4, 2)
        linear = model.post[0]
        assert not linear.weight.requires_grad
        assert linear.lora_a.requires_grad and linear.lora_b.requires_grad

    def test_adapters_start_as_the_base(self):
        layer = ClassicalLinear(6, 3, lora_rank=2)
        assert torch.equal(layer.effective_weight(), layer.weight)


class TestG3Autocast:
    def test_classical_layers_run_in_bfloat16(self):
        model = HybridNet(make_config("g3"), 4, 2)
        seen = []
        model.pre.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
        logits = model(torch.randn(5, 4))
        assert seen == [torch.bfloat16]
        assert logits.dtype == torch.float32


class TestG4Int8:
    def test_quantized_layer_stores_int8_and_tracks_float(self):
        torch.manual_seed(0)
        linear = torch.nn.Linear(16, 8)
        quantized = Int8DynamicLinear(linear)
        assert quantized.weight_int8.dtype == torch.int8
        inputs = torch.randn(32, 16)
        error = (quantized(inputs) - linear(inputs)).abs().max()
        assert 0 < error < 0.05  # quantized, so not identical, but close

    def test_quantize_replaces_every_classical_linear(self):
        model = HybridNet(make_config("g4"), 4, 2)
        quantized = quantize_int8(model)
        kinds = {type(m).__name__ for m in quantized.modules()}
        assert "Int8DynamicLinear" in kinds and "ClassicalLinear" not in kinds
        assert quantized.quantum is not None  # circuit untouched

    def test_classifier_predicts_through_int8(self):
        from sklearn.datasets import load_iris

        features, labels = load_iris(return_X_y=True)
        clf = HybridClassifier("g4", epochs=3).fit(features[:100], labels[:100])
        assert isinstance(clf.inference_model().pre, Int8DynamicLinear)


class TestG5Lightning:
    def test_uses_lightning_with_adjoint(self):
        model = HybridNet(make_config("g5"), 4, 2)
        spec = model.quantum.spec
        assert spec.strategy == "device" and spec.device.startswith("lightning")
        assert spec.diff_method == "adjoint"


class TestG9Medical:
    def test_threshold_reaches_the_sensitivity_target_on_validation_rows(self):
        from hqray.data import load_dataset

        data = load_dataset("breast_cancer")
        clf = HybridClassifier("g9", epochs=5)
        trainer = clf.begin_fit(data.features, data.labels)
        while not trainer.stopped:
            trainer.step()
        clf.end_fit()
        labels = trainer.validation_labels
        positive = trainer.validation_probabilities()[:, 1]
        target = clf.config_.sensitivity_target
        sensitivity = float((positive[labels == 1] >= clf.threshold_).mean())
        assert sensitivity >= target, (sensitivity, target)
        # The largest such threshold: any higher one misses the target (so it is not a trivial 0).
        higher = np.nextafter(clf.threshold_, 1.0)
        assert float((positive[labels == 1] >= higher).mean()) < target


class TestConfigErrors:
    def test_unknown_generation(self):
        with pytest.raises(ConfigError, match=r"unknown generation 'g99'"):
            make_config("g99")

    def test_unknown_field_named(self):
        with pytest.raises(ConfigError, match="lora_rnk: unknown field"):
            make_config("g2", lora_rnk=3)

    def test_features_wider_than_qubits_without_pca(self):
        with pytest.raises(ConfigError, match="6 features do not fit the angle embedding of 4 qubits"):
            HybridNet(make_config("g6"), n_features=6, n_classes=2)


def test_hybrid_net_is_deterministic_under_a_seed():
    torch.manual_seed(3)
    a = HybridNet(make_config("g6"), 4, 2)
    torch.manual_seed(3)
    b = HybridNet(make_config("g6"), 4, 2)
    inputs = torch.randn(4, 4)
    assert np.allclose(a(inputs).detach(), b(inputs).detach())
