"""Circuits recorded once: each gate parameter read straight from the inputs and weights.

Recording a PennyLane tape and decomposing its templates costs about a millisecond per
call, whatever the batch: at 4 qubits more than the simulation itself. A circuit whose
operations and wires depend only on the *shapes* of its arguments — every registered
:class:`~hqray.quantum.circuits.Circuit` is one — is recorded once per shape instead, with
random probe arguments, and each device gate's parameter is identified as an affine
function ``a * source + b`` of one input column or one weight (or a constant). A call then
gathers every parameter of a gate kind with one index operation, and builds the gates'
matrices together.

A circuit qualifies only if three recordings with different random arguments give the same
structure and every parameter of the first two is reproduced on the third to 1e-12; a
parameter that mixes several sources (an IQP embedding's products of features) or a gate
kind without a batched builder makes :func:`trace` answer ``None``, and the caller records
the tape per call as before: never a silent difference.

**Example**

>>> import pennylane as qml, torch
>>> def circuit(inputs, weights):
...     qml.RY(2 * inputs[..., 0], wires=0)
...     qml.Rot(*weights, wires=0)
...     return qml.expval(qml.PauliZ(0))
>>> traced = trace(circuit, ("example",), 1, (3,), lambda ops: list(ops))
>>> [(gate.name, [source[:2] for source in gate.sources]) for gate in traced.gates]
[('RY', [('input', 0)]), ('Rot', [('weight', 0), ('weight', 1), ('weight', 2)])]
>>> traced.gates[0].sources[0][2:]  # 2 * inputs[..., 0] + 0
(2.0, 0.0)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pennylane as qml
import torch

from hqray.quantum.program import FAST_GATES, PHASE_PATTERNS, LazyItems, _pattern_builder

__all__ = ["trace", "Trace", "TracedGate", "LiveGate"]

PROBE_ROWS = 4  # an affine fit takes two rows; the others check it
TOLERANCE = 1e-12
TRACE_CACHE_SIZE = 128

Source = tuple  # ("input", column, a, b) | ("weight", flat index, a, b) | ("constant", value, 0.0, 0.0)


@dataclass(frozen=True)
class TracedGate:
    """A device gate of a traced circuit: its operation as recorded (for its name, wires and,
    when parameter-free, matrix) and where each of its parameters comes from."""

    op: object
    sources: tuple[Source, ...]

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def batched(self) -> bool:
        return any(source[0] == "input" for source in self.sources)


@dataclass(frozen=True)
class LiveGate:
    """A traced gate with live parameters (see :meth:`Trace.live`)."""

    name: str
    wires: object
    data: tuple
    batch_size: int | None

    @property
    def num_params(self) -> int:
        return len(self.data)


class LiveOperations(LazyItems):
    """A traced circuit's gates with live parameters, and their parameters per gate group
    (``(name, batched, arity, members, parameters)``, as :meth:`Trace._parameters` gives).
    A grouped gate's :class:`LiveGate` is made when it is read: most consumers read the
    groups, and one object per gate per call cost more than a small circuit's arithmetic."""

    def __init__(self, operations):
        super().__init__(operations)
        self.groups: list[tuple] = []

    def _make(self, pending: tuple) -> LiveGate:
        name, wires, params, row, batch_size = pending  # group parameters, the gate's row
        return LiveGate(name, wires, tuple(p[row] for p in params), batch_size)


@dataclass
class Trace:
    """A circuit's device gates and measurements, recorded once, and its parameters' sources."""

    gates: list[TracedGate]
    measurements: list
    _groups: list | None = None
    _script: qml.tape.QuantumScript | None = None
    _operations: list | None = None
    _constant_tensors: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # what callers derive from the trace once (programs, measurements)

    @property
    def operations(self) -> list:
        """The device gates as recorded on the first probe (one list, the same every call)."""
        if self._operations is None:
            self._operations = [gate.op for gate in self.gates]
        return self._operations

    @property
    def script(self) -> qml.tape.QuantumScript:
        """The device gates (as recorded on the first probe) and measurements, as a tape."""
        if self._script is None:
            self._script = qml.tape.QuantumScript(self.operations, self.measurements)
        return self._script

    def matrices(self, inputs: torch.Tensor, weights: torch.Tensor,
                 dtype: torch.dtype) -> list[torch.Tensor | None]:
        """Each gate's matrix for these arguments: ``(B, d, d)`` for gates on the inputs, ``(d, d)``
        for the rest; None for parameter-free gates. Gates of one kind are built together."""
        out: list[torch.Tensor | None] = [None] * len(self.gates)
        for name, arity, members, params in self._parameters(inputs, weights, dtype):
            if name in FAST_GATES:
                built = FAST_GATES[name](*params)
            else:  # a diagonal rotation: its phase pattern, as a matrix
                built = torch.diag_embed(_pattern_builder(name, arity)(*params))
            for member, matrix in zip(members, built.to(dtype).unbind(0), strict=True):
                out[member] = matrix
        return out

    def live(self, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype) -> LiveOperations:
        """The device gates with these arguments' parameters, as light stand-ins for the
        operations a recording would give (``name``, ``wires``, ``data``, ``batch_size``):
        what the noiseless compiler reads, without recording or decomposing a tape. The list
        also carries each gate group's stacked parameters (``groups``), so a consumer can build
        a group's matrices at once."""
        out = LiveOperations(self.operations)
        batch = inputs.shape[0]
        for name, arity, members, params in self._parameters(inputs, weights, dtype):
            batch_size = batch if self.gates[members[0]].batched else None
            out.groups.append((name, batch_size is not None, arity, members, params))
            for row, member in enumerate(members):
                out._pending[member] = (name, self.operations[member].wires, params, row, batch_size)
        return out

    def _parameters(self, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype):
        """Per gate group: (name, arity, members, each parameter position's values stacked
        ``(members,)`` or ``(members, B)``), gathered with one index per position."""
        real = torch.float64 if dtype in (torch.complex128, torch.float64) else torch.float32
        pool = torch.cat([weights.reshape(-1).to(real), self._constants(real, weights.device)])
        columns = inputs.to(real).T  # (features, B)
        for name, batched, arity, members, positions in self._placed(len(weights.reshape(-1)), real, inputs.device):
            params = []
            for index, affine in positions:
                source = columns[index] if batched else pool[index]
                params.append(source if affine is None else source * affine[0] + affine[1])
            yield name, arity, members, params

    def _placed(self, n_weights: int, real: torch.dtype, device) -> list:
        """:meth:`_grouped` with each position's index, scale and offset on ``device`` in
        ``real`` (once per dtype and device), the affine map left out where it is the
        identity (a parameter read as it is: most are)."""
        key = ("placed", n_weights, real, str(device))
        if key not in self.memo:
            placed = []
            for name, batched, arity, members, indices, scales, offsets in self._grouped(n_weights):
                positions = []
                for index, scale, offset in zip(indices, scales, offsets, strict=True):
                    affine = None
                    if not (bool((scale == 1).all()) and bool((offset == 0).all())):
                        scale, offset = scale.to(device, real), offset.to(device, real)
                        affine = (scale[:, None], offset[:, None]) if batched else (scale, offset)
                    positions.append((index.to(device), affine))
                placed.append((name, batched, arity, members, positions))
            self.memo[key] = placed
        return self.memo[key]

    def _constants(self, real: torch.dtype, device) -> torch.Tensor:
        """The constant parameters, in slot order: built once per dtype and device."""
        key = (real, str(device))
        if key not in self._constant_tensors:
            values = [source[1] for gate in self.gates for source in gate.sources if source[0] == "constant"]
            self._constant_tensors[key] = torch.tensor(values, dtype=real, device=device)
        return self._constant_tensors[key]

    def _grouped(self, n_weights: int) -> list:
        """Per (gate kind, batched, arity): members and, per parameter position, the sources'
        indices (into the input columns, or into weights + constants), scales and offsets."""
        if self._groups is None:
            groups: dict[tuple, list[int]] = {}
            for index, gate in enumerate(self.gates):
                if gate.sources:
                    groups.setdefault((gate.name, gate.batched, len(gate.op.wires)), []).append(index)
            constant_slot = iter(range(n_weights, 10**9))
            slots = {}
            for index, gate in enumerate(self.gates):
                for position, source in enumerate(gate.sources):
                    slots[(index, position)] = (source[1] if source[0] != "constant" else next(constant_slot))
            self._groups = []
            for (name, batched, arity), members in groups.items():
                positions = range(len(self.gates[members[0]].sources))
                indices = [torch.tensor([slots[(m, p)] for m in members]) for p in positions]
                scales = [torch.tensor([self.gates[m].sources[p][2] if self.gates[m].sources[p][0] != "constant"
                                        else 1.0 for m in members], dtype=torch.float64) for p in positions]
                offsets = [torch.tensor([self.gates[m].sources[p][3] for m in members], dtype=torch.float64)
                           for p in positions]
                self._groups.append((name, batched, arity, members, indices, scales, offsets))
        return self._groups


def _record(qfunc: Callable, decompose: Callable, inputs: torch.Tensor, weights: torch.Tensor):
    from hqray.quantum.compiler import record_tape

    tape = record_tape(qfunc, inputs, weights)
    return decompose(tape.operations), tape.measurements


def _affine(values: torch.Tensor, sources: torch.Tensor) -> tuple[int, float, float] | None:
    """``(column, a, b)`` with ``values = a * sources[..., column] + b`` on every probe row, or None.
    ``values`` (R,), ``sources`` (R, C)."""
    span = sources[0] - sources[1]
    usable = span.abs() > 1e-6
    a = torch.where(usable, (values[0] - values[1]) / torch.where(usable, span, 1.0), 0.0)
    b = values[0] - a * sources[0]
    error = (a[None] * sources + b[None] - values[:, None]).abs()
    fits = usable & (error <= TOLERANCE * (1 + values.abs()[:, None])).all(dim=0)
    candidates = torch.nonzero(fits).flatten().tolist()
    return (candidates[0], float(a[candidates[0]]), float(b[candidates[0]])) if len(candidates) == 1 else None


def _sources(op, inputs: torch.Tensor, weights: torch.Tensor) -> tuple[Source, ...] | None:
    """Where each parameter of ``op`` (recorded on the probes) comes from, or None."""
    if not op.num_params:
        return ()
    if op.name not in FAST_GATES and op.name not in PHASE_PATTERNS:
        return None
    found = []
    for value in op.data:
        value = torch.as_tensor(value, dtype=torch.float64)
        if value.ndim == 1 and value.shape[0] == inputs.shape[0]:  # broadcast over the rows
            fit = _affine(value, inputs)
            kind = "input"
        elif value.ndim == 0:
            exact = torch.nonzero(weights == value).flatten().tolist()
            fit, kind = ((exact[0], 1.0, 0.0) if len(exact) == 1 else None), "weight"
            if fit is None and not exact:
                fit, kind = (float(value), 0.0, 0.0), "constant"  # checked against the third probe
        else:
            return None
        if fit is None:
            return None
        found.append((kind, *fit))
    return tuple(found)


def _reproduces(traced: list[TracedGate], operations: Sequence, inputs: torch.Tensor,
                weights: torch.Tensor) -> bool:
    for gate, op in zip(traced, operations, strict=True):
        for (kind, index, a, b), value in zip(gate.sources, op.data, strict=True):
            value = torch.as_tensor(value, dtype=torch.float64)
            expected = (index if kind == "constant" else
                        a * (inputs[:, index] if kind == "input" else weights[index]) + b)
            if not torch.allclose(value, torch.as_tensor(expected, dtype=torch.float64), rtol=TOLERANCE,
                                  atol=TOLERANCE):
                return False
    return True


def _probe(n_features: int, weight_shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random arguments in [-pi, pi): both signs, so a circuit that branches on a sign shows it."""
    generator = torch.Generator().manual_seed(seed)
    inputs = (torch.rand(PROBE_ROWS, n_features, generator=generator, dtype=torch.float64) - 0.5) * 2 * math.pi
    weights = (torch.rand(weight_shape, generator=generator, dtype=torch.float64) - 0.5) * 2 * math.pi
    return inputs, weights


_TRACES: OrderedDict[tuple, Trace | None] = OrderedDict()


def trace(qfunc: Callable, key: tuple, n_features: int, weight_shape: tuple[int, ...],
          decompose: Callable[[Sequence], list]) -> Trace | None:
    """The :class:`Trace` of ``qfunc`` (identified by ``key``: the same key, the same circuit)
    for these argument shapes, with its tape decomposed by ``decompose``; None when the
    circuit does not qualify (see the module docstring). Cached per key and shapes."""
    from hqray.quantum.program import structure_key

    cache_key = (key, n_features, tuple(weight_shape), decompose)
    if cache_key in _TRACES:
        _TRACES.move_to_end(cache_key)
        return _TRACES[cache_key]
    probes = [_probe(n_features, tuple(weight_shape), seed) for seed in (1, 2, 3)]
    recorded = [_record(qfunc, decompose, *probe) for probe in probes]
    result = None
    if len({structure_key(operations) for operations, _ in recorded}) == 1:
        (first, measurements), _, (third, _) = recorded
        sources = [_sources(op, probes[0][0], probes[0][1].reshape(-1)) for op in first]
        if all(s is not None for s in sources):
            traced = [TracedGate(op, s) for op, s in zip(first, sources, strict=True)]
            if all(_reproduces(traced, ops, inputs, weights.reshape(-1))
                   for (ops, _), (inputs, weights) in zip(recorded[1:], probes[1:], strict=True)):
                result = Trace(traced, list(measurements))
    _TRACES[cache_key] = result
    if len(_TRACES) > TRACE_CACHE_SIZE:
        _TRACES.popitem(last=False)
    return result
