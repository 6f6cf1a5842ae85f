"""The execution engine: validates inputs, plans a strategy, runs the batch.

Every quantum layer, pool worker, server and kernel calls :func:`execute`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from hqray.errors import CircuitError
from hqray.quantum import gates
from hqray.quantum.spec import CircuitSpec
from hqray.quantum.strategies import strategy_registry

__all__ = ["execute", "plan", "Plan", "FallbackWarning"]


class FallbackWarning(UserWarning):
    """An explicitly requested strategy could not run a spec; another one did."""


@dataclass(frozen=True)
class Plan:
    """The strategy chosen for a spec and batch size, and why the others were not."""

    strategy: str
    costs: dict[str, float]
    rejected: dict[str, str]


def check_finite(inputs: torch.Tensor, weights: torch.Tensor) -> None:
    """NaN or infinite inputs or weights are an error naming where they are (a NaN weight,
    e.g. after a diverged optimiser step, would otherwise turn every output into NaN)."""
    if not torch.isfinite(inputs).all():
        bad = torch.nonzero(~torch.isfinite(inputs).all(dim=1)).flatten()[:5].tolist()
        raise CircuitError(f"inputs contain NaN/inf (first rows: {bad}); expected finite numbers")
    if not torch.isfinite(weights).all():
        bad = [tuple(i) for i in torch.nonzero(~torch.isfinite(weights))[:5].tolist()]
        raise CircuitError(f"weights contain NaN/inf (first positions: {bad}); expected finite numbers")


def plan(spec: CircuitSpec, batch: int, strategy: str | None = None) -> Plan:
    """Chooses the strategy for ``spec`` on ``batch`` rows.

    Args:
        spec: the circuit.
        batch: number of rows.
        strategy: overrides ``spec.strategy``; ``"auto"`` takes the cheapest supported one.

    Returns:
        A :class:`Plan`. An explicit strategy that cannot run the spec falls back to the
        next registered one (with a :class:`FallbackWarning` naming the reason).

    **Example**

    >>> plan(CircuitSpec(n_qubits=4), batch=1000).strategy
    'folded'
    >>> plan(CircuitSpec(n_qubits=4, reupload=True), batch=1000).strategy
    'statevector'
    """
    requested = strategy or spec.strategy
    registry = strategy_registry()
    if requested != "auto" and requested not in registry:
        raise CircuitError(f"unknown strategy {requested!r}; expected 'auto' or one of {list(registry)}")
    rejected = _rejections(registry, spec, skip_compiler=requested == "auto" and not spec.jit)
    costs = {name: s.cost(spec, batch) for name, s in registry.items() if name not in rejected}
    if requested == "auto" and spec.jit and "compiled" in costs:  # jit is the compiled strategy's
        return Plan("compiled", costs, rejected)
    if requested == "auto":
        # The device strategy is the reference, not a speed choice, unless it is the only way.
        fast = {name: cost for name, cost in costs.items() if name != "device"}
        if len(fast) > 1:  # the compiler is the general path: hand-written strategies run their circuits
            fast.pop("compiled", None)
        if "density_matrix" in fast:  # exact, with gradients: trajectories only where it cannot run
            fast.pop("trajectories", None)
        chosen = min(fast, key=fast.get) if fast else "device"
        if chosen == "device" and spec.exact and "compiled" in rejected:  # never a silent difference
            warnings.warn(f"the compiler cannot run this circuit ({rejected['compiled']}); using PennyLane's "
                          f"{spec.device!r} device instead", FallbackWarning, stacklevel=3)
        return Plan(chosen, costs, rejected)
    if requested not in rejected:
        return Plan(requested, costs, rejected)
    order = list(registry)
    for name in order[order.index(requested) + 1:]:
        if name not in rejected:
            warnings.warn(
                f"strategy {requested!r} cannot run this spec ({rejected[requested]}); using {name!r}",
                FallbackWarning, stacklevel=3,
            )
            return Plan(name, costs, rejected)
    raise CircuitError(f"no strategy can run this spec: {rejected}")


def _rejections(registry: dict, spec: CircuitSpec, skip_compiler: bool) -> dict[str, str]:
    """Why each strategy cannot run ``spec``. The compiler finds out by recording a tape, which
    imports PennyLane (seconds in a fresh worker or replica); with ``skip_compiler`` it is not
    asked when a hand-written strategy runs the circuit, as the planner would not pick it then."""
    checked = [name for name in registry if name != "compiled"]
    rejected = {name: reason for name in checked if (reason := registry[name].unsupported(spec))}
    hand_written = [name for name in checked if name != "device" and name not in rejected]
    if "compiled" in registry:
        if skip_compiler and hand_written:
            rejected["compiled"] = f"not needed: {hand_written[0]!r} runs this circuit"
        elif reason := registry["compiled"].unsupported(spec):
            rejected["compiled"] = reason
    return rejected


def _check_inputs(spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> None:
    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be 2-D (batch, features), got shape {tuple(inputs.shape)}")
    if inputs.shape[1] == 0 or inputs.shape[1] > spec.n_features:
        raise CircuitError(
            f"the {spec.embedding} embedding of {spec.n_qubits} qubits takes 1 to {spec.n_features} "
            f"features, got {inputs.shape[1]}"
        )
    if tuple(weights.shape) != spec.weight_shape:
        raise CircuitError(f"expected weights of shape {spec.weight_shape}, got {tuple(weights.shape)}")
    if inputs.is_complex() or weights.is_complex():
        raise CircuitError("inputs and weights must be real tensors")
    check_finite(inputs, weights)


def execute(
    spec: CircuitSpec,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    strategy: str | None = None,
) -> torch.Tensor:
    """Runs the circuit on a batch.

    Args:
        spec: the circuit.
        inputs: real tensor ``(B, k)`` with ``1 <= k <= n_qubits`` features.
        weights: real tensor of shape ``spec.weight_shape``.
        strategy: overrides ``spec.strategy``.

    Returns:
        ``(B, spec.n_outputs)`` in the spec's real precision (complex for ``"state"``),
        differentiable with respect to ``inputs`` and ``weights``.

    **Example**

    >>> import torch
    >>> spec = CircuitSpec(n_qubits=2, ansatz="ry_cnot", n_layers=1)
    >>> execute(spec, torch.zeros(3, 2), torch.zeros(spec.weight_shape)).tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    _check_inputs(spec, inputs, weights)
    if inputs.shape[0] == 0:
        raise CircuitError("inputs are empty: expected at least one row")
    chosen = plan(spec, inputs.shape[0], strategy).strategy
    dtype = gates.real_dtype(spec)
    return strategy_registry()[chosen].run(spec, inputs.to(dtype), weights.to(dtype))
