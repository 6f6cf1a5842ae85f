"""Circuit specs, the batched execution engine and the quantum layer (no Ray here).

**Example**

>>> import torch
>>> from hqray.quantum import CircuitSpec, execute
>>> spec = CircuitSpec(n_qubits=2, n_layers=1)
>>> execute(spec, torch.zeros(4, 2), torch.zeros(spec.weight_shape)).shape
torch.Size([4, 2])
"""

from hqray.quantum.engine import FallbackWarning, Plan, execute, plan
from hqray.quantum.kernels import QuantumKernel
from hqray.quantum.layer import QuantumLayer
from hqray.quantum.spec import CircuitSpec
from hqray.quantum.strategies import ExecutionStrategy, register_strategy, strategy_registry

__all__ = [
    "CircuitSpec",
    "ExecutionStrategy",
    "FallbackWarning",
    "Plan",
    "QuantumKernel",
    "QuantumLayer",
    "execute",
    "plan",
    "register_strategy",
    "strategy_registry",
]
