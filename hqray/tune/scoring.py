"""A study's scoring records, kept in its Tune storage: a local path or a URI (s3://, gs://, file://).

::

    scored/<trial id>.json                    the trial's final scores; a trial restored from an
                                              earlier epoch (a killed driver) reports these
                                              instead of scoring again
    scorings/<trial id>-<pid>-<ns>.json       one record per scoring: the ledger

The ledger is one object per scoring rather than lines appended to a file, so it works
on object stores (which cannot append) and records *every* scoring: a trial scored twice
leaves two records, which the tests look for. Writes go through pyarrow's filesystems;
the local one writes to a temporary name and renames, so a record is whole or absent.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from pyarrow import fs as pafs

__all__ = ["ScoringRecords"]


class ScoringRecords:
    """The scoring records under ``storage`` (a study's Tune storage path or URI).

    **Example**

    >>> import tempfile
    >>> records = ScoringRecords(tempfile.mkdtemp())
    >>> records.record("t1", {"accuracy": 1.0}, [{"accuracy": 1.0}], "accuracy")
    >>> records.scored("t1")["final"], len(records.scorings())
    ({'accuracy': 1.0}, 1)
    """

    def __init__(self, storage: str | os.PathLike):
        storage = str(storage)
        if "://" in storage:
            self._fs, self._root = pafs.FileSystem.from_uri(storage)
        else:
            self._fs, self._root = pafs.LocalFileSystem(), os.path.abspath(storage)
        self._local = isinstance(self._fs, pafs.LocalFileSystem)

    def scored(self, trial_id: str) -> dict[str, Any] | None:
        """``{"final": ..., "folds": ...}`` of a trial scored before, else ``None``."""
        path = f"{self._root}/scored/{trial_id}.json"
        if self._fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        return self._read(path)

    def record(self, trial_id: str, final: dict[str, Any], folds: list[dict[str, float]], metric: str) -> None:
        """Records one scoring: its ledger record first, then the trial's scores (so a crash
        between the two shows as a second scoring after a resume, never as none)."""
        now = time.time()
        ledger = {"trial_id": trial_id, "pid": os.getpid(), "time": now,
                  "folds": [{"fold": fold, metric: scores.get(metric)} for fold, scores in enumerate(folds)]}
        self._write(f"scorings/{trial_id}-{os.getpid()}-{time.time_ns()}.json", ledger)
        self._write(f"scored/{trial_id}.json", {"final": final, "folds": folds})

    def scorings(self) -> list[dict[str, Any]]:
        """Every scoring recorded, oldest first."""
        selector = pafs.FileSelector(f"{self._root}/scorings", allow_not_found=True)
        records = [self._read(info.path) for info in self._fs.get_file_info(selector)
                   if info.type == pafs.FileType.File and info.path.endswith(".json")]
        return sorted(records, key=lambda record: record["time"])

    def _read(self, path: str) -> dict[str, Any]:
        with self._fs.open_input_stream(path) as stream:
            return json.loads(stream.read())

    def _write(self, relative: str, document: dict[str, Any]) -> None:
        path = f"{self._root}/{relative}"
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        data = json.dumps(document).encode()
        if not self._local:  # an object store's put is all or nothing
            with self._fs.open_output_stream(path) as stream:
                stream.write(data)
            return
        staging = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open_output_stream(staging) as stream:
            stream.write(data)
        self._fs.move(staging, path)
