"""HybridConfig holds one circuit: names set a part, dotted keys reach inside, old keys say where they went."""

from __future__ import annotations

import pytest
import torch

from hqray.errors import ConfigError
from hqray.models import HybridConfig, HybridNet, make_config
from hqray.quantum.circuits import CircuitChoice


def test_a_name_sets_the_part_of_the_generations_circuit_it_names():
    assert make_config("g1").circuit.label == "angle+ry_cnot"
    assert make_config("g1", circuit="iqp").circuit.label == "iqp+ry_cnot"  # the embedding, g1's ansatz kept
    assert make_config("g1", circuit="qcnn").circuit.label == "angle+qcnn"
    assert HybridConfig(circuit="iqp").circuit.label == "iqp+strongly_entangling"


def test_a_mapping_replaces_the_circuit_and_dotted_keys_reach_inside_it():
    replaced = make_config("g1", circuit={"embedding": "amplitude", "ansatz": "tree_tensor"})
    assert replaced.circuit == CircuitChoice(embedding="amplitude", ansatz="tree_tensor")
    dotted = make_config("g1", **{"circuit.reupload": True, "circuit.embedding_options": {"rotation": "X"}})
    assert dotted.circuit.label == "angle(rotation=X)+ry_cnot+reupload"


@pytest.mark.parametrize(("values", "said"), [
    ({"ansatz": "qcnn"}, "['ansatz'] belong to the circuit now: set circuit=<name> (e.g. circuit=qcnn) or "
                         "['circuit.ansatz']"),
    ({"circuit.depth": 2}, "no option 'circuit.depth'; dotted keys reach the circuit's"),
    ({"circuit": "qnn"}, "unknown circuit 'qnn'; registered: ['amplitude', 'angle'"),
    ({"circuit": {"ansatz": "iqp"}}, "'iqp' is an embedding, not an ansatz"),
    ({"circuit": "hardware_efficient", "circuit.ansatz_options": {"entangler": "star"}},
     "'hardware_efficient' options: entangler: Input should be 'linear', 'ring' or 'none' (got 'star')"),
    ({"circuit": "qcnn", "n_qubits": 1}, "'qcnn' needs at least 2 qubits, got 1"),
])
def test_bad_circuits_are_refused_naming_the_value_and_what_is_expected(values, said):
    with pytest.raises(ConfigError) as refused:
        HybridConfig(**values)
    assert said in str(refused.value)


def test_search_spaces_may_name_circuit_parts():
    assert HybridConfig.knows("circuit") and HybridConfig.knows("circuit.reupload") and HybridConfig.knows("n_layers")
    assert not HybridConfig.knows("circuit.depth") and not HybridConfig.knows("ansatz")


def test_a_readout_ansatz_feeds_only_its_readout_wire_to_the_post_net():
    torch.manual_seed(0)
    model = HybridNet(make_config("g6", circuit="qcnn", n_qubits=4), n_features=4, n_classes=2)
    assert model.post.weight.shape == (2, 1)  # qcnn pools 4 wires down to one
    torch.nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.arange(8) % 2).backward()
    assert model.quantum.weights.grad.abs().sum() > 0  # the loss reaches the circuit through that wire
