"""Any CSV or Parquet table with a label column, and the shared file reader."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from hqray.data.registry import Dataset, DatasetOptions, register_dataset
from hqray.errors import DataError

__all__ = ["read_table", "TableOptions"]


def read_table(path: str | Path) -> pd.DataFrame:
    """Reads a ``.csv`` or ``.parquet`` file, naming the file in every error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"file {str(path)!r}: expected a .csv or .parquet file, got {suffix!r}")
    try:
        _refuse_duplicate_columns(path, _header(path, suffix))
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except DataError:
        raise
    except Exception as error:  # pandas and pyarrow raise many types for unreadable files
        raise DataError(f"file {str(path)!r} could not be read: {error}") from error
    if frame.empty:
        raise DataError(f"file {str(path)!r} has no rows")
    return frame


def _header(path: Path, suffix: str) -> list[str]:
    """The column names as the file has them (pandas renames a repeated CSV name to ``name.1``)."""
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    import pyarrow.parquet as parquet

    return list(parquet.read_schema(path).names)


def _refuse_duplicate_columns(path: Path, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"file {str(path)!r}: column names must be unique, but {repeated} appear more than once; "
                        "rename them")


class TableOptions(DatasetOptions):
    """A user table.

    Attributes:
        path: CSV or Parquet file.
        label: name of the label column.
        features: columns to use; default all columns except the label.
        test_path: a second file with the same columns, for data published as a fixed
            train/test pair (as the benchmark paper's are): its rows follow ``path``'s, and
            k-fold cross-validation runs over the rows of both.

    **Example** (a study file's dataset entry)::

        dataset: {name: table, options: {path: train.csv, test_path: test.csv, label: y}}
    """

    path: str
    label: str
    features: list[str] | None = Field(default=None, min_length=1)
    test_path: str | None = None


def _append_test_rows(train: pd.DataFrame, test: pd.DataFrame, name: str, test_path: str) -> pd.DataFrame:
    """The test file's rows after the train file's; both must have the same columns, in any order."""
    if set(test.columns) != set(train.columns):
        raise DataError(f"{name}: test_path {test_path!r} has columns {list(test.columns)}, expected the same "
                        f"columns as the train file: {list(train.columns)}")
    return pd.concat([train, test[list(train.columns)]], ignore_index=True)


@register_dataset("table", TableOptions, "any CSV/Parquet file with a label column")
def load_table(options: TableOptions) -> Dataset:
    frame = read_table(options.path)
    name = f"table {options.path!r}"
    if options.test_path is not None:
        frame = _append_test_rows(frame, read_table(options.test_path), name, options.test_path)
    if options.label not in frame.columns:
        raise DataError(
            f"{name}: label column {options.label!r} not found; columns are {list(frame.columns)}"
        )
    columns = options.features or [c for c in frame.columns if c != options.label]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: feature columns {missing} not found; columns are {list(frame.columns)}")
    if options.label in columns:
        raise DataError(f"{name}: the label column {options.label!r} cannot also be a feature")
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            example = frame[column].iloc[0]
            raise DataError(
                f"{name}: feature column {column!r} is not numeric (dtype {frame[column].dtype}, "
                f"e.g. {example!r}); encode it as numbers first"
            )
        n_bad = int((~np.isfinite(frame[column].to_numpy(dtype=np.float64))).sum())
        if n_bad:
            raise DataError(f"{name}: feature column {column!r} has {n_bad} NaN/inf values")
    raw_labels = frame[options.label]
    if raw_labels.isna().any():
        raise DataError(f"{name}: label column {options.label!r} has {int(raw_labels.isna().sum())} missing values")
    class_values, labels = np.unique(raw_labels.astype(str).to_numpy(), return_inverse=True)
    if class_values.size < 2:
        raise DataError(
            f"{name}: label column {options.label!r} has a single class {class_values.tolist()}; "
            "expected at least 2"
        )
    return Dataset("table", frame[columns].to_numpy(dtype=np.float64), labels,
                   tuple(str(c) for c in columns), tuple(class_values.tolist()), options.model_dump())
