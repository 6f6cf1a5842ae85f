"""`hqray bench noisy`: the QPU tier's density-matrix engine against PennyLane's default.mixed.

Both run the same circuit (angle embedding + strongly entangling layers) with the same
channels (``NoiseModel(depolarizing=p)``: PennyLane's DepolarizingChannel after every gate,
on each of its wires), in one process, on the same inputs and weights; the run checks that
their outputs agree and records the largest difference. Rows per second are
``batch / best time``; default.mixed is timed on a smaller batch (its cost is linear in the
batch: it broadcasts row by row through its density matrix), which its row says. Where
qiskit-aer is installed, its density-matrix method runs the circuit too, written in qiskit
and submitted as one job of all rows, with a depolarizing error of the same strength on each
of its own basis gates (the channels sit after transpiled gates, so its values are close to,
not equal to, the others'); and through the pennylane-qiskit plugin as a PennyLane user
runs it (one transpiled circuit per row; timed on 8 rows).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from hqray.benchmarks.common import best_time, machine_info
from hqray.quantum.circuits import Circuit
from hqray.quantum.mixed import run_noisy
from hqray.quantum.noise import NoiseModel, with_noise

__all__ = ["run_noisy_benchmark"]


def _inputs(n_qubits: int, batch: int, shape: tuple[int, ...], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, n_qubits, dtype=torch.float64, generator=generator) * 3,
            torch.rand(shape, dtype=torch.float64, generator=generator) * 6)


def _default_mixed(circuit: Circuit, noise: NoiseModel, shots: int | None = None) -> Callable:
    """default.mixed on the same noisy circuit: exact (backprop), or estimated from ``shots``
    measurements per row (forward only: samples have no gradient)."""
    import pennylane as qml

    node = qml.QNode(with_noise(circuit.qfunc(), noise), qml.device("default.mixed", wires=circuit.n_qubits),
                     interface="torch", **({"diff_method": "backprop"} if shots is None else {"shots": shots}))
    return lambda inputs, weights: torch.stack(list(node(inputs, weights)), dim=-1)


def _aer_noise(p: float):
    from qiskit_aer.noise import NoiseModel as AerNoiseModel
    from qiskit_aer.noise import depolarizing_error

    model = AerNoiseModel()
    one = depolarizing_error(4 * p / 3, 1)  # PennyLane's p is qiskit's 4p/3 (I/2 mixing)
    model.add_all_qubit_quantum_error(one, ["rx", "ry", "rz", "sx", "x", "h", "u", "u1", "u2", "u3"])
    model.add_all_qubit_quantum_error(one.tensor(one), ["cx"])
    return model


def _aer_plugin(circuit: Circuit, p: float) -> Callable:
    """qiskit.aer through pennylane-qiskit, as a PennyLane user runs it."""
    import pennylane as qml

    device = qml.device("qiskit.aer", wires=circuit.n_qubits, method="density_matrix", noise_model=_aer_noise(p))
    node = qml.set_shots(qml.QNode(circuit.qfunc(), device), shots=None)
    return lambda inputs, weights: torch.as_tensor(np.stack(node(inputs.numpy(), weights.numpy()), axis=-1))


def _aer_direct(circuit: Circuit, p: float, shots: int | None = None) -> Callable:
    """The same circuit written in qiskit (RY embedding, Rot = RZ RY RZ, CNOT rings), transpiled
    once, all rows bound and run as one job on AerSimulator's density-matrix method: exact
    probabilities, or ``shots`` measurements per row."""
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit import ParameterVector
    from qiskit_aer import AerSimulator

    n, layers = circuit.n_qubits, circuit.n_layers
    x, w = ParameterVector("x", n), ParameterVector("w", layers * n * 3)
    qc = QuantumCircuit(n)
    for wire in range(n):
        qc.ry(x[wire], wire)
    for layer in range(layers):
        for wire in range(n):
            phi, theta, omega = (w[(layer * n + wire) * 3 + k] for k in range(3))
            qc.rz(phi, wire)
            qc.ry(theta, wire)
            qc.rz(omega, wire)
        step = layer % (n - 1) + 1 if n > 1 else 0
        for wire in range(n if n > 1 else 0):
            qc.cx(wire, (wire + step) % n)
    simulator = AerSimulator(method="density_matrix", noise_model=_aer_noise(p))
    # <Z_i> from probabilities or counts; qiskit orders bits little-endian (qubit 0 is the last bit).
    signs = np.array([[1 - 2 * ((index >> wire) & 1) for wire in range(n)] for index in range(2**n)])
    if shots is None:  # exact: the density matrix's probabilities, as EstimatorV2 without precision
        qc.save_probabilities()
    else:  # sampled, as SamplerV2: counts of `shots` measurements of every qubit per row
        qc.measure_all()
    compiled = transpile(qc, simulator)

    def run(inputs, weights):
        flat = weights.detach().numpy().reshape(-1).tolist()
        bound = [compiled.assign_parameters({x: row.tolist(), w: flat}) for row in inputs.detach().numpy()]
        result = simulator.run(bound, shots=shots, seed_simulator=0).result()
        if shots is None:
            probabilities = np.stack([result.data(i)["probabilities"] for i in range(len(bound))])
        else:
            probabilities = np.zeros((len(bound), 2**n))
            for i in range(len(bound)):
                for bits, count in result.get_counts(i).items():
                    probabilities[i, int(bits.replace(" ", ""), 2)] = count / shots
        return torch.as_tensor(probabilities @ signs)
    return run


def _aer(circuit: Circuit, p: float) -> list[tuple[str, Callable]]:
    try:
        import qiskit_aer  # noqa: F401
    except ImportError:
        return []
    methods = [("qiskit-aer-density_matrix (direct, one job)", _aer_direct(circuit, p)),
               ("qiskit-aer-density_matrix-1024-shots (direct, one job)", _aer_direct(circuit, p, shots=1024))]
    try:
        methods.append(("qiskit.aer (pennylane-qiskit plugin)", _aer_plugin(circuit, p)))
    except Exception:  # the plugin absent or incompatible: the direct row still stands
        pass
    return methods


def _rate(run: Callable, inputs, weights, repeats: int, backward: bool) -> float:
    def call():
        if backward:
            x, w = inputs.clone().requires_grad_(), weights.clone().requires_grad_()
            run(x, w).sum().backward()
        else:
            with torch.no_grad():
                run(inputs, weights)
    call()  # warm-up
    return inputs.shape[0] / best_time(call, repeats)


def _configuration(n_qubits: int, batch: int, small_batch: int, p: float, repeats: int,
                   log: Callable[[str], None]) -> list[dict]:
    circuit = Circuit(n_qubits=n_qubits, embedding="angle", ansatz="strongly_entangling", n_layers=2,
                      measurement="expval_z")
    noise = NoiseModel(depolarizing=p)
    inputs, weights = _inputs(n_qubits, batch, circuit.weight_shape)
    small = inputs[:small_batch]

    def hqray(x, w):
        return run_noisy(circuit.qfunc(), n_qubits, x, w, noise)

    def hqray_shots(x, w):
        return run_noisy(circuit.qfunc(), n_qubits, x, w, noise, shots=1024, seed=0)

    mixed = _default_mixed(circuit, noise)
    with torch.no_grad():
        difference = float((hqray(small, weights) - mixed(small, weights)).abs().max())
    rows = []
    methods = [("hqray-density_matrix", hqray, inputs, True), ("hqray-density_matrix-1024-shots", hqray_shots,
                                                               inputs, True),
               ("default.mixed", mixed, small, True),
               ("default.mixed-1024-shots", _default_mixed(circuit, noise, shots=1024), small, False)]
    for name, run in _aer(circuit, p):
        methods.append((name, run, inputs if "direct" in name else small[:min(8, len(small))], False))
    for name, run, rows_in, differentiable in methods:
        for backward in (False, True) if differentiable else (False,):
            # A minute per call at 10 qubits: the slow simulators are timed once there.
            times = repeats if name.startswith(("hqray", "qiskit-aer")) or n_qubits < 10 else 1
            rate = _rate(run, rows_in, weights, times, backward)
            row = {"method": name, "n_qubits": n_qubits, "layers": 2, "batch": rows_in.shape[0],
                   "shots": 1024 if "1024-shots" in name else None,
                   "pass": "forward+backward" if backward else "forward", "samples_per_s": round(rate, 2)}
            rows.append(row)
            log(f"{n_qubits} qubits  {name:44s} {row['pass']:17s} batch {rows_in.shape[0]:4d}: {rate:10.1f} rows/s")
    for row in rows:
        row["max_abs_difference_vs_default_mixed"] = difference
    return rows


def run_noisy_benchmark(qubits: tuple[int, ...] = (4, 8, 10), batch: int = 256, p: float = 0.01, repeats: int = 3,
                        log: Callable[[str], None] = print) -> dict:
    """Rows per second of each method per circuit size, their ratios, and the machine."""
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plugin deprecation chatter
        for n_qubits in qubits:
            small = batch if n_qubits <= 4 else (max(8, batch // 8) if n_qubits <= 8 else 4)
            results += _configuration(n_qubits, batch, small, p, repeats, log)
    ratios = {}
    for n_qubits in qubits:
        by = {(r["method"], r["pass"]): r["samples_per_s"] for r in results if r["n_qubits"] == n_qubits}
        pairs = [("hqray-density_matrix", "default.mixed"),
                 ("hqray-density_matrix", "qiskit-aer-density_matrix (direct, one job)"),
                 ("hqray-density_matrix-1024-shots", "qiskit-aer-density_matrix-1024-shots (direct, one job)")]
        for ours, other in pairs:
            for kind in ("forward", "forward+backward"):
                if (other, kind) in by:
                    ratios[f"{n_qubits}q {kind}: {ours} / {other}"] = round(by[(ours, kind)] / by[(other, kind)], 2)
    return {"machine": machine_info(), "noise": f"depolarizing {p} after every gate on each wire",
            "rows": results, "ratios": ratios}
