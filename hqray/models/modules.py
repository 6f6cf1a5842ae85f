"""Torch modules of the generations: classical linear layers with LoRA and sparsification,
exact INT8 dynamic quantization, and the hybrid network that composes them."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from hqray.errors import ConfigError
from hqray.models.config import HybridConfig
from hqray.quantum import CircuitSpec, QuantumLayer

__all__ = ["ClassicalLinear", "Int8DynamicLinear", "HybridNet", "quantize_int8", "circuit_spec",
           "register_quantum_backend", "QUANTUM_BACKENDS"]

# Factories ``(config, spec) -> nn.Module`` for quantum_device values beyond PennyLane devices
# and the engine; higher layers register theirs (hqray.cluster registers "pool").
QUANTUM_BACKENDS: dict[str, Callable[[HybridConfig, CircuitSpec], nn.Module]] = {}


def register_quantum_backend(name: str, factory: Callable[[HybridConfig, CircuitSpec], nn.Module]) -> None:
    """Makes ``quantum_device=name`` build its quantum layer with ``factory``."""
    QUANTUM_BACKENDS[name] = factory


class ClassicalLinear(nn.Module):
    """``nn.Linear`` with optional LoRA adapters (g2) and threshold sparsification (g0).

    With ``lora_rank > 0`` the base weight is frozen and only ``B @ A`` (rank ``r``,
    scaled by ``alpha / r``) and the bias train. With ``sparsity_threshold > 0`` weights
    of smaller magnitude are zero in the forward pass; a straight-through estimator keeps
    their gradients so they can grow back.

    **Example**

    >>> layer = ClassicalLinear(8, 4, lora_rank=2)
    >>> sum(p.numel() for p in layer.parameters() if p.requires_grad)  # A, B and bias
    28
    """

    def __init__(self, in_features: int, out_features: int, lora_rank: int = 0,
                 lora_alpha: float = 8.0, sparsity_threshold: float = 0.0):
        super().__init__()
        base = nn.Linear(in_features, out_features)
        self.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=lora_rank == 0)
        self.bias = nn.Parameter(base.bias.detach().clone())
        self.lora_rank = lora_rank
        self.sparsity_threshold = sparsity_threshold
        if lora_rank:
            self.lora_scale = lora_alpha / lora_rank
            self.lora_a = nn.Parameter(torch.randn(lora_rank, in_features) / math.sqrt(in_features))
            self.lora_b = nn.Parameter(torch.zeros(out_features, lora_rank))  # starts as the base

    def effective_weight(self) -> torch.Tensor:
        weight = self.weight
        if self.lora_rank:
            weight = weight + self.lora_scale * (self.lora_b @ self.lora_a)
        if self.sparsity_threshold > 0:
            kept = weight * (weight.abs() >= self.sparsity_threshold)
            weight = weight + (kept - weight).detach()  # straight-through
        return weight

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(inputs, self.effective_weight(), self.bias)

    def sparsity(self) -> float:
        """Fraction of effective weights that are zero."""
        with torch.no_grad():
            return float((self.effective_weight() == 0).float().mean())


class Int8DynamicLinear(nn.Module):
    """INT8 dynamic quantization of a linear layer (g4): int8 weights, int8 activations.

    Weights are quantized per output channel once; each input row is quantized on the
    fly with its own scale. Products of int8 values are accumulated exactly (float32
    holds integers below 2^24 exactly, and 127 * 127 * in_features stays below it for
    ``in_features <= 1040``), then rescaled: the arithmetic of an int8 GEMM, on any device.
    (``torch.ao.quantization.quantize_dynamic`` is deprecated and slated for removal.)
    """

    def __init__(self, linear: ClassicalLinear | nn.Linear):
        super().__init__()
        with torch.no_grad():
            weight = linear.effective_weight() if isinstance(linear, ClassicalLinear) else linear.weight
            scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).to(torch.int8))
            self.register_buffer("weight_scale", scale.float())
            self.register_buffer("bias", linear.bias.detach().clone().float())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.float()
        input_scale = inputs.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127.0
        inputs_int8 = torch.round(inputs / input_scale).clamp(-127, 127)
        accumulated = inputs_int8 @ self.weight_int8.float().T
        return accumulated * input_scale * self.weight_scale + self.bias


def circuit_spec(config: HybridConfig) -> CircuitSpec:
    """The CircuitSpec a config describes (``quantum_device`` resolved to a strategy)."""
    device = config.quantum_device
    if device == "lightning":
        device = "lightning.gpu" if _lightning_gpu_available() else "lightning.qubit"
    if device == "engine" or device in QUANTUM_BACKENDS:
        return CircuitSpec.from_choice(config.circuit, config.n_qubits, config.n_layers)
    return CircuitSpec.from_choice(config.circuit, config.n_qubits, config.n_layers, strategy="device", device=device,
                                   diff_method=config.diff_method, shots=config.shots)


def pca_width(config: HybridConfig) -> int | None:
    """How many PCA components each fold fits (when the data is wider), or None: every feature.

    ``pca=True`` asks for ``n_qubits``; ``pca=False`` for none. By default (``pca=None``) a
    model sees every feature unless it cannot take them: the classical MLP and a learned
    input layer (``pre_net``, the dressed circuits) take any width; a circuit fed directly
    is reduced to what its embedding takes (its registry entry says: one feature per qubit, 2^n for
    amplitude, 3n for rot).

    >>> from hqray.models import make_config
    >>> pca_width(make_config("g1")), pca_width(make_config("g6")), pca_width(make_config("g6", pca=False))
    (None, 4, None)
    """
    if config.pca is not None:
        return config.n_qubits if config.pca else None
    if not config.use_quantum or config.pre_net:
        return None
    return circuit_spec(config).n_features


def _lightning_gpu_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import pennylane as qml

        qml.device("lightning.gpu", wires=1)
        return True
    except Exception:  # plugin missing or no usable GPU: fall back to lightning.qubit
        return False


class HybridNet(nn.Module):
    """pre-net -> quantum layer -> post-net, or a classical MLP when ``use_quantum=False``.

    Args:
        config: the architecture.
        n_features: input width (after preprocessing).
        n_classes: number of output logits.
    """

    def __init__(self, config: HybridConfig, n_features: int, n_classes: int):
        super().__init__()
        self.autocast = config.autocast
        self.input_scale = config.input_scale

        def linear(n_in: int, n_out: int) -> ClassicalLinear:
            return ClassicalLinear(n_in, n_out, config.lora_rank, config.lora_alpha,
                                   config.sparsity_threshold)

        if not config.use_quantum:
            layers, width = [], n_features
            for _ in range(config.hidden_layers):
                layers += [linear(width, config.hidden_units), nn.ReLU()]
                width = config.hidden_units
            layers.append(linear(width, n_classes))
            self.pre, self.quantum, self.post = nn.Identity(), None, nn.Sequential(*layers)
            return
        spec = circuit_spec(config)
        if config.pre_net:
            self.pre = linear(n_features, config.n_qubits)
        else:
            if n_features > spec.n_features:
                raise ConfigError(
                    f"{n_features} features do not fit the {spec.embedding} embedding of {spec.n_qubits} qubits "
                    f"(at most {spec.n_features}); enable pca or pre_net, or raise n_qubits"
                )
            self.pre = nn.Identity()
        if config.quantum_device in QUANTUM_BACKENDS:
            self.quantum = QUANTUM_BACKENDS[config.quantum_device](config, spec)
        elif config.quantum_device == "pool":
            raise ConfigError("quantum_device 'pool' needs the Ray layer: import hqray.cluster first")
        else:
            self.quantum = QuantumLayer(spec)
        if config.post_hidden:
            self.post = nn.Sequential(linear(spec.n_outputs, config.post_hidden), nn.ReLU(),
                                      linear(config.post_hidden, n_classes))
        else:
            self.post = linear(spec.n_outputs, n_classes)

    def angles(self, hidden: torch.Tensor) -> torch.Tensor:
        """Maps features monotonically into (0, pi): ``pi/2 * (1 + tanh(scale * h))``.

        With an RY/RX embedding the read-out starts as ``<Z> = cos(angle)``, which is even in
        the angle: centred features would lose their sign. On (0, pi) cos is monotonic, and
        tanh bounds outliers without clipping.
        """
        return (math.pi / 2) * (1.0 + torch.tanh(self.input_scale * hidden))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        dtype = torch.bfloat16 if inputs.device.type == "cpu" else torch.float16
        with torch.autocast(device_type=inputs.device.type, dtype=dtype, enabled=self.autocast):
            hidden = self.pre(inputs)
            if self.quantum is not None:
                hidden = self.quantum(self.angles(hidden))
            logits = self.post(hidden)
        return logits.float()


def quantize_int8(model: HybridNet) -> HybridNet:
    """A copy of ``model`` whose classical linear layers are :class:`Int8DynamicLinear`.

    The quantum layer and everything else are unchanged. Used for inference only.
    """
    quantized = copy.deepcopy(model).eval()

    def replace(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, (ClassicalLinear, nn.Linear)):
                setattr(module, name, Int8DynamicLinear(child))
            else:
                replace(child)

    replace(quantized)
    return quantized
