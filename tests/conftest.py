"""Shared fixtures: small generated data files and an isolated cache directory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches simulated genotypes in its own directory."""
    monkeypatch.setenv("HQRAY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def make_prices(n_rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A geometric-Brownian-motion OHLCV series (the tests' own price data)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n_rows)))
    open_ = close * np.exp(rng.normal(0, 0.003, n_rows))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n_rows))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n_rows))
    volume = rng.integers(1_000, 10_000, n_rows)
    dates = pd.date_range("2024-01-01", periods=n_rows, freq="D")
    return pd.DataFrame({"Date": dates, "Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": volume})


@pytest.fixture
def prices_csv(tmp_path):
    path = tmp_path / "prices.csv"
    make_prices().to_csv(path, index=False)
    return path


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] + frame["b"] > 0, "yes", "no")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path
