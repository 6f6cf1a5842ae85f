"""The model-family registry: generations and estimator families behind one lookup."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from pydantic import BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression

from hqray.errors import ConfigError
from hqray.models import list_generations
from hqray.training.families import KernelOptions, ModelFamily, get_family, list_families, register_family


def test_every_generation_and_kernel_family_is_listed_with_its_kind():
    families = {family.name: family for family in list_families()}
    assert set(families) >= {g.id for g in list_generations()} | {"qsvm", "iqp_kernel", "projected_kernel"}
    assert families["g0"].kind == "classical" and families["g6"].kind == "variational"
    assert {families[name].kind for name in ("qsvm", "iqp_kernel", "projected_kernel")} == {"kernel"}
    assert families["g6"].trains_by_epoch and not families["qsvm"].trains_by_epoch
    assert families["qsvm"].is_quantum and not families["g0"].is_quantum


def test_unknown_names_list_the_known_families():
    with pytest.raises(ConfigError, match=r"unknown model family or generation 'qsvn'.*'qsvm'.*'iqp_kernel'"):
        get_family("qsvn")


def test_family_settings_are_validated_naming_the_field():
    assert get_family("projected_kernel").validate({"gamma": 0.5})["kernel"] == "projected"
    with pytest.raises(ConfigError, match=r"iqp_kernel: C: Input should be greater than 0"):
        get_family("iqp_kernel").validate({"C": -1.0})
    with pytest.raises(ConfigError, match=r"qsvm: embedding: .*unknown circuit 'nope'"):
        get_family("qsvm").validate({"embedding": "nope"})
    with pytest.raises(ConfigError, match=r"kernels: unknown field"):
        get_family("qsvm").validate({"kernels": "fidelity"})


class _LogregOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    C: float = Field(1.0, gt=0)


def _logreg(settings, seed):
    return LogisticRegression(C=settings["C"], random_state=seed)


def test_registration_refuses_taken_names_and_unknown_options():
    with pytest.raises(ConfigError, match="'g6' is registered twice"):
        register_family(ModelFamily(name="g6", kind="classical", title="t", description="d",
                                    options=_LogregOptions, estimator=_logreg))
    with pytest.raises(ConfigError, match=r"names unknown options \['penalty'\]"):
        register_family(ModelFamily(name="t_logreg", kind="classical", title="t", description="d",
                                    options=_LogregOptions, defaults={"penalty": "l1"}, estimator=_logreg))
    with pytest.raises(ConfigError, match="needs options and an estimator"):
        register_family(ModelFamily(name="t_logreg", kind="classical", title="t", description="d"))
    with pytest.raises(ConfigError, match="is a generation"):
        get_family("g6").build({}, seed=0)


def test_the_iqp_kernel_family_is_the_iqp_embeddings_fidelity_kernel():
    """The family's fixed zero-weight ansatz must leave |<x|x'>|^2 of IQPEmbedding unchanged."""
    rows = np.random.default_rng(0).uniform(-1, 1, size=(5, 3))
    model = get_family("iqp_kernel").build({"n_qubits": 3}, seed=0)
    model.fit(rows, np.array([0, 1, 0, 1, 1]))
    states = model.kernel_.states(model._angles(rows))
    ours = np.abs(states.conj() @ states.T) ** 2

    @qml.qnode(qml.device("default.qubit", wires=3))
    def embedded(x):
        qml.IQPEmbedding(x, wires=range(3))
        return qml.state()

    reference = np.stack([np.asarray(embedded(angles)) for angles in model._angles(rows)])
    np.testing.assert_allclose(ours, np.abs(reference.conj() @ reference.T) ** 2, atol=1e-6)


def test_kernel_options_are_one_model_for_every_kernel_family():
    assert {get_family(name).options for name in ("qsvm", "iqp_kernel", "projected_kernel")} == {KernelOptions}


BENCHMARK = ["circuit_centric", "data_reuploading", "dressed_quantum_circuit", "iqp_variational",
             "separable_variational", "tree_tensor", "qcnn_classifier"]


@pytest.mark.parametrize("name", BENCHMARK)
def test_the_benchmark_papers_variational_families_train(name):
    import torch

    from hqray.models import HybridNet, make_config, pca_width

    config = make_config(name)
    width = 10 if config.pre_net else pca_width(config)  # what each sees of 10 features
    net = HybridNet(config, width, 2)
    loss = net(torch.rand(6, width)).logsumexp(dim=1).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert get_family(name).kind == "variational" and get_family(name).search_space["learning_rate"] == {
        "choice": [0.001, 0.01, 0.1]}


def test_the_separable_controls_have_no_two_qubit_gate():
    import torch

    from hqray.models import circuit_spec, make_config
    from hqray.quantum.compiler import record_tape
    from hqray.quantum.noise import _gates

    spec = circuit_spec(make_config("separable_variational", n_layers=2))
    circuit = spec.to_circuit()
    tape = record_tape(circuit.qfunc(), torch.rand(3, spec.n_qubits), torch.rand(circuit.weight_shape))
    gates = _gates(tape.operations)  # templates decomposed to the gates a device runs
    assert gates and all(len(op.wires) == 1 for op in gates)
    kernel = get_family("separable_kernel").build({"n_qubits": 3}, seed=0)
    rows = np.random.default_rng(1).uniform(-1, 1, size=(4, 3))
    kernel.fit(rows, np.array([0, 1, 0, 1]))
    states = kernel.kernel_.states(kernel._angles(rows))
    # A product state's amplitudes factor: |psi> = (x)_w (cos, sin) of each wire's angle.
    angles = kernel._angles(rows)
    products = np.ones((4, 1))
    for wire in range(3):
        products = (products[:, :, None] * np.stack([np.cos(angles[:, wire] / 2), np.sin(angles[:, wire] / 2)],
                                                    axis=1)[:, None, :]).reshape(4, -1)
    gram = np.abs(states.conj() @ states.T) ** 2
    np.testing.assert_allclose(gram, np.abs(products @ products.T) ** 2, atol=1e-6)


def test_the_iqp_kernel_repeats_its_embedding_as_the_paper_searches():
    rows = np.random.default_rng(0).uniform(-1, 1, size=(4, 3))
    model = get_family("iqp_kernel").build({"n_qubits": 3, "repeats": 2}, seed=0).fit(rows, np.array([0, 1, 0, 1]))
    states = model.kernel_.states(model._angles(rows))

    @qml.qnode(qml.device("default.qubit", wires=3))
    def embedded(x):
        qml.IQPEmbedding(x, wires=range(3), n_repeats=2)
        return qml.state()

    reference = np.stack([np.asarray(embedded(angles)) for angles in model._angles(rows)])
    np.testing.assert_allclose(np.abs(states.conj() @ states.T) ** 2, np.abs(reference.conj() @ reference.T) ** 2,
                               atol=1e-5)  # single-precision states
    with pytest.raises(ConfigError, match=r"repeats = 2: the 'angle' embedding does not repeat"):
        get_family("qsvm").validate({"repeats": 2})
