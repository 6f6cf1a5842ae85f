"""The Bowles-Ahmed-Schuld dataset families: shapes, balance, seeds and each family's rule."""

from __future__ import annotations

import numpy as np
import pytest

from hqray.data import list_datasets, load_dataset
from hqray.errors import ConfigError

FAMILIES = ["linearly_separable", "hidden_manifold", "two_curves", "hyperplanes_parity", "bars_and_stripes"]


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_is_registered_seeded_and_sized(name):
    first = load_dataset(name, n_samples=120, seed=3)
    again = load_dataset(name, n_samples=120, seed=3)
    other = load_dataset(name, n_samples=120, seed=4)
    assert first.features.shape[0] == 120 and np.isfinite(first.features).all()
    np.testing.assert_array_equal(first.features, again.features)
    assert not np.array_equal(first.features, other.features)
    assert set(np.unique(first.labels)) == {0, 1}
    assert name in {entry.name for entry in list_datasets()}


def test_linearly_separable_keeps_its_margin_and_its_side():
    data = load_dataset("linearly_separable", n_features=5, margin=0.3, n_samples=400)
    sums = data.features.sum(axis=1)
    assert np.abs(sums).min() > 0.3 and np.abs(data.features).max() <= 1.0
    assert ((sums > 0) == (data.labels == 0)).all()  # "-1" above the plane sum(x) = 0


@pytest.mark.parametrize("name", ["hidden_manifold", "two_curves", "hyperplanes_parity"])
def test_balanced_families_are_exactly_balanced(name):
    data = load_dataset(name, n_samples=200)
    assert np.bincount(data.labels).tolist() == [100, 100]


def test_two_curves_are_standardised_and_the_offset_separates_them():
    near = load_dataset("two_curves", n_samples=400, offset=0.0, noise=0.0)
    far = load_dataset("two_curves", n_samples=400, offset=1.0, noise=0.0)
    np.testing.assert_allclose(far.features.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(far.features.std(axis=0), 1.0, atol=1e-12)
    gap = lambda d: np.linalg.norm(d.features[d.labels == 1].mean(0) - d.features[d.labels == 0].mean(0))  # noqa: E731
    assert gap(far) > 5 * gap(near)


def test_hyperplanes_parity_lives_in_a_space_of_the_hyperplanes_dimension():
    data = load_dataset("hyperplanes_parity", n_features=10, dim_hyperplanes=3, n_samples=300)
    assert np.linalg.matrix_rank(data.features, tol=1e-8) == 3  # a linear embedding of 3-d points


def test_noiseless_bars_and_stripes_are_bars_or_stripes_as_labelled():
    data = load_dataset("bars_and_stripes", height=3, width=5, noise=0.0, n_samples=200)
    images = data.features.reshape(-1, 3, 5)
    assert set(np.unique(images)) <= {-1.0, 1.0}
    rows_uniform = (images == images[:, :, :1]).all(axis=(1, 2))
    columns_uniform = (images == images[:, :1, :]).all(axis=(1, 2))
    stripes = data.labels == 1
    assert rows_uniform[stripes].all() and columns_uniform[~stripes].all()
    assert data.feature_names[:2] == ("pixel_0_0", "pixel_0_1") and data.class_names == ("bar", "stripe")


def test_digits_stand_in_and_bad_options():
    data = load_dataset("digits_3v5")
    assert data.n_features == 64 and data.class_names == ("3", "5") and data.n_samples == 365
    with pytest.raises(ConfigError, match="margin"):
        load_dataset("linearly_separable", margin=-1)
    with pytest.raises(ConfigError, match="dimension"):
        load_dataset("hidden_manifold", dimension=3)
