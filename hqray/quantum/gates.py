"""Torch building blocks shared by the fast strategies.

Basis convention (PennyLane's): wire 0 is the most significant bit of a basis index.
Every function works on whatever device and dtype its tensors have.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from hqray.quantum.spec import CircuitSpec

__all__ = [
    "complex_dtype",
    "real_dtype",
    "rotation_matrices",
    "entangler_inverse_permutations",
    "z_sign_table",
    "embedding_factors",
    "product_state",
]


def real_dtype(spec: CircuitSpec) -> torch.dtype:
    return torch.float32 if spec.precision == "single" else torch.float64


def complex_dtype(spec: CircuitSpec) -> torch.dtype:
    return torch.complex64 if spec.precision == "single" else torch.complex128


def rotation_matrices(spec: CircuitSpec, weights: torch.Tensor) -> torch.Tensor:
    """The single-qubit gate of every (layer, wire): complex tensor ``(L, n, 2, 2)``.

    ``strongly_entangling`` uses Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi);
    ``basic_entangler`` uses RX(w); ``ry_cnot`` uses RY(w).
    """
    cdtype = complex_dtype(spec)
    if spec.ansatz == "strongly_entangling":
        phi, theta, omega = weights.unbind(-1)
        cos, sin = torch.cos(theta / 2), torch.sin(theta / 2)
        plus = torch.polar(torch.ones_like(phi), -(phi + omega) / 2)  # e^{-i(phi+omega)/2}
        minus = torch.polar(torch.ones_like(phi), (phi - omega) / 2)  # e^{i(phi-omega)/2}
        row0 = torch.stack([plus * cos, -minus * sin], dim=-1)
        row1 = torch.stack([minus.conj() * sin, plus.conj() * cos], dim=-1)
        return torch.stack([row0, row1], dim=-2).to(cdtype)
    cos, sin = torch.cos(weights / 2), torch.sin(weights / 2)
    if spec.ansatz == "basic_entangler":
        zero = torch.zeros_like(cos)
        cos_c, msin_c = torch.complex(cos, zero), torch.complex(zero, -sin)
        return torch.stack([torch.stack([cos_c, msin_c], -1), torch.stack([msin_c, cos_c], -1)], -2)
    # ry_cnot: real gates, kept real so the folded strategy can stay in real arithmetic.
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


@lru_cache(maxsize=256)
def _inverse_permutations(n_qubits: int, pairs_per_layer: tuple[tuple[tuple[int, int], ...], ...]) -> np.ndarray:
    indices = np.arange(2**n_qubits)
    bits = (indices[:, None] >> (n_qubits - 1 - np.arange(n_qubits))[None, :]) & 1
    weights = 1 << (n_qubits - 1 - np.arange(n_qubits))
    result = np.empty((len(pairs_per_layer), 2**n_qubits), dtype=np.int64)
    for layer, pairs in enumerate(pairs_per_layer):
        layer_bits = bits.copy()
        for control, target in pairs:
            layer_bits[:, target] ^= layer_bits[:, control]
        image = layer_bits @ weights  # f(b): where basis state b goes
        result[layer] = np.argsort(image)  # f^{-1}(j): new[j] = old[f^{-1}(j)]
    return result


def entangler_inverse_permutations(spec: CircuitSpec, device: torch.device) -> torch.Tensor:
    """Per layer, the index map of its CNOT block: ``new_state[j] = state[perm[layer, j]]``.

    A CNOT block only permutes basis states, so a whole layer of CNOTs is one gather.
    """
    pairs = tuple(tuple(spec.entangler_pairs(layer)) for layer in range(spec.n_layers))
    return torch.from_numpy(_inverse_permutations(spec.n_qubits, pairs)).to(device)


@lru_cache(maxsize=64)
def _z_signs(n_qubits: int) -> np.ndarray:
    indices = np.arange(2**n_qubits)
    bits = (indices[:, None] >> (n_qubits - 1 - np.arange(n_qubits))[None, :]) & 1
    return 1.0 - 2.0 * bits


def z_sign_table(n_qubits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2^n, n)`` table of the eigenvalue of Z on each wire for each basis state."""
    return torch.as_tensor(_z_signs(n_qubits), dtype=dtype, device=device)


def embedding_factors(spec: CircuitSpec, inputs: torch.Tensor) -> torch.Tensor:
    """Per-qubit real amplitude pairs of the embedded product state: ``(B, n, 2)``.

    RY(x)|0> = [cos x/2, sin x/2]; RX(x)|0> = [cos x/2, -i sin x/2], whose ``-i`` per
    excited qubit is a fixed phase handled by :func:`embedding_phases`; RZ(x)|0> is |0>
    up to a global phase. Wires without a feature stay in |0>.
    """
    batch, n_inputs = inputs.shape
    half = inputs / 2
    if spec.embedding_rotation == "Z":
        pairs = torch.stack([torch.ones_like(half), torch.zeros_like(half)], dim=-1)
    else:
        pairs = torch.stack([torch.cos(half), torch.sin(half)], dim=-1)
    if n_inputs < spec.n_qubits:
        idle = inputs.new_zeros(batch, spec.n_qubits - n_inputs, 2)
        idle[..., 0] = 1.0
        pairs = torch.cat([pairs, idle], dim=1)
    return pairs


def kron_matrices(matrices: torch.Tensor, batched: bool = False) -> torch.Tensor:
    """Kronecker product of ``(..., k, 2, 2)`` gates, the first most significant.

    Returns ``(2^k, 2^k)``, or ``(B, 2^k, 2^k)`` when ``batched`` (one product per row).
    """
    if not batched:
        matrices = matrices.unsqueeze(0)
    product = matrices[:, 0]
    for index in range(1, matrices.shape[1]):
        size = product.shape[-1] * 2
        product = torch.einsum("bij,bkl->bikjl", product, matrices[:, index]).reshape(-1, size, size)
    return product if batched else product[0]


def embedding_matrices(spec: CircuitSpec, inputs: torch.Tensor) -> torch.Tensor:
    """The embedding rotation of every (row, wire) as complex ``(B, n, 2, 2)`` matrices.

    Wires beyond the number of features get the identity.
    """
    if inputs.shape[1] < spec.n_qubits:
        inputs = torch.cat([inputs, inputs.new_zeros(inputs.shape[0], spec.n_qubits - inputs.shape[1])], 1)
    half = inputs / 2
    cos = torch.complex(torch.cos(half), torch.zeros_like(half))
    sin = torch.complex(torch.sin(half), torch.zeros_like(half))
    zero = torch.zeros_like(cos)
    if spec.embedding_rotation == "Y":
        rows = ((cos, -sin), (sin, cos))
    elif spec.embedding_rotation == "X":
        rows = ((cos, -1j * sin), (-1j * sin, cos))
    else:
        rows = ((cos - 1j * sin, zero), (zero, cos + 1j * sin))
    matrix = torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
    return matrix.to(complex_dtype(spec))


def kron_rows(pairs: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product of per-qubit pairs ``(B, n, 2)`` -> ``(B, 2^n)``."""
    state = pairs[:, 0]
    for wire in range(1, pairs.shape[1]):
        state = (state[:, :, None] * pairs[:, wire, None, :]).reshape(pairs.shape[0], -1)
    return state


@lru_cache(maxsize=64)
def _popcount_phases(n_qubits: int) -> np.ndarray:
    popcount = np.array([bin(i).count("1") for i in range(2**n_qubits)])
    return (-1j) ** popcount


def embedding_phases(spec: CircuitSpec, device: torch.device) -> torch.Tensor | None:
    """Fixed per-basis-state phase of the embedding, or ``None`` when it is all ones."""
    if spec.embedding_rotation != "X":
        return None
    return torch.as_tensor(_popcount_phases(spec.n_qubits), dtype=complex_dtype(spec), device=device)


def product_state(spec: CircuitSpec, inputs: torch.Tensor) -> torch.Tensor:
    """The exact embedded state ``(B, 2^n)`` as a complex tensor, global phase included."""
    cdtype = complex_dtype(spec)
    amplitudes = kron_rows(embedding_factors(spec, inputs)).to(cdtype)
    phases = embedding_phases(spec, inputs.device)
    if phases is not None:
        amplitudes = amplitudes * phases
    if spec.embedding_rotation == "Z":
        global_phase = torch.polar(torch.ones_like(inputs[:, 0]), -inputs.sum(dim=1) / 2)
        amplitudes = amplitudes * global_phase[:, None].to(cdtype)
    return amplitudes
