"""Step tensors whose backward passes are written out by hand.

A small circuit's pass is bound by the number of torch calls, not by arithmetic: at four
qubits and 256 rows every call moves a few kilobytes. Recorded op by op, building the
product state and the shared dense blocks leaves autograd a graph of a few hundred nodes
whose backward pass cost more than the forward pass and the state evolution together. Each
function here is one graph node instead: its forward pass runs without recording, keeps
what its backward pass reads, and its backward pass is a handful of batched products.

Gradients follow torch's convention for complex tensors (the conjugate Wirtinger
derivative): for ``out = a * b`` the gradient of ``a`` is ``grad * conj(b)``; for
``C = A @ B``, ``grad_A = grad_C @ B^H`` and ``grad_B = A^H @ grad_C``. The functions are
checked against autograd's own gradients with ``torch.autograd.gradcheck`` in the tests.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["ProductState", "TreeProduct", "rotation_matrices", "ROTATION_NAMES"]


def _kronecker_tree(vectors: list[torch.Tensor]) -> tuple[torch.Tensor, tuple | int]:
    """The Kronecker product of per-row vectors ``(rows, d_i)``, first vector most significant,
    and the tree that made it (a leaf: 0; a node: ``(left tree, right tree, left product,
    right product, vectors on the left)``). Halves first: the large products then have long
    inner axes (a running product times a two-entry vector broadcasts over an axis of two,
    several times slower at 8 qubits)."""
    if len(vectors) == 1:
        return vectors[0], 0
    half = len(vectors) // 2
    (left, left_tree), (right, right_tree) = _kronecker_tree(vectors[:half]), _kronecker_tree(vectors[half:])
    product = (left[:, :, None] * right[:, None, :]).reshape(left.shape[0], -1)
    return product, (left_tree, right_tree, left, right, half)


def _kronecker_backward(tree: tuple | int, grad: torch.Tensor, out: list[torch.Tensor], offset: int = 0) -> None:
    """Each vector's gradient into ``out[position]``, given the product's gradient."""
    if isinstance(tree, int):
        out[offset] = grad
        return
    left_tree, right_tree, left, right, half = tree
    grad = grad.reshape(grad.shape[0], left.shape[1], right.shape[1])
    _kronecker_backward(left_tree, (grad @ right.conj()[:, :, None])[..., 0], out, offset)
    _kronecker_backward(right_tree, (left.conj()[:, None, :] @ grad)[:, 0], out, offset + half)


class ProductState(torch.autograd.Function):
    """The product state of per-wire gate sequences acting on ``|0>``.

    ``pool`` ``(gates, rows, 2, 2)`` holds every gate's matrix; ``first`` (or None) the
    pool position of each wire's first gate, applied to ``|0>`` by reading its first
    column; ``depths`` per later depth the wires that have a gate there and those gates'
    pool positions. Returns the Kronecker product of the wires' vectors, ``(rows, 2^n)``.
    """

    @staticmethod
    def forward(ctx, pool: torch.Tensor, first: torch.Tensor | None, depths: list, n_wires: int) -> torch.Tensor:
        if first is not None:
            vectors = pool.index_select(0, first)[..., 0]
        else:
            vectors = torch.zeros(n_wires, pool.shape[1], 2, dtype=pool.dtype, device=pool.device)
            vectors[:, :, 0] = 1
        history = []
        for wires, positions in depths:
            matrices, before = pool.index_select(0, positions), vectors.index_select(0, wires)
            history.append((matrices, before))
            vectors = vectors.index_copy(0, wires, (matrices @ before[..., None])[..., 0])
        state, tree = _kronecker_tree(list(vectors.unbind(0)))
        ctx.pool_shape, ctx.first, ctx.depths, ctx.history, ctx.tree = pool.shape, first, depths, history, tree
        return state

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        per_wire: list[torch.Tensor] = [None] * _wires(ctx.tree)
        _kronecker_backward(ctx.tree, grad, per_wire)
        vectors = torch.stack(per_wire)
        grad_pool = torch.zeros(ctx.pool_shape, dtype=grad.dtype, device=grad.device)
        for (wires, positions), (matrices, before) in zip(reversed(ctx.depths), reversed(ctx.history), strict=True):
            after = vectors.index_select(0, wires)
            grad_pool.index_add_(0, positions, after[..., :, None] * before.conj()[..., None, :])
            vectors = vectors.index_copy(0, wires, (matrices.conj().transpose(-2, -1) @ after[..., None])[..., 0])
        if ctx.first is not None:
            grad_pool[..., 0].index_add_(0, ctx.first, vectors)
        return grad_pool, None, None, None


def _wires(tree: tuple | int) -> int:
    return 1 if isinstance(tree, int) else _wires(tree[0]) + _wires(tree[1])


class TreeProduct(torch.autograd.Function):
    """``matrices`` ``(steps, slots, d, d)`` (slots a power of two, later gates at higher
    slots) multiplied pairwise, ``log2(slots)`` batched products deep: ``(steps, d, d)``."""

    @staticmethod
    def forward(ctx, matrices: torch.Tensor) -> torch.Tensor:
        levels = [matrices]
        while matrices.shape[1] > 1:
            matrices = matrices[:, 1::2] @ matrices[:, 0::2]
            levels.append(matrices)
        ctx.levels = levels[:-1]
        return matrices[:, 0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad[:, None]
        for level in reversed(ctx.levels):
            later, earlier = level[:, 1::2], level[:, 0::2]
            grad_later = grad @ earlier.conj().transpose(-2, -1)
            grad_earlier = later.conj().transpose(-2, -1) @ grad
            grad = torch.stack([grad_earlier, grad_later], dim=2).reshape(level.shape)
        return grad


# ---------------------------------------------------------------- gate matrices ------------
# A rotation's matrix is linear in a few real coefficients: RX(t) = cos(t/2) I - i sin(t/2) X,
# a controlled rotation adds a constant block, Rot(phi, theta, omega) (= RZ RY RZ) is linear in
# cos(theta/2) and sin(theta/2) times the cosines and sines of (phi +- omega) / 2. Building a
# group of gates is one product of their coefficients with the kind's basis, and its gradient
# is one product with the conjugate basis, then the coefficients' derivatives.

_I = np.eye(2)
_X = np.array([[0, 1], [1, 0]])
_Y = np.array([[0, -1j], [1j, 0]])
_P0, _P1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])

# name: (constant part or None, cos(t/2) part, sin(t/2) part)
_ROTATION_PARTS: dict[str, tuple] = {
    "RX": (None, _I, -1j * _X),
    "RY": (None, _I, -1j * _Y),
    "CRX": (np.kron(_P0, _I), np.kron(_P1, _I), np.kron(_P1, -1j * _X)),
    "CRY": (np.kron(_P0, _I), np.kron(_P1, _I), np.kron(_P1, -1j * _Y)),
    "IsingXX": (None, np.eye(4), -1j * np.kron(_X, _X)),
    "IsingYY": (None, np.eye(4), -1j * np.kron(_Y, _Y)),
}
# Rot's coefficients: cos(theta/2) cos(a), cos(theta/2) sin(a), sin(theta/2) cos(b),
# sin(theta/2) sin(b), with a = (phi + omega) / 2 and b = (phi - omega) / 2.
_ROT_BASIS = np.array([np.eye(2), np.diag([-1j, 1j]), [[0, -1], [1, 0]], [[0, -1j], [-1j, 0]]])
ROTATION_NAMES = frozenset(_ROTATION_PARTS) | {"Rot"}


@functools.lru_cache(maxsize=64)
def _basis(name: str, dtype: torch.dtype, device: str) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(constant (d*d,) or None, basis (coefficients, d*d))`` of a rotation kind."""
    if name == "Rot":
        return None, torch.as_tensor(_ROT_BASIS.reshape(4, 4), device=device).to(dtype)
    constant, cos_part, sin_part = _ROTATION_PARTS[name]
    basis = torch.as_tensor(np.stack([cos_part, sin_part]).reshape(2, -1), device=device).to(dtype)
    return (None if constant is None else torch.as_tensor(constant.reshape(-1), device=device).to(dtype)), basis


def _complex(real: torch.dtype) -> torch.dtype:
    return torch.complex128 if real == torch.float64 else torch.complex64


class RotationMatrices(torch.autograd.Function):
    """The matrices ``(*angle.shape, d, d)`` of a group of one-parameter rotations of one kind
    (``RX``, ``RY``, ``CRX``, ``CRY``, ``IsingXX``, ``IsingYY``), complex in the angles' precision."""

    @staticmethod
    def forward(ctx, angle: torch.Tensor, name: str) -> torch.Tensor:
        constant, basis = _basis(name, _complex(angle.dtype), str(angle.device))
        cos, sin = torch.cos(angle / 2), torch.sin(angle / 2)
        flat = torch.stack([cos, sin], -1).to(basis.dtype) @ basis
        if constant is not None:
            flat = flat + constant
        ctx.save_for_backward(cos, sin)
        ctx.basis = basis
        d = math.isqrt(basis.shape[1])
        return flat.reshape(*angle.shape, d, d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        along = (grad.reshape(*cos.shape, -1) @ ctx.basis.conj().T).real  # d loss / d (cos, sin)
        return 0.5 * (cos * along[..., 1] - sin * along[..., 0]), None


class RotMatrices(torch.autograd.Function):
    """The matrices ``(*phi.shape, 2, 2)`` of a group of ``Rot(phi, theta, omega)`` gates."""

    @staticmethod
    def forward(ctx, phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        _, basis = _basis("Rot", _complex(phi.dtype), str(phi.device))
        half = torch.stack([theta, phi + omega, phi - omega]) / 2  # theta / 2, a, b: one cos, one sin
        cos, sin = torch.cos(half), torch.sin(half)
        coefficients = (torch.stack([cos[0], cos[0], sin[0], sin[0]], -1)
                        * torch.stack([cos[1], sin[1], cos[2], sin[2]], -1))
        ctx.save_for_backward(cos, sin)
        ctx.basis = basis
        return (coefficients.to(basis.dtype) @ basis).reshape(*phi.shape, 2, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (cos, cos_a, cos_b), (sin, sin_a, sin_b) = ctx.saved_tensors[0].unbind(0), ctx.saved_tensors[1].unbind(0)
        g = (grad.reshape(*cos.shape, 4) @ ctx.basis.conj().T).real.unbind(-1)
        grad_theta = 0.5 * (cos * (g[2] * cos_b + g[3] * sin_b) - sin * (g[0] * cos_a + g[1] * sin_a))
        grad_a, grad_b = cos * (g[1] * cos_a - g[0] * sin_a), sin * (g[3] * cos_b - g[2] * sin_b)
        return 0.5 * (grad_a + grad_b), grad_theta, 0.5 * (grad_a - grad_b)


def rotation_matrices(name: str, *params: torch.Tensor) -> torch.Tensor:
    """A group of rotations' matrices, each parameter position stacked over the group."""
    return RotMatrices.apply(*params) if name == "Rot" else RotationMatrices.apply(params[0], name)
