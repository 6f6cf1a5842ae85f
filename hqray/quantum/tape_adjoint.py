"""Adjoint differentiation of compiled tapes: gradients with memory independent of depth.

The forward pass keeps only the final state. The backward pass walks the operations in
reverse with two states, ``psi`` (un-applying each gate) and the cotangent ``lam``
(``sum_m g_m O_m psi`` for expectation values, ``g_bucket(i) psi_i`` for probabilities):
an operation's parameters get ``2 Re <lam| dU/dtheta |psi_before>``, taken by torch on that
one gate, and torch's autograd carries them on to the inputs and weights the parameters
came from (``inputs[..., i] * weights[j]`` and the like).
"""

from __future__ import annotations

from collections.abc import Sequence

import pennylane as qml
import torch

__all__ = ["adjoint_outputs", "adjoint_supported"]


def adjoint_supported(measurements: Sequence) -> bool:
    """Whether every measurement has a real, differentiable output the adjoint pass handles."""
    from hqray.quantum.compiler import _measurement_kind

    return all(_measurement_kind(m) in ("expval", "probs") for m in measurements)


def _trainable(operations: Sequence[qml.operation.Operator]) -> list[tuple[int, int, torch.Tensor]]:
    """(operation index, parameter index, tensor) of every parameter that needs a gradient."""
    return [(k, j, p) for k, op in enumerate(operations) for j, p in enumerate(op.data)
            if torch.is_tensor(p) and p.requires_grad]


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run, *params):  # run: the _AdjointRun (state, operations, measurements)
        ctx.run = run
        return run.outputs

    @staticmethod
    def backward(ctx, grad_outputs):
        return (None, *ctx.run.parameter_gradients(grad_outputs))


class _AdjointRun:
    def __init__(self, operations, measurements, initial: torch.Tensor, n_wires: int, trainable):
        from hqray.quantum.compiler import _measure

        self.operations, self.measurements, self.n_wires, self.trainable = operations, measurements, n_wires, trainable
        with torch.no_grad():
            state = initial
            for op in operations:
                state = self._forward_op(op, state)
            self.final = state
            self.outputs = _measure(measurements, state.reshape(state.shape[0], -1), n_wires)

    def _forward_op(self, op, state: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.compiler import STATE_PREPARATIONS, _apply, _prepare

        if op.name in STATE_PREPARATIONS:
            return _prepare(op, self.n_wires, state.shape[0], state)
        return _apply(state, op, [int(w) for w in op.wires], self.n_wires)

    def _cotangent(self, grad_outputs: torch.Tensor) -> torch.Tensor:
        from hqray.quantum.compiler import _apply, _measurement_kind

        psi, n, batch = self.final, self.n_wires, self.final.shape[0]
        lam = torch.zeros_like(psi)
        column = 0
        for measurement in self.measurements:
            if _measurement_kind(measurement) == "expval":
                g = grad_outputs[:, column].to(psi.dtype).reshape(batch, *[1] * n)
                for coefficient, term in _terms(measurement.obs):
                    wires = [int(w) for w in term.wires]
                    applied = _apply(psi, term, wires, n) if wires else psi
                    lam = lam + (coefficient * g) * applied
                column += 1
            else:  # probs of some wires: every amplitude gets its bucket's weight
                wires = [int(w) for w in measurement.wires] or list(range(n))
                width = 2 ** len(wires)
                g = grad_outputs[:, column:column + width].reshape(batch, *[2] * len(wires)).to(psi.dtype)
                order = sorted(range(len(wires)), key=lambda i: wires[i])
                g = g.permute(0, *[1 + i for i in order])  # axes in wire order
                shape = [batch] + [2 if w in wires else 1 for w in range(n)]
                lam = lam + g.reshape(shape) * psi
                column += width
        return lam

    def parameter_gradients(self, grad_outputs: torch.Tensor) -> list[torch.Tensor]:
        from hqray.quantum.compiler import STATE_PREPARATIONS

        psi, lam = self.final, self._cotangent(grad_outputs)
        gradients: dict[tuple[int, int], torch.Tensor] = {}
        by_op: dict[int, list[int]] = {}
        for k, j, _ in self.trainable:
            by_op.setdefault(k, []).append(j)
        for k in reversed(range(len(self.operations))):
            op = self.operations[k]
            prepares = op.name in STATE_PREPARATIONS
            if not prepares:
                psi = self._forward_op(qml.adjoint(op, lazy=False), psi)  # the state before op
            if k in by_op:
                gradients.update(self._gradients_of(op, k, by_op[k], psi, lam))
            if not prepares:
                lam = self._forward_op(qml.adjoint(op, lazy=False), lam)
        return [gradients[(k, j)] for k, j, _ in self.trainable]

    def _gradients_of(self, op, k: int, indices: list[int], before: torch.Tensor, lam: torch.Tensor) -> dict:
        """``2 Re <lam| dU/dtheta |before>`` for the chosen parameters of one operation."""
        leaves = {j: op.data[j].detach().requires_grad_(True) for j in indices}
        data = [leaves.get(j, p) for j, p in enumerate(op.data)]
        rebuilt = qml.ops.functions.bind_new_parameters(op, data)
        with torch.enable_grad():
            after = self._forward_op(rebuilt, before)
            overlap = 2 * (lam.conj() * after).real.sum()
            grads = torch.autograd.grad(overlap, list(leaves.values()), allow_unused=True)
        return {(k, j): (g if g is not None else torch.zeros_like(leaves[j])) for j, g in zip(leaves, grads,
                                                                                            strict=True)}


def _terms(observable) -> list[tuple[float, qml.operation.Operator]]:
    from hqray.quantum.compiler import _is_sum

    if _is_sum(observable):
        coefficients, terms = observable.terms()
        return [(float(c), t) for c, t in zip(coefficients, terms, strict=True)]
    return [(1.0, observable)]


def adjoint_outputs(operations, measurements, initial: torch.Tensor, n_wires: int) -> torch.Tensor:
    """Outputs of the tape whose backward pass is the adjoint method (see the module)."""
    trainable = _trainable(operations)
    run = _AdjointRun(operations, measurements, initial, n_wires, trainable)
    if not trainable:
        return run.outputs
    return _Adjoint.apply(run, *[p for _, _, p in trainable])
