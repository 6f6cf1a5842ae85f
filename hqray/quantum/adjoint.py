"""Batched state-vector simulation with adjoint differentiation.

Layout trick: a layer's single-qubit gates act on disjoint wires, so they are grouped into
blocks of up to ``BLOCK_WIRES`` wires (a Kronecker product of 2x2 gates). A block acts on
the *last* wires of the state and one batched matrix product writes its result with those
wires moved to the *front*; after the blocks of a layer have covered every wire the
original wire order is back. Each block is thus one read and one write of the state, with
no transposing copies.

Differentiation: autograd would keep every intermediate state. All gates are unitary, so
the backward pass walks the circuit in reverse, un-applying each block to the final state
and to the adjoint state; memory stays at a few states whatever the depth. The gradients
with respect to the block matrices (tiny tensors) go back to autograd, which chains them
to weights and inputs through the Kronecker products.

Gradient convention (PyTorch's): for a real loss ``L`` and complex ``z``,
``grad z = dL/dRe(z) + i dL/dIm(z)``; through ``z' = U z`` it propagates as
``grad z = U^H grad z'``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Circuit", "simulate", "BLOCK_WIRES", "layer_blocks"]

# 3-4 wires per block measured fastest here (a 2^n state, batched complex64 products).
BLOCK_WIRES = 4


def layer_blocks(n_qubits: int) -> list[tuple[int, int]]:
    """``(first_wire, size)`` of each block of a layer, in application order (from the end)."""
    blocks, end = [], n_qubits
    while end > 0:
        size = min(BLOCK_WIRES, end)
        blocks.append((end - size, size))
        end -= size
    return blocks


@dataclass(frozen=True)
class Circuit:
    """A gate list: ``("block", matrix_index, size)`` or ``("perm", layer)``.

    ``matrices[matrix_index]`` is ``(D, D)`` (shared by every row) or ``(B, D, D)`` (one per
    row), ``D = 2^size``. The blocks between two permutations must cover all wires.
    """

    n_qubits: int
    operations: tuple
    measurement: str  # "expval_z", "probs" or "state"


def _forward_block(state: torch.Tensor, matrix: torch.Tensor, size: int) -> torch.Tensor:
    batch = state.shape[0]
    rotated = torch.matmul(matrix, state.reshape(batch, -1, 2**size).transpose(1, 2))
    return rotated.reshape(batch, -1)


def _undo_block(state: torch.Tensor, matrix: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`_forward_block`: applies ``matrix^H`` and rotates the wires back."""
    batch = state.shape[0]
    restored = torch.matmul(state.reshape(batch, 2**size, -1).transpose(1, 2), matrix.conj())
    return restored.reshape(batch, -1)


def _block_sensitivity(adjoint_after: torch.Tensor, state_before: torch.Tensor, size: int,
                       per_row: bool) -> torch.Tensor:
    """``sum_r adjoint[i, r] conj(state[r, j])``: the gradient of the block matrix."""
    batch = state_before.shape[0]
    product = torch.matmul(adjoint_after.reshape(batch, 2**size, -1),
                           state_before.reshape(batch, -1, 2**size).conj())
    return product if per_row else product.sum(dim=0)


def _measure(state: torch.Tensor, measurement: str, z_signs: torch.Tensor) -> torch.Tensor:
    if measurement == "state":
        return state
    probabilities = state.real.square() + state.imag.square()
    return probabilities if measurement == "probs" else probabilities @ z_signs


class _Simulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, circuit, permutations, z_signs, initial, *matrices):
        with torch.no_grad():
            state = initial
            for operation in circuit.operations:
                if operation[0] == "perm":
                    state = state[:, permutations[operation[1]]]
                else:
                    state = _forward_block(state, matrices[operation[1]], operation[2])
        ctx.circuit = circuit
        ctx.save_for_backward(state, permutations, z_signs, *matrices)
        return _measure(state, circuit.measurement, z_signs)

    @staticmethod
    def backward(ctx, grad_output):
        state, permutations, z_signs, *matrices = ctx.saved_tensors
        circuit = ctx.circuit
        with torch.no_grad():
            if circuit.measurement == "state":
                adjoint = grad_output.to(state.dtype)
            else:
                weights = grad_output if circuit.measurement == "probs" else grad_output @ z_signs.T
                adjoint = 2 * state * weights.to(state.real.dtype)
            grads = [torch.zeros_like(m) if ctx.needs_input_grad[4 + i] else None
                     for i, m in enumerate(matrices)]
            inverse_permutations = torch.argsort(permutations, dim=1)
            for operation in reversed(circuit.operations):
                if operation[0] == "perm":
                    inverse = inverse_permutations[operation[1]]
                    state, adjoint = state[:, inverse], adjoint[:, inverse]
                    continue
                _, index, size = operation
                matrix = matrices[index]
                state = _undo_block(state, matrix, size)
                if grads[index] is not None:
                    grads[index] += _block_sensitivity(adjoint, state, size, matrix.ndim == 3)
                adjoint = _undo_block(adjoint, matrix, size)
        grad_initial = adjoint if ctx.needs_input_grad[3] else None
        return (None, None, None, grad_initial, *grads)


def simulate(
    circuit: Circuit,
    permutations: torch.Tensor,
    z_signs: torch.Tensor,
    initial: torch.Tensor,
    matrices: list[torch.Tensor],
) -> torch.Tensor:
    """Runs ``circuit`` from ``initial`` states ``(B, 2^n)``; differentiable by the adjoint method.

    Args:
        circuit: the operation list.
        permutations: ``(L, 2^n)`` index maps of the CNOT blocks.
        z_signs: ``(2^n, n)`` Z-eigenvalue table (for ``expval_z``).
        initial: complex initial states.
        matrices: block matrices, ``(D, D)`` shared or ``(B, D, D)`` per row.

    Returns:
        The measurement: ``(B, n)`` expectations, ``(B, 2^n)`` probabilities or states.
    """
    return _Simulate.apply(circuit, permutations, z_signs, initial, *matrices)
