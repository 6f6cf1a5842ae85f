"""A compiler from PennyLane tapes to batched torch state-vector programs.

Any PennyLane quantum function ``qfunc(inputs, weights)`` (``inputs`` of shape
``(B, features)``, used with PennyLane's broadcasting conventions, e.g.
``qml.RY(inputs[..., 0], wires=0)`` or ``qml.AngleEmbedding(inputs, ...)``) is recorded
as a tape on the real parameters and decomposed until every operation has a matrix (or
prepares a state: ``StatePrep`` / ``AmplitudeEmbedding``, normalised and padded). The
decomposed tape's *structure* is compiled once into a
:class:`~hqray.quantum.program.Program` of fused steps (product state, composed gathers,
phase runs, dense blocks; see that module) and cached per structure; each call only builds
the gate matrices from the live parameters and runs the steps on a ``(B, 2^n)`` state.

Measurements: ``expval`` of any observable with a matrix (Pauli words, products, sums
and Hamiltonians; diagonal terms of all of them as one product with a table), ``probs`` of
all or some wires, and ``state``. Gradients with respect to inputs and weights: torch's
graph of the steps, or the adjoint method over them (:func:`run_tape`).

**Example**

>>> import pennylane as qml, torch
>>> def circuit(inputs, weights):
...     qml.AngleEmbedding(inputs, wires=[0, 1])
...     qml.CNOT(wires=[0, 1])
...     qml.RX(weights[0], wires=1)
...     return [qml.expval(qml.PauliZ(1)), qml.expval(qml.PauliX(0) @ qml.PauliY(1))]
>>> run_qfunc(circuit, 2, torch.zeros(3, 2), torch.zeros(1)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

import pennylane as qml
import torch

from hqray.errors import CircuitError
from hqray.quantum.contraction import choose_network, contract
from hqray.quantum.engine import check_finite
from hqray.quantum.program import (
    STATE_PREPARATIONS,
    Program,
    amplitude_class,
    apply_dense,
    apply_diag,
    compile_program,
    structure_key,
)

__all__ = ["run_qfunc", "record_tape", "run_tape", "supported", "UnsupportedOperation"]

MAX_DECOMPOSITION_DEPTH = 10


class UnsupportedOperation(CircuitError):
    """An operation the compiler cannot run (no matrix and no decomposition), or a measurement it does not know."""


def record_tape(qfunc: Callable, inputs: torch.Tensor, weights: torch.Tensor) -> qml.tape.QuantumScript:
    """The tape ``qfunc(inputs, weights)`` records, with the real (broadcast) parameters."""
    return qml.tape.make_qscript(qfunc)(inputs, weights)


def _expanded(operations: Sequence[qml.operation.Operator], depth: int = 0) -> list[qml.operation.Operator]:
    """Operations decomposed until each has a matrix or prepares a state."""
    flat = []
    for op in operations:
        if op.name in STATE_PREPARATIONS or op.has_matrix:
            flat.append(op)
            continue
        if depth >= MAX_DECOMPOSITION_DEPTH or not op.has_decomposition:
            raise UnsupportedOperation(f"operation {op.name} on wires {list(op.wires)} has no matrix and no "
                                       "decomposition the compiler can run")
        flat.extend(_expanded(op.decomposition(), depth + 1))
    return flat


def supported(tape: qml.tape.QuantumScript, n_wires: int) -> list[qml.operation.Operator]:
    """The tape's operations, decomposed to what the compiler runs; raises
    :class:`UnsupportedOperation` naming what it cannot run."""
    _check_wires(tape, n_wires)
    operations = _expanded(tape.operations)
    for index, op in enumerate(operations):
        if op.name in STATE_PREPARATIONS and index:
            raise UnsupportedOperation(f"{op.name} must come first in the circuit")
    for measurement in tape.measurements:
        if _measurement_kind(measurement) is None:
            raise UnsupportedOperation(_unsupported_measurement(measurement))
    return operations


def _measurement_kind(measurement) -> str | None:
    kind = type(measurement).__name__
    if kind == "ExpectationMP" and measurement.obs is not None:
        return "expval"
    if kind == "ProbabilityMP" and measurement.obs is None:
        return "probs"
    if kind == "StateMP" and not measurement.wires:
        return "state"
    return None


def _unsupported_measurement(measurement) -> str:
    return (f"measurement {measurement!r} is not supported; expected expval of an observable, probs of wires, "
            "or state")


# "auto" keeps each step's input state for the adjoint pass (no step un-applied) while they
# stay below this; beyond, the adjoint pass recomputes them (memory independent of depth).
KEPT_STATES_LIMIT_BYTES = 256 * 2**20
PROGRAM_CACHE_SIZE = 256
_PROGRAMS: OrderedDict[tuple, Program] = OrderedDict()


def program_for(operations: Sequence[qml.operation.Operator], n_wires: int, batch: int) -> Program:
    """The compiled :class:`~hqray.quantum.program.Program` of these operations' structure,
    compiled on first sight and cached (least recently used beyond ``PROGRAM_CACHE_SIZE``)."""
    key = (structure_key(operations), n_wires, amplitude_class(batch, n_wires))
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = compile_program(operations, n_wires, amplitude_class(batch, n_wires))
        if len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
            _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
    return program


def run_tape(tape: qml.tape.QuantumScript, n_wires: int, batch: int, dtype: torch.dtype = torch.complex128,
             device: torch.device | str = "cpu", diff_method: str = "auto") -> torch.Tensor:
    """Runs a recorded tape on ``batch`` rows; returns ``(batch, outputs)`` (real, or complex for ``state``).

    The tape's structure is compiled once (:func:`program_for`); each call computes its gate
    matrices and runs the fused steps. ``diff_method="adjoint"`` differentiates expectation
    values and probabilities with the adjoint method (memory independent of depth);
    ``"backprop"`` keeps torch's graph of every step (differentiable again, e.g. for
    Hessians; so does any ``state`` measurement); ``"auto"`` (default) runs the adjoint
    pass on each step's kept input state while those states stay under
    :data:`KEPT_STATES_LIMIT_BYTES` (one graph node for the whole circuit, no step
    un-applied), and recomputes them beyond.
    """
    _check_diff_method(diff_method)
    operations = supported(tape, n_wires)
    program = program_for(operations, n_wires, batch)
    measure = _measurements_for(tape.measurements, n_wires, dtype, device)
    return _run(program, operations, measure, batch, dtype, device, diff_method)


def _check_diff_method(diff_method: str) -> None:
    if diff_method not in ("auto", "adjoint", "backprop"):
        raise CircuitError(f"diff_method {diff_method!r}: expected 'auto', 'adjoint' or 'backprop'")


def _run(program: Program, operations, measure: _Measurements, batch: int, dtype: torch.dtype, device,
         diff_method: str) -> torch.Tensor:
    """The compiled program on the operations' live parameters, differentiated as asked:
    by contracting it as a tensor network where that is much cheaper (expectation values of
    narrow circuits, :mod:`hqray.quantum.contraction`), else on the state vector."""
    if diff_method == "auto":
        network = choose_network(program, measure, batch)
        if network is not None:
            return contract(network, program, operations, batch, dtype, device)
    tensors = program.step_tensors(operations, batch, dtype, device)
    keep = False
    if diff_method == "auto":
        kept_bytes = len(program.steps) * batch * 2**program.n_wires * torch.empty((), dtype=dtype).element_size()
        keep, diff_method = kept_bytes <= KEPT_STATES_LIMIT_BYTES, "adjoint"
    differentiable = [s for s, t in enumerate(tensors) if t is not None and t.requires_grad]
    if diff_method == "adjoint" and differentiable and torch.is_grad_enabled() and measure.adjoint_supported:
        run = _AdjointRun(program, measure, tensors, differentiable, keep)
        return _Adjoint.apply(run, *[tensors[s] for s in differentiable])
    return measure(program.evolve(tensors))


class _AdjointRun:
    """One forward pass (no graph) and what its adjoint pass needs: the final state, and each
    step's input where ``keep`` (else the backward pass un-applies the steps)."""

    def __init__(self, program: Program, measure: _Measurements, tensors, differentiable, keep: bool):
        self.program, self.measure, self.differentiable = program, measure, differentiable
        self.tensors = [t.detach() if t is not None else None for t in tensors]
        with torch.no_grad():
            if keep:
                self.final, self.kept = program.evolve_keeping(self.tensors)
            else:
                self.final, self.kept = program.evolve(self.tensors), None
            self.outputs = measure(self.final)
        for s in differentiable:  # gradients are asked of these
            self.tensors[s].requires_grad_(True)


class _Adjoint(torch.autograd.Function):
    """Outputs whose backward pass is the adjoint method over the program's steps."""

    @staticmethod
    def forward(ctx, run: _AdjointRun, *tensors):
        ctx.run = run
        return run.outputs

    @staticmethod
    def backward(ctx, grad_outputs):
        run = ctx.run
        lam = run.measure.cotangent(run.final, grad_outputs)
        grads = run.program.gradients(run.tensors, run.final, lam, run.kept)
        return (None, *[grads[s] for s in run.differentiable])


def _check_wires(tape: qml.tape.QuantumScript, n_wires: int) -> None:
    bad = [w for w in tape.wires if not isinstance(w, int) or not 0 <= w < n_wires]
    if bad:
        raise CircuitError(f"the circuit uses wires {bad}; expected integers 0..{n_wires - 1}")


def _is_sum(observable: qml.operation.Operator) -> bool:
    """A sum of terms (Sum, scaled term, Hamiltonian): measured term by term."""
    return isinstance(observable, (qml.ops.Sum, qml.ops.SProd)) or observable.name in ("Hamiltonian",
                                                                                       "LinearCombination")


def _terms(observable: qml.operation.Operator) -> list[tuple[float, qml.operation.Operator]]:
    if _is_sum(observable):
        coefficients, terms = observable.terms()
        return [(float(c), t) for c, t in zip(coefficients, terms, strict=True)]
    return [(1.0, observable)]


_OBSERVABLES: dict[tuple, tuple[bool, torch.Tensor]] = {}


def _observable(term: qml.operation.Operator, dtype: torch.dtype, device) -> tuple[bool, torch.Tensor]:
    """(is diagonal, phase vector or matrix) of an observable term, cached by its hash."""
    key = (term.hash, dtype, str(device))
    if key not in _OBSERVABLES:
        matrix = torch.as_tensor(qml.matrix(term, wire_order=term.wires), device=device).to(dtype)
        diagonal = bool(torch.count_nonzero(matrix - torch.diag_embed(torch.diagonal(matrix))) == 0)
        _OBSERVABLES[key] = (diagonal, torch.diagonal(matrix)[None] if diagonal else matrix)
    return _OBSERVABLES[key]


DIAGONAL_TABLE_LIMIT = 2**24  # amplitudes x expectation values kept as one table
_MEASUREMENTS: OrderedDict[tuple, _Measurements] = OrderedDict()


def _measurements_for(measurements: Sequence, n_wires: int, dtype: torch.dtype, device) -> _Measurements:
    """The measurement plan of a tape, built once per set of measurements (cached like programs)."""
    key = (tuple(m.hash for m in measurements), n_wires, dtype, str(device))
    plan = _MEASUREMENTS.get(key)
    if plan is None:
        plan = _MEASUREMENTS[key] = _Measurements(measurements, n_wires, dtype, device)
        plan.key = key
        if len(_MEASUREMENTS) > PROGRAM_CACHE_SIZE:
            _MEASUREMENTS.popitem(last=False)
    return plan


class _Measurements:
    """The tape's measurements on a final state ``(B, 2^n)``, and their cotangent.

    The diagonal part of every expectation value (Z words and sums of them) is one column of
    a table over the basis states, so all of them are one product of the probabilities with
    that table; other terms apply their matrix to the state.
    """

    def __init__(self, measurements: Sequence, n_wires: int, dtype: torch.dtype, device):
        self.n, self.dtype, self.device = n_wires, dtype, device
        self.items = []
        for measurement in measurements:
            kind = _measurement_kind(measurement)
            if kind == "expval":
                self.items.append(("expval", [(c, [int(w) for w in t.wires], t) for c, t in _terms(measurement.obs)]))
            elif kind == "probs":
                self.items.append(("probs", [int(w) for w in measurement.wires] or list(range(n_wires))))
            else:
                self.items.append(("state", None))
        if not self.items:
            raise UnsupportedOperation("the circuit measures nothing; return qml.expval, qml.probs or qml.state")
        if any(kind == "state" for kind, _ in self.items) and len(self.items) > 1:
            raise UnsupportedOperation("qml.state() must be the circuit's only measurement")
        self.adjoint_supported = all(kind != "state" for kind, _ in self.items)
        expvals = [detail for kind, detail in self.items if kind == "expval"]
        widths = [1 if kind == "expval" else 2 ** len(detail) for kind, detail in self.items if kind != "state"]
        starts = [sum(widths[:i]) for i in range(len(widths))]
        self.expval_columns = [start for start, (kind, _) in zip(starts, self.items, strict=False) if kind == "expval"]
        self.table = self._diagonal_table(expvals) if len(expvals) * 2**n_wires <= DIAGONAL_TABLE_LIMIT else None
        # per item, the terms applied to the state (worked out once: a term's hash costs microseconds)
        self.dense = [list(self._dense_terms(detail)) if kind == "expval" else [] for kind, detail in self.items]
        # Z words and sums of them only: every output is one column of probabilities @ table
        self.table_only = (self.table is not None and not any(self.dense)
                           and all(kind == "expval" for kind, _ in self.items))

    def _diagonal_table(self, expvals) -> torch.Tensor:
        """``(2^n, expvals)``: each expectation value's diagonal terms over all basis states."""
        real = torch.float64 if self.dtype == torch.complex128 else torch.float32
        table = torch.zeros(2**self.n, len(expvals), dtype=real, device=self.device)
        for column, terms in enumerate(expvals):
            for coefficient, wires, term in terms:
                if not wires:
                    table[:, column] += coefficient
                    continue
                diagonal, tensor = _observable(term, self.dtype, self.device)
                if diagonal:
                    ones = torch.ones(1, 2**self.n, 1, dtype=real, device=self.device)
                    table[:, column] += coefficient * apply_diag(ones, tensor.real, wires, self.n)[0, :, 0]
        return table

    def _dense_terms(self, terms):
        for coefficient, wires, term in terms:
            if wires and (self.table is None or not _observable(term, self.dtype, self.device)[0]):
                yield coefficient, wires, term

    def _applied(self, term, wires: list[int], state: torch.Tensor) -> torch.Tensor:
        """``O state`` for one term, ``(B, 2^n)``."""
        diagonal, tensor = _observable(term, self.dtype, self.device)
        return (apply_diag if diagonal else apply_dense)(state[:, :, None], tensor, wires, self.n)[:, :, 0]

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        probabilities = state.real**2 + state.imag**2
        if self.table_only:
            return probabilities @ self.table
        diagonal = probabilities @ self.table if self.table is not None else None
        outputs, column = [], 0
        for (kind, detail), dense in zip(self.items, self.dense, strict=True):
            if kind == "expval":
                value = diagonal[:, column] if diagonal is not None else 0
                for coefficient, wires, term in dense:
                    value = value + coefficient * (state.conj() * self._applied(term, wires, state)).sum(dim=1).real
                if self.table is None:  # constant terms
                    value = value + sum(c for c, wires, _ in detail if not wires)
                outputs.append(value[:, None])
                column += 1
            elif kind == "probs":
                outputs.append(_probs(probabilities, detail, self.n))
            else:
                outputs.append(state)
        return torch.cat(outputs, dim=1)

    def cotangent(self, psi: torch.Tensor, grad_outputs: torch.Tensor) -> torch.Tensor:
        """``lam`` with ``dL = 2 Re <lam|dpsi>``: ``sum_m g_m O_m psi`` for expectation values,
        ``g_bucket(i) psi_i`` for probabilities."""
        batch, lam = psi.shape[0], torch.zeros((), dtype=psi.dtype, device=psi.device)  # broadcasts
        if self.table is not None and self.expval_columns:
            columns = grad_outputs if self.table_only else grad_outputs[:, self.expval_columns]
            lam = (columns.to(self.table.dtype) @ self.table.T) * psi
            if self.table_only:
                return lam
        column = 0
        for (kind, detail), dense in zip(self.items, self.dense, strict=True):
            if kind == "expval":
                g = grad_outputs[:, column:column + 1].to(psi.dtype)
                for coefficient, wires, term in dense:
                    lam = lam + (coefficient * g) * self._applied(term, wires, psi)
                if self.table is None:
                    lam = lam + g * sum(c for c, wires, _ in detail if not wires) * psi
                column += 1
            else:
                wires = detail
                width = 2 ** len(wires)
                g = grad_outputs[:, column:column + width].to(psi.dtype)
                order = sorted(range(len(wires)), key=lambda i: wires[i])
                g = g.reshape(batch, *[2] * len(wires)).permute(0, *[1 + i for i in order])
                shape = [batch] + [2 if w in wires else 1 for w in range(self.n)]
                lam = lam + (g.reshape(shape) * psi.reshape(batch, *[2] * self.n)).reshape(batch, -1)
                column += width
        return lam.expand_as(psi) if lam.ndim == 0 else lam


def _probs(probabilities: torch.Tensor, wires: list[int], n_wires: int) -> torch.Tensor:
    batch = probabilities.shape[0]
    probabilities = probabilities.reshape(batch, *[2] * n_wires)
    others = [1 + w for w in range(n_wires) if w not in wires]
    marginal = probabilities.sum(dim=others) if others else probabilities
    order = sorted(wires)
    marginal = marginal.permute(0, *[1 + order.index(w) for w in wires])
    return marginal.reshape(batch, -1)


def run_qfunc(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor,
              dtype: torch.dtype | None = None, diff_method: str = "auto", jit: bool = False) -> torch.Tensor:
    """Records ``qfunc(inputs, weights)`` and runs it batched over the rows of ``inputs``.

    ``dtype`` is the state's complex dtype (default: complex64 for float32 inputs,
    complex128 otherwise); ``diff_method`` as in :func:`run_tape`. ``jit=True`` runs the
    whole pass as one compiled kernel (:mod:`hqray.quantum.jit`: seconds to compile per
    circuit structure and batch size, then the fastest path on small circuits; autograd's
    gradient); a circuit it cannot take runs as without it, with a ``FallbackWarning`` naming
    why. Returns ``(B, outputs)``.
    """
    if inputs.ndim != 2:
        raise CircuitError(f"inputs must be (batch, features), got shape {tuple(inputs.shape)}")
    if dtype is None:
        dtype = torch.complex64 if inputs.dtype == torch.float32 else torch.complex128
    traced = _traced(qfunc, n_wires, inputs, weights)
    if jit:
        compiled = _jitted(traced, n_wires, inputs, weights, dtype)
        if compiled is not None:
            return _run_jitted(compiled, inputs, weights, dtype)
    check_finite(inputs, weights)
    if traced is None:
        tape = record_tape(qfunc, inputs, weights)
        return run_tape(tape, n_wires, inputs.shape[0], dtype, inputs.device, diff_method)
    _check_diff_method(diff_method)
    batch = inputs.shape[0]
    return _run(_program(traced, n_wires, batch), traced.live(inputs, weights, dtype),
                _measurements(traced, n_wires, dtype, inputs.device), batch, dtype, inputs.device, diff_method)


def _program(traced, n_wires: int, batch: int) -> Program:
    """The traced circuit's compiled program for this batch's amplitude class (made once)."""
    key = ("program", n_wires, amplitude_class(batch, n_wires))
    if key not in traced.memo:
        traced.memo[key] = compile_program(traced.operations, n_wires, amplitude_class(batch, n_wires))
    return traced.memo[key]


def _measurements(traced, n_wires: int, dtype: torch.dtype, device) -> _Measurements:
    """The traced circuit's measurement plan for this precision and device (made once)."""
    key = ("measure", n_wires, dtype, str(device))
    if key not in traced.memo:
        traced.memo[key] = _measurements_for(traced.measurements, n_wires, dtype, device)
    return traced.memo[key]


def _jitted(traced, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype):
    """The circuit's compiled kernel for this batch size, precision and thread count (made on
    first use), or None with a ``FallbackWarning`` saying why it cannot be made."""
    from hqray.quantum.engine import FallbackWarning
    from hqray.quantum.jit import JIT_CACHE_SIZE, jit_function, jit_unsupported

    batch = inputs.shape[0]
    # Everything the compiled graph depends on is in the key, one compiled function per key:
    # its guards are then skipped when it runs (see _run_jitted).
    key = ("jit", n_wires, dtype, batch, str(inputs.device), torch.get_num_threads(), torch.is_grad_enabled(),
           inputs.requires_grad, weights.requires_grad)
    if traced is not None and key in traced.memo:
        return traced.memo[key]
    reason = "jit runs on CPU tensors" if inputs.device.type != "cpu" else None
    program = measure = None
    if traced is not None and reason is None:
        program = _program(traced, n_wires, batch)  # the eager path's, compiled once for both
        measure = _measurements(traced, n_wires, dtype, inputs.device)
    reason = reason or jit_unsupported(traced, program, measure)
    if reason is not None:
        warnings.warn(f"{reason}; running the circuit without jit", FallbackWarning, stacklevel=3)
        if traced is not None:  # said once: later calls run eagerly without working it out again
            traced.memo[key] = None
        return None
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    kernels = [k for k in traced.memo if k[0] == "jit"]
    if len(kernels) >= JIT_CACHE_SIZE:
        del traced.memo[kernels[0]]
    traced.memo[key] = jit_function(traced, program, measure, weights.numel(), real)
    return traced.memo[key]


def _run_jitted(compiled: Callable, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Runs a compiled kernel; it also says whether every input and weight was finite (one
    fused check), and the eager check names the bad ones when not."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    # One compiled function per key of _jitted, so no guard has anything to tell apart
    # (they cost about a tenth of a 4-qubit pass).
    arguments = inputs.to(real).contiguous(), weights.to(real).contiguous()
    # The stance is process-wide: only taken while no other Python thread could run another
    # compiled function under it.
    if not compiled.warm or threading.active_count() > 1:  # the first call compiles
        outputs, finite = compiled(*arguments)
        compiled.warm = True
    else:
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            outputs, finite = compiled(*arguments)
    if not bool(finite):
        check_finite(inputs, weights)
    return outputs


def _traced(qfunc: Callable, n_wires: int, inputs: torch.Tensor, weights: torch.Tensor):
    """The circuit's :class:`~hqray.quantum.tracing.Trace` when it is a registered (static)
    circuit tracing can take, else None (then the tape is recorded per call). Recording and
    decomposing a template-heavy tape costs about a millisecond a call: at a few qubits,
    more than the simulation."""
    key = getattr(qfunc, "hqray_static_key", None)
    if key is None:
        return None
    from hqray.quantum.tracing import trace

    traced = trace(qfunc, key, inputs.shape[1], tuple(weights.shape), _expanded)
    if traced is not None and ("wires", n_wires) not in traced.memo:
        _check_wires(traced.script, n_wires)
        traced.memo[("wires", n_wires)] = True
    return traced
