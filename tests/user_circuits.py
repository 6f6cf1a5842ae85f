"""A user's circuit module, as source text: tests write it into a directory of their own and
name it ``"<module>:ladder"``, the way a researcher's package reaches workers and checkpoints."""

LADDER_MODULE = """
import pennylane as qml
import hqray

@hqray.register_circuit("ladder", "ansatz", "RX then a CZ ladder", weight_shape=lambda n, layers, _: (layers, n))
def ladder(weights, wires, options):
    for layer in range(weights.shape[0]):
        for index, wire in enumerate(wires):
            qml.RX(weights[layer, index], wires=wire)
        for a, b in zip(wires[:-1], wires[1:]):
            qml.CZ(wires=[a, b])
"""
