"""Input tables for batch scoring: which files, which columns, and a Ray Data source that
numbers every row.

A table is one CSV or Parquet file, a directory of them, or a glob. Every row the source
yields carries its file and its 0-based row in that file (``file``, ``row``), so each
prediction and each error names the row it belongs to, whatever order the cluster ran in.
A CSV line with too few or too many fields is not dropped: it travels as a row whose
``_read_error`` says what was wrong, and becomes a line of the errors file.

Parquet is cut into row ranges ("units") that the scoring actors read themselves: Ray Data's
read task for a unit yields only its number (:data:`UNIT`), and :meth:`TableSource.read_unit`
yields its rows where they are scored, so no row crosses the object store on its way in. A
CSV file cannot be cut without reading it, so its read task reads it and streams its rows.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from hqray.errors import DataError

__all__ = ["TableFiles", "find_table_files", "TableSource", "READ_ERROR", "ORDER", "ROW_ID_COLUMNS", "UNIT"]

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
READ_ERROR = "_read_error"  # why a CSV line could not be read as a row (null when it could)
ORDER = "_order"            # sort key of a row: file index * 2**40 + row (dropped before writing)
UNIT = "_unit"              # a block of unit numbers: Parquet row ranges for the scorer to read
ROW_ID_COLUMNS = ("file", "row")
ROWS_PER_FILE_LIMIT = 2 ** 40


@dataclass(frozen=True)
class TableFiles:
    """The files of one input table, in the order their rows are numbered."""

    paths: tuple[str, ...]
    file_format: str  # "csv" or "parquet"


def find_table_files(source: str | os.PathLike) -> TableFiles:
    """The CSV or Parquet files named by a file, a directory or a glob.

    Raises:
        DataError: nothing matches, a file's suffix is neither CSV nor Parquet, or CSV and
            Parquet files are mixed.

    **Example**

    >>> find_table_files("/no/such/table.parquet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hqray.errors.DataError: input '/no/such/table.parquet' does not exist (expected a CSV or Parquet file, ...)
    """
    text = str(source)
    path = Path(text)
    if path.is_dir():
        candidates = sorted(str(p) for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        paths = [p for p in candidates if Path(p).suffix.lower() in SUFFIXES]
        if not paths:
            raise DataError(f"directory {text!r} holds no .csv or .parquet files")
    elif any(char in text for char in "*?["):
        paths = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not paths:
            raise DataError(f"glob {text!r} matches no files")
    elif path.is_file():
        paths = [text]
    else:
        raise DataError(f"input {text!r} does not exist (expected a CSV or Parquet file, a directory of them, "
                        "or a glob)")
    formats = {SUFFIXES.get(Path(p).suffix.lower()) for p in paths}
    if None in formats:
        odd = next(p for p in paths if Path(p).suffix.lower() not in SUFFIXES)
        raise DataError(f"{odd!r} is neither .csv nor .parquet; expected {sorted(SUFFIXES)}")
    if len(formats) > 1:
        raise DataError(f"{text!r} mixes CSV and Parquet files; score them separately")
    return TableFiles(tuple(os.path.abspath(p) for p in paths), formats.pop())


def _columns(path: str, file_format: str) -> list[str]:
    try:
        if file_format == "parquet":
            return list(pq.read_schema(path).names)
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                            parse_options=pacsv.ParseOptions(invalid_row_handler=_skip)) as reader:
            return list(reader.schema.names)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path!r} could not be read as {file_format}: {error}") from None


def _skip(row) -> str:  # the header alone is needed here; bad lines are reported by the read
    return "skip"


def check_table_columns(files: TableFiles, features: list[str], id_column: str | None) -> None:
    """Every file has the model's feature columns (and the id column); raises naming what is missing."""
    wanted = list(features) + ([id_column] if id_column else [])
    for path in files.paths:
        columns = _columns(path, files.file_format)
        missing = [name for name in wanted if name not in columns]
        if missing:
            shown = ", ".join(repr(c) for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
            raise DataError(f"{path!r} lacks column(s) {missing} that the model needs; it has {len(columns)} "
                            f"columns ({shown}); the model expects {len(features)} features {features}")


class TableSource(Datasource):
    """A table's files as Ray Data read tasks: Parquet row ranges to read where they are
    scored, CSV files streamed as blocks with ``file``/``row`` ids (or the user's id column).

    Parquet files are cut into units of about ``task_rows`` rows; a read task yields the
    unit's number, and :meth:`read_unit` its rows in blocks of ``block_rows``. A CSV file is
    one task, streamed in blocks. CSV feature columns are read as text and parsed by the
    scorer, so one bad value fails one row, not the file.
    """

    def __init__(self, files: TableFiles, features: list[str], id_column: str | None = None,
                 block_rows: int = 262_144, csv_block_bytes: int = 1 << 22, task_rows: int = 1_000_000):
        super().__init__()
        self.files, self.features, self.id_column = files, list(features), id_column
        self.block_rows, self.csv_block_bytes = block_rows, csv_block_bytes
        self.task_rows = task_rows  # rows per Parquet unit (each reads the row groups it overlaps)

    def get_name(self) -> str:
        return f"Read{self.files.file_format.capitalize()}Table"

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(os.path.getsize(path) for path in self.files.paths)

    @property
    def columns(self) -> list[str]:
        return self.features + ([self.id_column] if self.id_column else [])

    @cached_property
    def units(self) -> list[tuple[int, int, int]]:
        """Every Parquet unit as (file index, first row, end row), in row order (metadata read once)."""
        if self.files.file_format != "parquet":
            return []
        return [(index, start, stop) for index, path in enumerate(self.files.paths)
                for start, stop in _row_ranges(path, self.task_rows)]

    def read_task_count(self) -> int:
        """Read tasks this source makes: one per CSV file, one per Parquet unit."""
        return len(self.files.paths) if self.files.file_format == "csv" else len(self.units)

    def read_unit(self, unit: int) -> Iterator[pa.Table]:
        """The rows of Parquet unit ``unit``, with ids, in blocks of up to ``block_rows``."""
        index, start, stop = self.units[unit]
        return _read_parquet(self.files.paths[index], index, start, stop, self.columns, self.id_column,
                             self.block_rows)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        if self.files.file_format == "parquet":
            return [ReadTask(partial(_unit_number, unit),
                             BlockMetadata(num_rows=1, size_bytes=8, input_files=[self.files.paths[index]],
                                           exec_stats=None))
                    for unit, (index, _, _) in enumerate(self.units)]
        return [ReadTask(partial(_read_csv, path, index, self.columns, self.id_column, self.csv_block_bytes),
                         BlockMetadata(num_rows=None, size_bytes=os.path.getsize(path), input_files=[path],
                                       exec_stats=None))
                for index, path in enumerate(self.files.paths)]


def _unit_number(unit: int) -> Iterator[pa.Table]:
    yield pa.table({UNIT: pa.array([unit], pa.int64())})


def _row_ranges(path: str, task_rows: int) -> list[tuple[int, int]]:
    """A Parquet file's rows cut into read tasks of about ``task_rows``: [(start, stop), ...].

    Cuts fall between row groups where they can (consecutive small groups share a task), so
    each group is decoded once; a group larger than ``task_rows`` is cut inside, each piece's
    task decoding the whole group.
    """
    metadata = pq.ParquetFile(path).metadata
    if metadata.num_rows >= ROWS_PER_FILE_LIMIT:
        raise DataError(f"{path!r} has {metadata.num_rows} rows; at most {ROWS_PER_FILE_LIMIT - 1} per file")
    ranges, start, offset = [], 0, 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if rows > task_rows:
            if offset > start:
                ranges.append((start, offset))
            pieces = -(-rows // task_rows)
            cuts = [offset + rows * piece // pieces for piece in range(pieces + 1)]
            ranges.extend(zip(cuts[:-1], cuts[1:], strict=True))
            start = offset + rows
        elif offset + rows - start >= task_rows:
            ranges.append((start, offset + rows))
            start = offset + rows
        offset += rows
    if offset > start:
        ranges.append((start, offset))
    return ranges


def _with_ids(table: pa.Table, path: str, index: int, first_row: int, id_column: str | None) -> pa.Table:
    rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    table = table.append_column(ORDER, pa.array(rows + index * ROWS_PER_FILE_LIMIT))
    if id_column:
        return table
    files = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, dtype=np.int32)), pa.array([path]))
    return table.append_column("file", files).append_column("row", pa.array(rows))


def _read_parquet(path: str, index: int, start: int, stop: int, columns: list[str], id_column: str | None,
                  block_rows: int) -> Iterator[pa.Table]:
    """Rows ``start`` to ``stop`` of a Parquet file, in blocks of up to ``block_rows``: the row
    groups they overlap are read, and the rows outside the range left out."""
    file = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for group in range(file.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if offset < stop and offset + rows > start:
            groups.append(group)
            first = offset if first is None else first
        offset += rows
    if not groups:
        return
    row = first
    for batch in file.iter_batches(batch_size=block_rows, row_groups=groups, columns=columns):
        if row >= stop:  # the rest of the last group belongs to the next task
            break
        low, high = max(start - row, 0), min(stop - row, batch.num_rows)
        if high > low:
            yield _with_ids(pa.Table.from_batches([batch.slice(low, high - low)]), path, index, row + low, id_column)
        row += batch.num_rows


def _read_csv(path: str, index: int, columns: list[str], id_column: str | None,
              block_bytes: int = 1 << 22) -> Iterator[pa.Table]:
    """Streams a CSV file; lines of the wrong width come back as rows with ``_read_error`` set.

    The reader parses ahead of what it yields, so every bad line before a block's last row
    is known when the block is numbered: its rows take the next row numbers that no bad line
    holds, and the bad lines among them join the block, which thus covers a contiguous run.
    """
    bad: dict[int, str] = {}  # row number (0-based, header excluded) -> reason

    def record(invalid) -> str:
        row = invalid.number - 2 if invalid.number is not None else -1 - len(bad)
        bad[row] = (f"line {invalid.number if invalid.number is not None else '?'} has {invalid.actual_columns} "
                    f"fields, the header {invalid.expected_columns}: {invalid.text[:80]!r}")
        return "skip"

    text_columns = {name: pa.string() for name in columns}
    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(use_threads=False, block_size=block_bytes),
        parse_options=pacsv.ParseOptions(invalid_row_handler=record),
        convert_options=pacsv.ConvertOptions(include_columns=columns, column_types=text_columns,
                                             strings_can_be_null=True, null_values=[""]))
    cursor = 0  # the next row number not yet emitted
    with reader:
        for batch in reader:
            table = pa.Table.from_batches([batch])
            if not table.num_rows:
                continue
            rows = _next_free_rows(cursor, table.num_rows, bad)
            block = _numbered(table, path, index, rows, id_column)
            bad_rows = _bad_rows_before(bad, int(rows[-1]), path, index, columns, id_column)
            if bad_rows is not None:  # each block covers a contiguous run of rows, in order
                block = pa.concat_tables([block, bad_rows]).sort_by(ORDER)
            yield block
            cursor = int(rows[-1]) + 1
    bad_rows = _bad_rows_before(bad, None, path, index, columns, id_column)
    if bad_rows is not None:
        yield bad_rows


def _next_free_rows(cursor: int, count: int, bad: dict[int, str]) -> np.ndarray:
    taken = np.fromiter((row for row in bad if row >= cursor), dtype=np.int64)
    candidates = np.arange(cursor, cursor + count + taken.size, dtype=np.int64)
    return candidates[~np.isin(candidates, taken)][:count]


def _numbered(table: pa.Table, path: str, index: int, rows: np.ndarray, id_column: str | None) -> pa.Table:
    numbered = _with_ids(table, path, index, 0, id_column)
    if not id_column:
        numbered = numbered.set_column(numbered.schema.get_field_index("row"), "row", pa.array(rows))
    order = rows + index * ROWS_PER_FILE_LIMIT
    numbered = numbered.set_column(numbered.schema.get_field_index(ORDER), ORDER, pa.array(order))
    return numbered.append_column(READ_ERROR, pa.nulls(table.num_rows, pa.string()))


def _bad_rows_before(bad: dict[int, str], limit: int | None, path: str, index: int, columns: list[str],
                     id_column: str | None) -> pa.Table | None:
    """The bad lines numbered below ``limit`` (all when ``None``) as rows with ``_read_error``; forgets them."""
    rows = sorted(row for row in bad if limit is None or row < limit)
    if not rows:
        return None
    reasons = [bad.pop(row) for row in rows]
    table = pa.table({name: pa.nulls(len(rows), pa.string()) for name in columns})
    numbered = _numbered(table, path, index, np.asarray(rows, dtype=np.int64), id_column)
    return numbered.set_column(numbered.schema.get_field_index(READ_ERROR), READ_ERROR,
                               pa.array(reasons, pa.string()))
