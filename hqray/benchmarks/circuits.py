"""`hqray bench engine --grid circuits`: any circuit through the tape compiler vs PennyLane and JAX.

Forward + backward (gradients with respect to inputs and weights) of registered circuits
and a random 200-gate circuit, at B = 256 and 4096, in one process on the same inputs:

- ``hqray-compiler``: the circuit through hqray's tape compiler (compiled once per structure);
- ``hqray-jit``: the same with ``jit=True``, the whole pass one ``torch.compile``'d kernel
  (:mod:`hqray.quantum.jit`; circuits recorded once, up to :data:`JIT_MAX_QUBITS` qubits:
  compiling takes seconds to minutes per cell; left out of ``--quick``);
- ``default.qubit-torch``: PennyLane's default.qubit, torch backprop, broadcasting over rows;
- ``default.qubit-jax-jit``: default.qubit with JAX, ``jax.jit`` of the value and gradient
  over the broadcast batch;
- ``tensorcircuit-jax``: tensorcircuit-ng on JAX, ``jit`` + ``vmap`` over rows, the same
  gates (PennyLane's recorded and decomposed tape, translated gate by gate).

JAX and tensorcircuit-ng come with the ``bench`` extra; without them their columns are
left out, saying so. JAX's threads follow ``threads`` (set before JAX is imported). A
method whose state would pass :data:`AMPLITUDE_LIMIT` amplitudes runs on a sub-batch and the
row says so (``extrapolated_from``); the first call (compilation, tracing) is never timed.
Each method's peak memory comes from one call that returns freed memory to the OS; its
timed calls then keep freed memory for reuse where that peak is small enough to keep
(``heap_reuse``; :func:`~hqray.benchmarks.common.peak_then_time`).
"""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import warnings
from collections.abc import Callable

import pennylane as qml
import torch

from hqray.benchmarks.common import best_time, machine_info, peak_then_time
from hqray.errors import ConfigError

__all__ = ["run_circuit_benchmark", "CIRCUIT_GRID", "QUICK_CIRCUIT_GRID", "random_circuit"]

# (circuit name, qubits): the general circuits, then the SEL grid through the compiler.
CIRCUIT_GRID = [("iqp", 8), ("qcnn", 8), ("qcnn", 12), ("hardware_efficient", 12), ("random", 10),
                ("strongly_entangling", 4), ("strongly_entangling", 8), ("strongly_entangling", 12)]
QUICK_CIRCUIT_GRID = [("qcnn", 4), ("random", 3)]
BATCHES = (256, 4096)
AMPLITUDE_LIMIT = 2**22  # per batch, for the baselines (default.qubit keeps a state per gate)
TIME_BUDGET_S = 8.0
MAX_REPEATS = 20
METHODS = ("hqray-compiler", "hqray-jit", "default.qubit-torch", "default.qubit-jax-jit", "tensorcircuit-jax")
HQRAY_METHODS = ("hqray-compiler", "hqray-jit")
JIT_MAX_QUBITS = 8  # compiling a 12-qubit QCNN's kernel took minutes here
RANDOM_GATES = 200


def random_circuit(n_wires: int, n_gates: int = RANDOM_GATES, seed: int = 0):
    """A seeded random circuit: an angle embedding, then ``n_gates`` gates drawn from one- and
    two-qubit rotations, fixed gates and (multi-)controlled ones, each rotation with its own
    weight; <Z> on every wire. Returns ``(qfunc, n_weights)``."""
    generator = torch.Generator().manual_seed(seed)
    kinds = ["RX", "RY", "RZ", "CNOT", "CZ", "CRX", "IsingXX", "Hadamard", "SWAP", "Toffoli", "PhaseShift"]
    plan, n_weights = [], 0
    for _ in range(n_gates):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
        arity = {"CNOT": 2, "CZ": 2, "CRX": 2, "IsingXX": 2, "SWAP": 2, "Toffoli": 3}.get(kind, 1)
        wires = torch.randperm(n_wires, generator=generator)[:arity].tolist()
        parametric = kind in ("RX", "RY", "RZ", "CRX", "IsingXX", "PhaseShift")
        plan.append((kind, wires, n_weights if parametric else None))
        n_weights += parametric

    def qfunc(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(n_wires), rotation="Y")
        for kind, wires, weight in plan:
            gate = getattr(qml, kind)
            if weight is None:
                gate(wires=wires)
            else:
                gate(weights[weight], wires=wires)
        return [qml.expval(qml.PauliZ(w)) for w in range(n_wires)]
    return qfunc, n_weights


def _circuit(name: str, n_qubits: int) -> tuple[Callable, int, tuple[int, ...]]:
    """(qfunc, features, weight shape) of one grid entry."""
    if name == "random":
        qfunc, n_weights = random_circuit(n_qubits)
        return qfunc, n_qubits, (n_weights,)
    from hqray.quantum.circuits import Circuit

    embedding = "iqp" if name == "iqp" else "angle"
    ansatz = "hardware_efficient" if name == "iqp" else name
    circuit = Circuit(n_qubits=n_qubits, embedding=embedding, ansatz=ansatz, n_layers=2,
                      **({"embedding_options": {"rotation": "Y"}} if embedding == "angle" else {}))
    return circuit.qfunc(), n_qubits, circuit.weight_shape


def available(method: str) -> str | None:
    """Why ``method`` cannot run here (a missing package), or None."""
    needs = {"default.qubit-jax-jit": ["jax"], "tensorcircuit-jax": ["jax", "tensorcircuit"]}.get(method, [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    return f"needs {', '.join(missing)} (pip install 'hqray[bench]')" if missing else None


def _configure_jax(threads: int | None) -> None:
    """One XLA thread when asked for one (before JAX is imported); float32 like the others."""
    if threads == 1 and "jax" not in __import__("sys").modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()


def _hqray(qfunc, n, inputs, weights):
    from hqray.quantum.compiler import run_qfunc

    def run():
        x, w = inputs.clone().requires_grad_(True), weights.clone().requires_grad_(True)
        run_qfunc(qfunc, n, x, w).sum().backward()
    return run


def _hqray_jit(qfunc, n, inputs, weights):
    from hqray.quantum.compiler import run_qfunc
    from hqray.quantum.engine import FallbackWarning

    def run():
        x, w = inputs.clone().requires_grad_(True), weights.clone().requires_grad_(True)
        run_qfunc(qfunc, n, x, w, jit=True).sum().backward()
    with warnings.catch_warnings():  # a circuit jit cannot take is a failed cell, not an eager timing
        warnings.simplefilter("error", FallbackWarning)
        run.compile_s = best_time(run, 1)  # the compilation: reported as the cell's first call
    return run


def _torch_default_qubit(qfunc, n, inputs, weights):
    node = qml.QNode(qfunc, qml.device("default.qubit", wires=n), interface="torch", diff_method="backprop")

    def run():
        x, w = inputs.clone().requires_grad_(True), weights.clone().requires_grad_(True)
        outputs = node(x, w)
        torch.stack(list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]).sum().backward()
    return run


def _jax_default_qubit(qfunc, n, inputs, weights):
    import jax
    import jax.numpy as jnp

    node = qml.QNode(qfunc, qml.device("default.qubit", wires=n), interface="jax", diff_method="backprop")

    def loss(x, w):
        outputs = node(x, w)
        return sum(jnp.sum(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs]))
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    x, w = jnp.asarray(inputs.numpy()), jnp.asarray(weights.numpy())
    return lambda: jax.block_until_ready(step(x, w))


def _tensorcircuit(qfunc, n, inputs, weights):
    import jax
    import jax.numpy as jnp
    import tensorcircuit as tc

    from hqray.quantum.compiler import _expanded

    tc.set_backend("jax")
    tc.set_dtype("complex64")

    def one_row(x, w):  # PennyLane records the gates with JAX parameters; each becomes a tc gate
        tape = qml.tape.make_qscript(qfunc)(x, w)
        circuit = tc.Circuit(n)
        for op in _expanded(tape.operations):
            matrix = jnp.asarray(qml.matrix(op, wire_order=op.wires), dtype=jnp.complex64)
            circuit.any(*[int(w) for w in op.wires], unitary=matrix)
        values = []
        for measurement in tape.measurements:
            if measurement.obs is None or measurement.obs.name != "PauliZ":
                raise ValueError(f"the tensorcircuit baseline measures <Z> only, not {measurement!r}")
            values.append(jnp.real(circuit.expectation_ps(z=[int(measurement.wires[0])])))
        return jnp.stack(values)

    def loss(x, w):
        return jnp.sum(jax.vmap(one_row, in_axes=(0, None))(x, w))
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    x, w = jnp.asarray(inputs.numpy()), jnp.asarray(weights.numpy())
    return lambda: jax.block_until_ready(step(x, w))


BUILDERS = {"hqray-compiler": _hqray, "hqray-jit": _hqray_jit, "default.qubit-torch": _torch_default_qubit,
            "default.qubit-jax-jit": _jax_default_qubit, "tensorcircuit-jax": _tensorcircuit}


def _measure(method: str, qfunc, n: int, inputs: torch.Tensor, weights: torch.Tensor, budget: float) -> dict:
    batch = inputs.shape[0]
    rows = batch
    if method not in HQRAY_METHODS and batch * 2**n > AMPLITUDE_LIMIT:
        rows = max(16, AMPLITUDE_LIMIT // 2**n)
    run = BUILDERS[method](qfunc, n, inputs[:rows], weights)
    first, repeats = _first_call_and_repeats(run, budget)
    gc.collect()
    seconds, peak_mb, reused = peak_then_time(run, repeats)
    return {"samples_per_s": rows / seconds, "peak_mb": round(peak_mb, 1), "repeats": repeats,
            "heap_reuse": reused, "extrapolated_from": rows if rows < batch else None,
            "first_call_s": round(first, 3)}


def _first_call_and_repeats(run: Callable[[], object], budget: float) -> tuple[float, int]:
    """The first call's seconds (compilation, tracing: never timed; a method compiled in its
    set-up reports that as ``run.compile_s``) and how many timed calls fit the budget.

    The count comes from a warm call, unless the first call alone outlasts the budget (a slow
    method, not a compilation). Counted from the first call, its compilation (a second for
    hqray, seconds for JAX) once left hqray 3 timed calls of a 0.1-s cell and a JAX method 1;
    counted from a set-up compilation, a 60-s jit compile left hqray-jit 1 (2026-12-07h runs)."""
    compile_s = getattr(run, "compile_s", None)
    first = compile_s if compile_s is not None else best_time(run, 1)
    warm = best_time(run, 1) if compile_s is not None or first < budget else first
    return first, max(1, min(MAX_REPEATS, int(budget / max(warm, 1e-6) / 2)))


def run_circuit_benchmark(quick: bool = False, threads: int | None = None, log: Callable[[str], None] = print,
                          only: tuple[str, ...] = (), max_qubits: int | None = None,
                          circuits: tuple[str, ...] = ()) -> list[dict]:
    """Runs the grid; returns rows keyed circuit, n_qubits, batch, method, threads, samples_per_s.

    ``circuits`` keeps only those cells (``"qcnn"`` or ``"qcnn:12"``); their inputs are the
    full grid's.

    One method at a time over every cell, hqray first: torch's eager calls ran up to 1.45x
    slower in a process where JAX had already run (measured here at 8 qubits, B = 256, one
    thread), so interleaving methods cell by cell would time hqray after JAX on every cell
    but the first. Every method still runs in this one process, on the same inputs.
    """
    _configure_jax(threads)
    if threads:
        torch.set_num_threads(threads)
    info = machine_info()
    log(f"machine: {info}; torch threads {torch.get_num_threads()}")
    methods = [m for m in METHODS if not only or m == "hqray-compiler" or m in only]
    for method in methods:
        reason = available(method)
        if reason:
            log(f"{method}: left out, {reason}")
    methods = [m for m in methods if available(m) is None]
    if quick and "hqray-jit" in methods:
        log("hqray-jit: left out of --quick (compiling takes seconds per cell)")
        methods.remove("hqray-jit")
    cells = _cells(quick, max_qubits, circuits)
    results: dict[tuple, dict[str, dict]] = {key: {} for key, *_ in cells}
    for method in methods:
        for key, qfunc, inputs, weights in cells:
            if method == "hqray-jit" and key[1] > JIT_MAX_QUBITS:
                continue
            result = results[key][method] = _measured_or_failed(method, qfunc, key[1], inputs, weights, quick)
            log(f"  {method} {key[0]} n={key[1]} B={key[2]}: " + (
                f"{result['samples_per_s']:,.0f}/s" if "error" not in result else f"failed ({result['error']})"))
    for key, *_ in cells:
        _log_cell(log, key, results[key])
    return [{"circuit": name, "n_qubits": n, "batch": batch, "method": method, "threads": torch.get_num_threads(),
             "machine": info, **result} for (name, n, batch), by_method in results.items()
            for method, result in by_method.items()]


def _cells(quick: bool, max_qubits: int | None, circuits: tuple[str, ...] = ()) -> list[tuple]:
    """(key, qfunc, inputs, weights) of every cell kept, drawn once so every method gets the
    same; every cell's draw happens, kept or not, so a kept cell gets the full grid's inputs."""
    grid = QUICK_CIRCUIT_GRID if quick else CIRCUIT_GRID
    wanted = _wanted(grid, circuits)
    generator = torch.Generator().manual_seed(0)
    cells = []
    for name, n in grid:
        keep = (max_qubits is None or n <= max_qubits) and (name, n) in wanted
        qfunc, features, weight_shape = _circuit(name, n)
        weights = torch.rand(weight_shape, generator=generator) * 6.28
        for batch in (16,) if quick else BATCHES:
            inputs = torch.rand(batch, features, generator=generator) * 3.14
            if keep:
                cells.append(((name, n, batch), qfunc, inputs, weights))
    return cells


def _wanted(grid: list[tuple[str, int]], circuits: tuple[str, ...]) -> set[tuple[str, int]]:
    """The grid entries ``circuits`` names (all when empty); an entry naming none is an error."""
    if not circuits:
        return set(grid)
    wanted = set()
    for entry in circuits:
        name, _, qubits = entry.partition(":")
        found = {(g, n) for g, n in grid if g == name and (not qubits or str(n) == qubits)}
        if not found:
            listed = ", ".join(f"{g}:{n}" for g, n in grid)
            raise ConfigError(f"--circuits {entry!r} names no cell of this grid; expected one of {listed}")
        wanted |= found
    return wanted


def _measured_or_failed(method: str, qfunc, n: int, inputs: torch.Tensor, weights: torch.Tensor,
                        quick: bool) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _measure(method, qfunc, n, inputs, weights, 1.0 if quick else TIME_BUDGET_S)
        except Exception as error:  # recorded, not hidden (XLA out of memory, say)
            if method == "hqray-compiler":
                raise
            return {"samples_per_s": math.nan, "peak_mb": math.nan, "repeats": 0, "heap_reuse": False,
                    "extrapolated_from": None, "first_call_s": math.nan,
                    "error": f"{type(error).__name__}: {str(error)[:200]}"}


def _log_cell(log: Callable[[str], None], key: tuple, results: dict[str, dict]) -> None:
    name, n, batch = key
    ours = _best_hqray({m: r["samples_per_s"] for m, r in results.items()})[1]
    log(f"{name} n={n} B={batch}: " + "; ".join(
        f"{m} {r['samples_per_s']:,.0f}/s"
        + ("" if m in HQRAY_METHODS else f" (hqray x{ours / r['samples_per_s']:.1f})")
        + (f" [from {r['extrapolated_from']}]" if r["extrapolated_from"] else "")
        for m, r in results.items()))


def _best_hqray(speeds: dict[str, float]) -> tuple[str, float]:
    """hqray's fastest method in a cell (a failed or absent one counts as not run)."""
    measured = [(speeds[m], m) for m in HQRAY_METHODS if not math.isnan(speeds.get(m, math.nan))]
    speed, method = max(measured)
    return method, speed


def summary(rows: list[dict]) -> list[dict]:
    """Per cell: hqray's fastest method and its ratio to default.qubit-torch and to the best JAX path."""
    cells: dict[tuple, dict[str, float]] = {}
    for row in rows:
        cells.setdefault((row["circuit"], row["n_qubits"], row["batch"], row["threads"]), {})[row["method"]] = \
            row["samples_per_s"]
    table = []
    for (name, n, batch, threads), speeds in cells.items():
        method, ours = _best_hqray(speeds)
        jax_paths = [speeds[m] for m in ("default.qubit-jax-jit", "tensorcircuit-jax") if m in speeds]
        table.append({"circuit": name, "n_qubits": n, "batch": batch, "threads": threads, "hqray_method": method,
                      "vs_default_qubit_torch": ours / speeds.get("default.qubit-torch", math.nan),
                      "vs_best_jax": ours / max(jax_paths) if jax_paths else math.nan})
    return table
