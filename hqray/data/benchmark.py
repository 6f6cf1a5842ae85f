"""The dataset families of "Better than classical? The subtle art of benchmarking quantum
machine learning models" (Bowles, Ahmed & Schuld, 2024), generated from the paper's
definitions (as its public repository XanaduAI/qml-benchmarks implements them), seeded.

Labels follow the paper's -1 / +1 classes (``class_names == ("-1", "+1")``, bars and
stripes: ``("bar", "stripe")``). Where the paper standardises the generated inputs, so do
these generators: that is part of each dataset's definition, not a model's preprocessing
(which hqray fits inside each fold). The paper's MNIST-PCA needs a download: the offline
stand-in is scikit-learn's 8x8 digits, 3 versus 5 (``digits_3v5``), reduced by the model's
own in-fold PCA.

**Example**

>>> from hqray.data import load_dataset
>>> data = load_dataset("linearly_separable", n_features=4, n_samples=100)
>>> data.features.shape, data.class_names
((100, 4), ('-1', '+1'))
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from hqray.data.registry import Dataset, DatasetOptions, register_dataset

SIGNS = ("-1", "+1")


class _Family(DatasetOptions):
    n_samples: int = Field(300, ge=4, le=1_000_000, description="rows (the paper: 240 train + 60 test)")
    n_features: int = Field(10, ge=2, le=1000)
    seed: int = Field(0, ge=0)


def _names(count: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(count))


def _standardised(features: np.ndarray) -> np.ndarray:
    return (features - features.mean(axis=0)) / features.std(axis=0)


class LinearlySeparableOptions(_Family):
    margin: float = Field(0.1, ge=0.0, description="no point closer than this to the hyperplane sum(x) = 0")


@register_dataset("linearly_separable", LinearlySeparableOptions,
                  "Bowles et al. 2024: uniform points in [-1, 1]^d outside a margin around sum(x) = 0; "
                  "class -1 above the plane")
def load_linearly_separable(options: LinearlySeparableOptions) -> Dataset:
    rng = np.random.default_rng(options.seed)
    kept: list[np.ndarray] = []
    while sum(len(k) for k in kept) < options.n_samples:
        draw = rng.uniform(-1.0, 1.0, size=(2 * options.n_samples, options.n_features))
        kept.append(draw[np.abs(draw.sum(axis=1)) > options.margin])
    features = np.concatenate(kept)[: options.n_samples]
    labels = (features.sum(axis=1) < 0).astype(np.int64)  # index 0 is "-1": the side above the plane
    return Dataset("linearly_separable", features, labels, _names(options.n_features), SIGNS, options.model_dump())


class HiddenManifoldOptions(_Family):
    manifold_dimension: int = Field(6, ge=1, le=1000)


@register_dataset("hidden_manifold", HiddenManifoldOptions,
                  "Bowles et al. 2024: Gaussian points on an m-dimensional manifold embedded nonlinearly in "
                  "d dimensions, labelled by a random one-layer network (median split: balanced)")
def load_hidden_manifold(options: HiddenManifoldOptions) -> Dataset:
    rng = np.random.default_rng(options.seed)
    m, d = options.manifold_dimension, options.n_features
    embedding = rng.normal(size=(m, d))
    latent = rng.normal(size=(options.n_samples, m))
    biases = rng.uniform(-1.0, 1.0, size=d)
    features = np.tanh(latent @ embedding / np.sqrt(m) - biases)
    hidden, readout = rng.normal(size=(m, m)), rng.normal(size=m)
    scores = np.tanh(latent @ hidden.T) @ readout / np.sqrt(m)
    labels = (scores >= np.median(scores)).astype(np.int64)
    return Dataset("hidden_manifold", features, labels, _names(d), SIGNS, options.model_dump())


class TwoCurvesOptions(_Family):
    degree: int = Field(5, ge=1, le=100, description="Fourier degree of the embedding: its curvature")
    offset: float = Field(0.1, description="shift of the second curve in every coordinate")
    noise: float = Field(0.01, ge=0.0, description="standard deviation of Gaussian noise per coordinate")


@register_dataset("two_curves", TwoCurvesOptions,
                  "Bowles et al. 2024: two 1-d curves embedded in d dimensions by Fourier series of a degree, "
                  "the second shifted by an offset; standardised")
def load_two_curves(options: TwoCurvesOptions) -> Dataset:
    rng = np.random.default_rng(options.seed)
    d, degree, half = options.n_features, options.degree, options.n_samples // 2
    coefficients = rng.uniform(size=(d, degree + 1, 2))
    coefficients /= np.linalg.norm(coefficients)
    t = rng.uniform(size=2 * half)
    frequencies = np.arange(1, degree + 1) * np.pi * t[:, None]               # (n, degree)
    features = (coefficients[:, 0, 0] + coefficients[:, 0, 1]
                + np.cos(frequencies) @ coefficients[:, 1:, 0].T
                + np.sin(frequencies) @ coefficients[:, 1:, 1].T)             # (n, d)
    features += rng.normal(scale=options.noise, size=features.shape) if options.noise else 0.0
    features[half:] += options.offset
    labels = np.repeat([0, 1], half)
    return Dataset("two_curves", _standardised(features), labels, _names(d), SIGNS, options.model_dump())


class HyperplanesParityOptions(_Family):
    n_hyperplanes: int = Field(2, ge=1, le=100)
    dim_hyperplanes: int = Field(3, ge=1, le=100, description="dimension of the space the hyperplanes live in")


@register_dataset("hyperplanes_parity", HyperplanesParityOptions,
                  "Bowles et al. 2024: Gaussian points labelled by the parity of the hyperplanes they lie "
                  "above, linearly embedded in d dimensions; balanced, standardised")
def load_hyperplanes_parity(options: HyperplanesParityOptions) -> Dataset:
    rng = np.random.default_rng(options.seed)
    k, half = options.dim_hyperplanes, options.n_samples // 2
    normals = rng.uniform(size=(options.n_hyperplanes, k))
    offsets = rng.uniform(size=options.n_hyperplanes)
    points = rng.normal(size=(8 * options.n_samples, k))
    even = ((points @ normals.T + offsets > 0).sum(axis=1) % 2 == 0)  # the paper's +1 class
    if min(even.sum(), (~even).sum()) < half:
        from hqray.errors import DataError

        raise DataError(f"hyperplanes_parity: seed {options.seed} gives too few points of one parity; "
                        "choose another seed")
    chosen = np.concatenate([points[~even][:half], points[even][:half]])
    features = chosen @ rng.uniform(size=(k, options.n_features))
    labels = np.repeat([0, 1], half)
    return Dataset("hyperplanes_parity", _standardised(features), labels, _names(options.n_features), SIGNS,
                   options.model_dump())


class BarsAndStripesOptions(DatasetOptions):
    n_samples: int = Field(300, ge=4, le=1_000_000)
    height: int = Field(4, ge=2, le=64)
    width: int = Field(4, ge=2, le=64)
    noise: float = Field(0.5, ge=0.0, description="standard deviation of Gaussian pixel noise")
    seed: int = Field(0, ge=0)


@register_dataset("bars_and_stripes", BarsAndStripesOptions,
                  "Bowles et al. 2024: -1/+1 images with random rows (stripe) or columns (bar) lit, plus "
                  "Gaussian noise; pixels are the features (height x width)")
def load_bars_and_stripes(options: BarsAndStripesOptions) -> Dataset:
    rng = np.random.default_rng(options.seed)
    n, h, w = options.n_samples, options.height, options.width
    stripe = rng.uniform(size=n) > 0.5
    rows = rng.uniform(size=(n, h)) > 0.5
    columns = rng.uniform(size=(n, w)) > 0.5
    lit = np.where(stripe[:, None, None], rows[:, :, None], columns[:, None, :])   # (n, h, w)
    images = np.where(lit, 1.0, -1.0) + rng.normal(scale=options.noise, size=(n, h, w))
    names = tuple(f"pixel_{r}_{c}" for r in range(h) for c in range(w))
    return Dataset("bars_and_stripes", images.reshape(n, h * w), stripe.astype(np.int64), names,
                   ("bar", "stripe"), options.model_dump())


class DigitsPairOptions(DatasetOptions):
    """No options: the pair is fixed to the paper's MNIST task (3 versus 5)."""


@register_dataset("digits_3v5", DigitsPairOptions,
                  "offline stand-in for the paper's MNIST-PCA: scikit-learn's 8x8 digits, 3 versus 5 "
                  "(64 pixels; PCA is the model's own, inside each fold)")
def load_digits_3v5(options: DigitsPairOptions) -> Dataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    keep = np.isin(raw.target, (3, 5))
    names = tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8))
    return Dataset("digits_3v5", raw.data[keep], (raw.target[keep] == 5).astype(np.int64), names, ("3", "5"),
                   options.model_dump())
