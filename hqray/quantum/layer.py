"""QuantumLayer: a torch module whose forward pass runs a CircuitSpec on the engine."""

from __future__ import annotations

import torch
from torch import nn

from hqray.quantum.engine import execute
from hqray.quantum.spec import CircuitSpec

__all__ = ["QuantumLayer"]


class QuantumLayer(nn.Module):
    """Trainable circuit weights + batched execution: one engine call per batch.

    Args:
        spec: the circuit.
        init_scale: standard deviation of the initial weights; near zero keeps the
            initial circuit close to the identity and away from barren plateaus.

    **Example**

    >>> import torch
    >>> layer = QuantumLayer(CircuitSpec(n_qubits=3, n_layers=1))
    >>> layer(torch.zeros(5, 3)).shape
    torch.Size([5, 3])
    """

    def __init__(self, spec: CircuitSpec, init_scale: float = 0.05):
        super().__init__()
        self.spec = spec
        # Weights in the circuit's precision: float32 weights would put float32 rounding into
        # a double-precision circuit's gradients.
        dtype = torch.float64 if spec.precision == "double" else torch.float32
        self.weights = nn.Parameter(torch.randn(spec.weight_shape, dtype=dtype) * init_scale)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # The circuit runs in its own precision even inside autocast (generation g3):
        # amplitudes in bf16 would lose the small differences training depends on.
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            outputs = execute(self.spec, inputs.float() if inputs.dtype in
                              (torch.float16, torch.bfloat16) else inputs, self.weights)
        if self.spec.measurement == "state":
            return outputs
        return outputs.to(torch.float32 if inputs.dtype in (torch.float16, torch.bfloat16)
                          else inputs.dtype)

    def extra_repr(self) -> str:
        s = self.spec
        return f"n_qubits={s.n_qubits}, ansatz={s.ansatz}, n_layers={s.n_layers}, strategy={s.strategy}"
