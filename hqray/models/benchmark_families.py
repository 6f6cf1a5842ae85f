"""The variational model families of Bowles, Ahmed & Schuld (2024), as hybrid-network presets.

"Better than classical? The subtle art of benchmarking quantum machine learning models"
compares quantum model families with classical ones on shared datasets; its code and
result tables are public (XanaduAI/qml-benchmarks). Each family here is one
:func:`register_generation` entry built from registered circuits: what the paper's model
computes, in hqray's terms, and its hyperparameter grid as the default search space (the
paper's ``learning_rate`` and ``n_layers`` values, ``batch_size`` 32). Where hqray's
version differs from the paper's, the entry says how. The kernel families (IQP kernel,
projected kernel, separable kernel) are estimator families in :mod:`hqray.training.families`.

**Example**

>>> from hqray.models import make_config
>>> config = make_config("separable_variational")
>>> config.circuit.ansatz_options, config.circuit.reupload
({'entangler': 'none'}, True)
"""

from __future__ import annotations

from hqray.models.generations import Generation, register_generation

__all__ = ["BENCHMARK_FAMILIES"]

_RATES = {"learning_rate": {"choice": [0.001, 0.01, 0.1]}, "batch_size": {"choice": [32]}}
_DEEP = {**_RATES, "n_layers": {"choice": [1, 5, 10, 15]}}

BENCHMARK_FAMILIES = [
    Generation("circuit_centric", "circuit-centric classifier (Schuld et al. 2020)",
               "Amplitude embedding of the (padded, normalised) features, strongly entangling layers, "
               "linear read-out. The paper's copies of the input (n_input_copies) are not modelled.",
               {"circuit": {"embedding": "amplitude", "ansatz": "strongly_entangling"}, "n_layers": 1},
               {**_RATES, "n_layers": {"choice": [1, 5, 10]}}),
    Generation("data_reuploading", "data re-uploading classifier (Perez-Salinas et al. 2020)",
               "Three features per qubit (the rot embedding: one Rot gate per qubit, so ceil(d / 3) qubits take "
               "d features) re-uploaded before every strongly entangling layer. The paper's trainable input "
               "scaling and fidelity cost are not modelled: a linear read-out of <Z> on every wire.",
               {"circuit": {"embedding": "rot", "ansatz": "strongly_entangling", "reupload": True},
                "n_layers": 5},
               dict(_DEEP)),
    Generation("dressed_quantum_circuit", "dressed quantum circuit (Mari et al. 2020)",
               "A learned linear input layer (every feature -> n_qubits angles), RY + CNOT-chain layers, "
               "a learned linear output layer, trained end to end.",
               {"pre_net": True, "circuit": "ry_cnot", "n_layers": 5},
               dict(_DEEP)),
    Generation("iqp_variational", "IQP variational classifier (Havlicek et al. 2019)",
               "The IQP (ZZ) feature map followed by trainable strongly entangling layers.",
               {"circuit": {"embedding": "iqp", "ansatz": "strongly_entangling"}, "n_layers": 5},
               dict(_DEEP)),
    Generation("separable_variational", "separable variational classifier (no entanglement)",
               "The control for entanglement: the angle embedding re-uploaded before RY-RZ layers with no "
               "two-qubit gate, so every state stays a product state.",
               {"circuit": {"embedding": "angle", "ansatz": "hardware_efficient",
                            "ansatz_options": {"entangler": "none"}, "reupload": True}, "n_layers": 3},
               {**_RATES, "n_layers": {"choice": [1, 3, 5, 10]}}),
    Generation("tree_tensor", "tree tensor network classifier (Grant et al. 2018)",
               "The amplitude embedding of the (padded, normalised) features, as the paper's, then a binary "
               "tree of trainable two-qubit blocks down to one readout wire (n_qubits a power of 2).",
               {"circuit": {"embedding": "amplitude", "ansatz": "tree_tensor"}, "n_layers": 1},
               dict(_RATES)),
    Generation("qcnn_classifier", "quantum convolutional network (Cong et al. 2019)",
               "The angle embedding, then convolution and pooling levels down to one readout wire; for "
               "image data such as bars and stripes.",
               {"circuit": {"embedding": "angle", "ansatz": "qcnn"}, "n_layers": 1},
               dict(_RATES)),
]

for _family in BENCHMARK_FAMILIES:
    register_generation(_family)
