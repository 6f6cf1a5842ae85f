"""Quantum kernels: each sample's state simulated once, Gram matrices in tiles.

The fidelity kernel ``k(x, y) = |<phi(x)|phi(y)>|^2`` of a feature map
``|phi(x)> = U(x)|0>`` needs N^2 overlaps but only N circuits: the states ``S`` (one row
per sample) are simulated once and the Gram matrix is ``|S S^H|^2``, computed tile by
tile so memory is bounded by the tile size (plus the result). The projected kernel
``exp(-gamma * sum_k ||rho_k(x) - rho_k(y)||_F^2)`` uses each qubit's reduced density
matrix. A finite-shot estimate samples each overlap as a QPU's inversion test would:
``Binomial(shots, k) / shots``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hqray.errors import CircuitError, DataError
from hqray.quantum.engine import execute
from hqray.quantum.spec import CircuitSpec

__all__ = ["QuantumKernel", "tiles", "gram_tile", "bloch_vectors", "register_kernel_executor",
           "kernel_executor"]

DEFAULT_TILE_ROWS = 2048


def tiles(n_rows: int, n_columns: int, tile: int, symmetric: bool) -> list[tuple[int, int, int, int]]:
    """``(row_start, row_stop, column_start, column_stop)`` tiles covering the matrix;
    only the upper triangle (diagonal tiles included) when ``symmetric``."""
    result = []
    for row in range(0, n_rows, tile):
        for column in range(row if symmetric else 0, n_columns, tile):
            result.append((row, min(row + tile, n_rows), column, min(column + tile, n_columns)))
    return result


def bloch_vectors(states: np.ndarray, n_qubits: int) -> np.ndarray:
    """Per-qubit Bloch vectors ``(<X>, <Y>, <Z>)`` of pure states: ``(N, 3 * n_qubits)``."""
    columns = []
    for wire in range(n_qubits):
        view = states.reshape(states.shape[0], 2**wire, 2, -1)
        zero, one = view[:, :, 0, :], view[:, :, 1, :]
        coherence = (zero.conj() * one).sum(axis=(1, 2))
        columns += [2 * coherence.real, 2 * coherence.imag,
                    (np.abs(zero) ** 2).sum(axis=(1, 2)) - (np.abs(one) ** 2).sum(axis=(1, 2))]
    return np.stack(columns, axis=1).astype(np.float64)


def gram_tile(left: np.ndarray, right: np.ndarray, kind: str, gamma: float) -> np.ndarray:
    """One tile of the Gram matrix from two blocks of states (fidelity) or Bloch vectors."""
    if kind == "fidelity":
        with warnings.catch_warnings():
            # Object-store arrays are read-only; this product only reads them.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            overlaps = torch.from_numpy(left) @ torch.from_numpy(right).conj().T
        return (overlaps.real.square() + overlaps.imag.square()).numpy().astype(np.float64)
    # projected: ||rho_a - rho_b||_F^2 = |r_a - r_b|^2 / 2 summed over qubits
    distances = (np.square(left).sum(1)[:, None] + np.square(right).sum(1)[None, :]
                 - 2 * left @ right.T)
    return np.exp(-gamma * 0.5 * np.maximum(distances, 0.0))


def sample_shots(values: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Finite-shot estimate of probabilities ``values`` (clipped to [0, 1])."""
    rng = np.random.default_rng(seed)
    return rng.binomial(shots, np.clip(values, 0.0, 1.0)) / shots


@dataclass(frozen=True)
class QuantumKernel:
    """A quantum kernel over a feature-map circuit.

    Args:
        spec: the feature map: ``embedding(x) -> ansatz(weights)`` (with ``reupload`` the
            pair repeats per layer). Its measurement is ignored: states are used.
        weights: fixed ansatz weights (``None``: zeros, i.e. only the entangling gates act).
        kind: ``"fidelity"`` or ``"projected"``.
        gamma: bandwidth of the projected kernel.
        shots: finite-shot estimate of each kernel value (``None``: exact).
        tile_rows: tile edge; bounds the memory of one tile to ``tile_rows^2`` values.
        seed: seed of the shot sampling.

    **Example**

    >>> import numpy as np
    >>> kernel = QuantumKernel(CircuitSpec(n_qubits=2, n_layers=1, reupload=True))
    >>> gram = kernel.gram(np.array([[0.1, 0.2], [0.3, 0.4], [1.0, 2.0]]))
    >>> gram.shape, bool(np.allclose(np.diag(gram), 1.0))
    ((3, 3), True)
    """

    spec: CircuitSpec
    weights: np.ndarray | None = None
    kind: Literal["fidelity", "projected"] = "fidelity"
    gamma: float = 1.0
    shots: int | None = None
    tile_rows: int = DEFAULT_TILE_ROWS
    seed: int = 0

    def __post_init__(self):
        if self.kind not in ("fidelity", "projected"):
            raise CircuitError(f"kernel kind must be 'fidelity' or 'projected', got {self.kind!r}")
        if self.tile_rows < 1 or (self.shots is not None and self.shots < 1) or self.gamma <= 0:
            raise CircuitError(f"tile_rows, shots and gamma must be positive, got "
                               f"{self.tile_rows}, {self.shots}, {self.gamma}")
        if not self.spec.exact:
            raise CircuitError("a kernel's feature map must be exact; use `shots` for sampling")

    def state_spec(self) -> CircuitSpec:
        return self.spec.model_copy(update={"measurement": "state"})

    def check(self, features, what: str = "X") -> np.ndarray:
        """Validates a feature matrix against the feature map's width."""
        try:
            array = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(f"{what} must be numeric: {error}") from None
        if array.ndim != 2 or array.shape[0] == 0:
            raise DataError(f"{what} must be a non-empty 2-D array, got shape {array.shape}")
        if array.shape[1] > self.spec.n_features:
            raise DataError(f"{what}: the feature map of {self.spec.n_qubits} qubits takes at most "
                            f"{self.spec.n_features} features, got {array.shape[1]}")
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise DataError(f"{what} has NaN/inf in rows {np.flatnonzero(bad)[:10].tolist()}")
        return array

    def states(self, features) -> np.ndarray:
        """States ``(N, 2^n)`` (fidelity) or Bloch vectors ``(N, 3n)`` (projected) of the rows."""
        array = self.check(features)
        spec = self.state_spec()
        dtype = torch.float64 if spec.precision == "double" else torch.float32
        weights = torch.zeros(spec.weight_shape, dtype=dtype) if self.weights is None else \
            torch.as_tensor(self.weights, dtype=dtype)
        chunks = []
        with torch.no_grad():
            for start in range(0, array.shape[0], self.tile_rows):
                rows = torch.as_tensor(array[start:start + self.tile_rows], dtype=dtype)
                strategy = "statevector" if spec.hand_written else "compiled"
                chunks.append(execute(spec, rows, weights, strategy=strategy).numpy())
        states = np.concatenate(chunks)
        return bloch_vectors(states, spec.n_qubits) if self.kind == "projected" else states

    def iter_tiles(self, left: np.ndarray, right: np.ndarray | None) -> Iterator[tuple[tuple, np.ndarray]]:
        symmetric = right is None
        right = left if right is None else right
        for index, (r0, r1, c0, c1) in enumerate(tiles(left.shape[0], right.shape[0], self.tile_rows, symmetric)):
            block = gram_tile(left[r0:r1], right[c0:c1], self.kind, self.gamma)
            if self.shots is not None:
                block = sample_shots(block, self.shots, self.seed + index)
            yield (r0, r1, c0, c1), block

    def assemble(self, n_rows: int, n_columns: int, blocks, symmetric: bool) -> np.ndarray:
        """Writes tiles into the Gram matrix (mirroring the upper triangle when symmetric)."""
        gram = np.empty((n_rows, n_columns), dtype=np.float64)
        for (r0, r1, c0, c1), block in blocks:
            if symmetric and c0 == r0:
                # Exact symmetry inside diagonal tiles (summation order differs by triangle).
                block = np.triu(block) + np.triu(block, 1).T
            gram[r0:r1, c0:c1] = block
            if symmetric and c0 != r0:
                gram[c0:c1, r0:r1] = block.T
        if symmetric and (self.kind == "fidelity" or self.shots is not None):
            np.fill_diagonal(gram, 1.0)  # <phi|phi> = 1 by definition, sampled or not
        return gram

    def gram_from_states(self, left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
        """The Gram matrix between state blocks (``right=None``: the symmetric training Gram)."""
        symmetric = right is None
        n_columns = left.shape[0] if symmetric else right.shape[0]
        return self.assemble(left.shape[0], n_columns, self.iter_tiles(left, right), symmetric)

    def gram(self, features, other=None) -> np.ndarray:
        """Kernel matrix ``K[i, j] = k(features[i], other[j])`` (``other=None``: with itself)."""
        left = self.states(features)
        if other is None:
            return self.gram_from_states(left)
        right = self.states(self.check(other, "Y"))
        if np.asarray(other).shape[1] != np.asarray(features).shape[1]:
            raise DataError(f"train and test widths differ: {np.asarray(features).shape[1]} vs "
                            f"{np.asarray(other).shape[1]} features")
        return self.gram_from_states(left, right)


# Executors compute a Gram matrix from state blocks: ``(kernel, left, right, options) -> gram``.
# "local" runs in this process; hqray.cluster registers "pool" (tiles on CircuitWorkers).
_EXECUTORS: dict[str, Callable[[QuantumKernel, np.ndarray, np.ndarray | None, dict], np.ndarray]] = {
    "local": lambda kernel, left, right, options: kernel.gram_from_states(left, right),
}


def register_kernel_executor(name: str, executor: Callable) -> None:
    """Makes ``executor`` available as ``QuantumKernelSVC(executor=name)``."""
    _EXECUTORS[name] = executor


def kernel_executor(name: str) -> Callable:
    try:
        return _EXECUTORS[name]
    except KeyError:
        hint = " (import hqray.cluster to register 'pool')" if name == "pool" else ""
        raise CircuitError(f"unknown kernel executor {name!r}; expected one of {sorted(_EXECUTORS)}{hint}") from None
