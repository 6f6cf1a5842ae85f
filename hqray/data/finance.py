"""OHLCV price tables -> technical indicators -> next-period direction.

Indicators come from the ``ta`` library and use trailing windows only; rows whose
indicators are undefined (the warm-up of the longest window) are dropped, never filled,
and the last row (no next period) is dropped too, so no feature sees the future.

Without a ``path``, real market data runs offline: the daily S&P 500 (1999-2018, 5,031
days) or NASDAQ Composite OHLCV series that the ``arch`` package ships with its examples
(NCSA licence; the package says the series come from Yahoo! Finance).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

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


SHIPPED_MARKETS = {"sp500": "S&P 500 index", "nasdaq": "NASDAQ Composite index"}


class FinanceOptions(DatasetOptions):
    """Options of the finance dataset.

    Attributes:
        path: CSV/Parquet with open, high, low, close, volume columns (any case), oldest first
            unless ``date_column`` is given; ``None`` uses the shipped ``market`` series.
        market: the shipped daily series used without a ``path``: ``sp500`` or ``nasdaq``.
        date_column: optional column to sort by (parsed as dates unless numeric).
        volatility_window: window of the rolling standard deviation of returns.
    """

    path: str | None = None
    market: Literal["sp500", "nasdaq"] = "sp500"
    date_column: str | None = None
    volatility_window: int = Field(20, ge=2)


def shipped_prices(market: str) -> tuple[pd.DataFrame, str]:
    """The daily OHLCV series ``market`` as the ``arch`` package ships it, and where it lies.

    Read as a file, without importing ``arch`` (which loads statsmodels).
    """
    spec = importlib.util.find_spec("arch")
    if spec is None or spec.origin is None:
        raise DataError("the shipped market data come with the 'arch' package (a requirement of hqray): "
                        "pip install arch, or pass path= to your own OHLCV file")
    path = Path(spec.origin).parent / "data" / market / f"{market}.csv.gz"
    if not path.is_file():
        raise DataError(f"market {market!r}: the installed 'arch' package has no {path.name} (expected at {path})")
    frame = pd.read_csv(path)
    frame["Date"] = pd.to_datetime(frame["Date"], format="%m/%d/%Y")
    return frame, str(path)


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
    if options.path is None:
        frame, _ = shipped_prices(options.market)
        name, date_column = f"finance {SHIPPED_MARKETS[options.market]}", options.date_column or "date"
    else:
        frame, name, date_column = read_table(options.path), f"finance {options.path!r}", options.date_column
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing columns {missing}; expected {list(REQUIRED_COLUMNS)}")
    if date_column is not None:
        frame = _sorted_by_date(frame, date_column.lower(), name)
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


def _sorted_by_date(frame: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
    """Rows in time order; dates given as text are parsed (as text, '10/1/2001' sorts before '2/1/2001')."""
    if column not in frame.columns:
        raise DataError(f"{name}: date column {column!r} not found; columns are {list(frame.columns)}")
    dates = frame[column]
    if not pd.api.types.is_numeric_dtype(dates) and not pd.api.types.is_datetime64_any_dtype(dates):
        parsed = pd.to_datetime(dates, errors="coerce")
        if parsed.isna().any():
            first = dates[parsed.isna()].iloc[0]
            raise DataError(f"{name}: date column {column!r} has {int(parsed.isna().sum())} values that are not "
                            f"dates (e.g. {first!r})")
        frame = frame.assign(**{column: parsed})
    return frame.sort_values(column, kind="stable").reset_index(drop=True)
