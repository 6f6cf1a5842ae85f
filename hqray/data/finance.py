"""OHLCV price tables -> technical indicators -> next-period direction.

Indicators come from the ``ta`` library and use trailing windows only; rows whose
indicators are undefined (the warm-up of the longest window) are dropped, never filled,
and the last row (no next period) is dropped too, so no feature sees the future.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field
from ta.momentum import RSIIndicator
from ta.trend import MACD, SMAIndicator

from hqray.data.registry import Dataset, DatasetOptions, register_dataset
from hqray.data.table import read_table
from hqray.errors import DataError

__all__ = ["FinanceOptions", "price_features"]

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
FEATURE_NAMES = ("return", "ma10_gap", "ma50_gap", "volatility", "rsi", "macd", "macd_signal",
                 "volume_change")


class FinanceOptions(DatasetOptions):
    """Options of the finance dataset.

    Attributes:
        path: CSV/Parquet with open, high, low, close, volume columns (any case), oldest first
            unless ``date_column`` is given.
        date_column: optional column to sort by.
        volatility_window: window of the rolling standard deviation of returns.
    """

    path: str
    date_column: str | None = None
    volatility_window: int = Field(20, ge=2)


def price_features(prices: pd.DataFrame, volatility_window: int = 20) -> pd.DataFrame:
    """Indicators of an OHLCV frame with lower-case columns, one row per period.

    ``ma10_gap`` and ``ma50_gap`` are ``close / MA - 1``: moving averages relative to the
    price, so a model does not learn the price level. Undefined rows are NaN.
    """
    close = prices["close"].astype(np.float64)
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9, fillna=False)
    returns = close.pct_change()
    return pd.DataFrame({
        "return": returns,
        "ma10_gap": close / SMAIndicator(close, window=10, fillna=False).sma_indicator() - 1.0,
        "ma50_gap": close / SMAIndicator(close, window=50, fillna=False).sma_indicator() - 1.0,
        "volatility": returns.rolling(volatility_window).std(),
        "rsi": RSIIndicator(close, window=14, fillna=False).rsi() / 100.0,
        # MACD is in price units; dividing by the price keeps it scale-free.
        "macd": macd.macd() / close,
        "macd_signal": macd.macd_signal() / close,
        "volume_change": np.log1p(prices["volume"].astype(np.float64)).diff(),
    }, index=prices.index)


@register_dataset("finance", FinanceOptions, "OHLCV table -> indicators -> next-period direction")
def load_finance(options: FinanceOptions) -> Dataset:
    frame = read_table(options.path)
    name = f"finance {options.path!r}"
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing columns {missing}; expected {list(REQUIRED_COLUMNS)}")
    if options.date_column is not None:
        date_column = options.date_column.lower()
        if date_column not in frame.columns:
            raise DataError(f"{name}: date column {options.date_column!r} not found")
        frame = frame.sort_values(date_column, kind="stable").reset_index(drop=True)
    for column in REQUIRED_COLUMNS:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{name}: column {column!r} is not numeric (dtype {frame[column].dtype})")
        values = frame[column].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"{name}: column {column!r} has {int((~np.isfinite(values)).sum())} NaN/inf values")
    if (frame["close"] <= 0).any():
        raise DataError(f"{name}: column 'close' must be positive")
    features = price_features(frame, options.volatility_window)
    # Label of row t: did the close rise from t to t+1? Row t's features use rows <= t only.
    next_close = frame["close"].shift(-1)
    labels = (next_close > frame["close"]).astype(np.int64)
    usable = features.notna().all(axis=1) & next_close.notna()
    usable &= np.isfinite(features.to_numpy()).all(axis=1)
    if int(usable.sum()) < 10:
        raise DataError(
            f"{name}: only {int(usable.sum())} rows have every indicator defined; the 50-period "
            f"moving average needs more than 60 rows, got {len(frame)}"
        )
    return Dataset("finance", features[usable].to_numpy(), labels[usable].to_numpy(),
                   FEATURE_NAMES, ("down", "up"), options.model_dump())
