"""Circuit specs, the batched execution engine and the quantum layer (no Ray here).

**Example**

>>> import torch
>>> from hqray.quantum import CircuitSpec, execute
>>> spec = CircuitSpec(n_qubits=2, n_layers=1)
>>> execute(spec, torch.zeros(4, 2), torch.zeros(spec.weight_shape)).shape
torch.Size([4, 2])
"""

from hqray._lazy import lazy_exports

# Everything here needs torch and PennyLane: it loads on first use.
__getattr__, __dir__ = lazy_exports(__name__, {
    "hqray.quantum.circuits": ["Circuit", "get_circuit", "list_circuits", "register_circuit"],
    "hqray.quantum.compiler": ["run_qfunc"],
    "hqray.quantum.engine": ["FallbackWarning", "Plan", "execute", "plan"],
    "hqray.quantum.kernels": ["QuantumKernel"],
    "hqray.quantum.layer": ["QuantumLayer"],
    "hqray.quantum.spec": ["CircuitSpec"],
    "hqray.quantum.strategies": ["ExecutionStrategy", "register_strategy", "strategy_registry"],
})

__all__ = [
    "Circuit",
    "CircuitSpec",
    "ExecutionStrategy",
    "FallbackWarning",
    "Plan",
    "QuantumKernel",
    "QuantumLayer",
    "execute",
    "get_circuit",
    "list_circuits",
    "plan",
    "register_circuit",
    "register_strategy",
    "run_qfunc",
    "strategy_registry",
]
