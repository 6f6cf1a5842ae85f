"""Batch scoring on real Ray Data: `hqray predict` and `hqray.batch_predict`.

Every input row comes back exactly once, as a prediction or as a named error; predictions
equal the model's own `predict_proba`; output files sort in input order.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import hqray
import hqray.cluster
from hqray.cli import main
from hqray.errors import ConfigError, DataError
from hqray.serve.batch import ERRORS_FILE, _unit_rows, predict_table
from hqray.serve.tables import READ_ERROR, UNIT, TableSource, _read_csv, find_table_files
from hqray.training import load_model


@pytest.fixture(scope="module")
def ray_session():
    hqray.cluster.connect(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def table(checkpoint):
    """600 rows of iris-like features, as the model's columns, with an id column."""
    model = load_model(checkpoint)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(5.0, 2.0, size=(600, 4)), columns=model.feature_names_)
    frame.insert(0, "patient", [f"p{i:04d}" for i in range(600)])
    return frame


def expected_probabilities(checkpoint, frame: pd.DataFrame) -> np.ndarray:
    model = load_model(checkpoint)
    return model.predict_proba(frame[model.feature_names_].to_numpy())


def probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("proba_")]].to_numpy(dtype=np.float64, na_value=np.nan)


def test_parquet_directory_scores_every_row_in_order(ray_session, checkpoint, table, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for part, start in enumerate(range(0, 600, 200)):  # 3 files, row groups of 64 rows
        pq.write_table(pa.Table.from_pandas(table.iloc[start:start + 200], preserve_index=False),
                       source / f"part{part}.parquet", row_group_size=64)
    report = predict_table(checkpoint, source, tmp_path / "out", actors=2, actor_cpus=0.5, batch_size=50)
    assert (report.rows, report.errors, report.errors_file) == (600, 0, None)
    # The report splits the run into actor start-up and scoring (both inside the whole).
    assert 0 < report.startup_seconds and 0 < report.scoring_seconds
    assert report.startup_seconds + report.scoring_seconds <= report.seconds + 0.5  # two clocks
    assert "scoring began after" in report.summary()
    out = pd.read_parquet(tmp_path / "out")  # files sort in input order
    assert list(out["file"].astype(str)) == [str(source / f"part{i}.parquet") for i in range(3) for _ in range(200)]
    assert out["row"].tolist() == [r for _ in range(3) for r in range(200)]
    np.testing.assert_allclose(probabilities(out), expected_probabilities(checkpoint, table), atol=1e-6)
    model = load_model(checkpoint)
    assert out["prediction"].tolist() == model.predict(table[model.feature_names_].to_numpy()).tolist()
    assert out["checkpoint"].nunique() == 1 and out["checkpoint"].iloc[0] == report.checkpoint_id
    # From Python: the actors read the same units; the Dataset keeps input order.
    scored = hqray.batch_predict(checkpoint, source, actors=2, actor_cpus=0.5, batch_size=50).to_pandas()
    assert scored[["file", "row"]].astype(str).values.tolist() == out[["file", "row"]].astype(str).values.tolist()
    assert scored["error"].isna().all()
    np.testing.assert_allclose(probabilities(scored), probabilities(out), atol=1e-12)


def bad_csv(table: pd.DataFrame, path) -> dict[int, str]:
    """The table as CSV with bad rows planted; returns {row: a word its reason contains}."""
    frame = table.drop(columns="patient")
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    planted = {3: "fields", 10: "fields", 50: "abc", 51: "missing", 52: "nan", 599: "inf"}
    first, rest = lines[1 + 50].split(",", 1)
    lines[1 + 50] = f"abc,{rest}"
    lines[1 + 3] = "1.0,2.0"                      # too few fields
    lines[1 + 10] = lines[1 + 10] + ",9.9"          # too many
    lines[1 + 51] = "," + lines[1 + 51].split(",", 1)[1]
    lines[1 + 52] = lines[1 + 52].rsplit(",", 1)[0] + ",nan"
    lines[1 + 599] = lines[1 + 599].rsplit(",", 1)[0] + ",inf"
    path.write_text("\n".join(lines) + "\n")
    return planted


def test_a_kernel_family_checkpoint_scores_like_a_generation(ray_session, table, tmp_path):
    from hqray.training import save_checkpoint
    from hqray.training.families import get_family

    frame = table.iloc[:120]
    features = frame.drop(columns="patient")
    labels = np.where(features.iloc[:, 0] > features.iloc[:, 0].median(), "high", "low")
    model = get_family("qsvm").build({"n_qubits": 2, "n_layers": 1}, seed=0).fit(features, labels)
    checkpoint = save_checkpoint(model, tmp_path / "qsvm", family="qsvm")
    report = predict_table(checkpoint, _write_parquet(frame, tmp_path / "in.parquet"), tmp_path / "out")
    assert (report.rows, report.errors) == (120, 0)
    out = pd.read_parquet(tmp_path / "out")
    np.testing.assert_allclose(probabilities(out), expected_probabilities(checkpoint, frame), atol=1e-9)


def _write_parquet(frame: pd.DataFrame, path) -> str:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return str(path)


def test_bad_rows_go_to_the_errors_file_and_the_command_fails(ray_session, checkpoint, table, tmp_path, capsys):
    planted = bad_csv(table, tmp_path / "in.csv")
    code = main(["predict", str(checkpoint), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out")])
    assert code == 1
    said = capsys.readouterr().out
    assert "6 of 600 rows could not be scored" in said and ERRORS_FILE in said
    out = pd.read_parquet(tmp_path / "out")
    with open(tmp_path / "out" / ERRORS_FILE) as handle:
        errors = list(csv.DictReader(handle))
    assert [int(e["row"]) for e in errors] == sorted(planted)
    for error in errors:
        assert planted[int(error["row"])] in error["error"], error
    assert sorted(out["row"].tolist() + [int(e["row"]) for e in errors]) == list(range(600))  # each once
    good = [r for r in range(600) if r not in planted]
    assert out["row"].tolist() == good
    np.testing.assert_allclose(probabilities(out), expected_probabilities(checkpoint, table.iloc[good]), atol=1e-6)


def test_csv_rows_are_numbered_across_parse_blocks(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "t.csv"
    rows = 3000
    lines = ["a,b"] + [f"{i},{i}" for i in range(rows)]
    bad = sorted(rng.choice(rows, size=40, replace=False).tolist())
    for row in bad:
        lines[1 + row] = f"{row}" if row % 2 else f"{row},{row},{row}"
    path.write_text("\n".join(lines) + "\n")
    blocks = list(_read_csv(str(path), 0, ["a", "b"], None, block_bytes=512))  # many small parse blocks
    assert len(blocks) > 20
    table = pa.concat_tables(blocks)
    assert table["row"].to_pylist() == list(range(rows))  # contiguous, in order, each row once
    errors = table[READ_ERROR].to_pylist()
    assert [r for r, e in enumerate(errors) if e] == bad
    values = table["a"].to_pylist()
    assert all(values[r] == str(r) for r in range(rows) if r not in bad)


@pytest.mark.parametrize(("task_rows", "tasks"), [(50, 31), (150, 6)])
def test_parquet_units_cover_every_row_once(tmp_path, task_rows, tasks):
    """15 row groups of 64 rows and one of 40: cut inside each group for units of 50 rows
    (2 units a group, and the last group whole), between groups for units of 150 (3 groups a unit)."""
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": np.arange(1000.0)}), path, row_group_size=64)
    source = TableSource(find_table_files(path), ["a"], block_rows=30, task_rows=task_rows)
    read_tasks = source.get_read_tasks(1)
    assert len(read_tasks) == source.read_task_count() == tasks
    # A read task names its unit; the scorer reads the unit's rows.
    assert [pa.concat_tables(list(task()))[UNIT].to_pylist() for task in read_tasks] == [[u] for u in range(tasks)]
    blocks = [block for unit in range(tasks) for block in source.read_unit(unit)]
    assert max(block.num_rows for block in blocks) <= 30
    table = pa.concat_tables(blocks)
    assert table["row"].to_pylist() == list(range(1000)) and table["a"].to_pylist() == list(map(float, range(1000)))


def test_units_keep_row_groups_whole_and_give_each_actor_several(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": np.arange(4000.0)}), path, row_group_size=250)
    files = find_table_files(path)
    # Calls of 100 rows, 2 actors: units would be 100 rows, but a group of 250 is read whole.
    units = TableSource(files, ["a"], task_rows=_unit_rows(files, batch_size=100, actors=2)).units
    assert units == [(0, start, start + 250) for start in range(0, 4000, 250)]
    # Calls of 10 rows: at least 8 units an actor (400 rows: 2 groups a unit), whole calls.
    assert _unit_rows(files, batch_size=10, actors=1) == 500
    assert len(TableSource(files, ["a"], task_rows=500).units) == 8


def test_id_column_and_python_api_on_a_ray_dataset(ray_session, checkpoint, table, tmp_path):
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp_path / "t.parquet")
    report = predict_table(checkpoint, tmp_path / "t.parquet", tmp_path / "out", id_column="patient")
    out = pd.read_parquet(tmp_path / "out")
    assert report.rows == 600 and out["patient"].tolist() == table["patient"].tolist()
    assert "file" not in out.columns

    frame = table.copy()
    frame.iloc[7, 2] = np.nan
    scored = hqray.batch_predict(checkpoint, ray.data.from_pandas(frame), id_column="patient").to_pandas()
    assert scored["patient"].tolist() == table["patient"].tolist()
    assert scored["error"].notna().tolist() == [i == 7 for i in range(600)]
    assert "missing value" in scored["error"][7] or "finite" in scored["error"][7]
    ok = scored["error"].isna().to_numpy()
    np.testing.assert_allclose(probabilities(scored)[ok], expected_probabilities(checkpoint, frame[ok]), atol=1e-6)


def test_inputs_and_outputs_are_checked_before_anything_runs(ray_session, checkpoint, table, tmp_path):
    table.drop(columns=[table.columns[2]]).to_csv(tmp_path / "narrow.csv", index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['sepal width \(cm\)'\].*expects 4 features"):
        predict_table(checkpoint, tmp_path / "narrow.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="matches no files"):
        predict_table(checkpoint, str(tmp_path / "*.parquet"), tmp_path / "out")
    with pytest.raises(ConfigError, match="tier 'gpu' needs 1 GPU per actor, but the cluster has 0"):
        predict_table(checkpoint, tmp_path / "narrow.csv", tmp_path / "out", tier="gpu")
    with pytest.raises(ConfigError, match="2 actor.s. x 1 CPU would leave 0 of the cluster's 2 CPUs"):
        predict_table(checkpoint, tmp_path / "narrow.csv", tmp_path / "out", actors=2)

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("the user's")
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError, match="holds files hqray did not write"):
        predict_table(checkpoint, tmp_path / "t.csv", theirs)
    assert (theirs / "notes.txt").read_text() == "the user's"


def test_a_rerun_replaces_its_own_output_on_the_qpu_tier(ray_session, checkpoint, table, tmp_path):
    table.to_csv(tmp_path / "t.csv", index=False)
    table.iloc[:10].to_csv(tmp_path / "small.csv", index=False)
    predict_table(checkpoint, tmp_path / "t.csv", tmp_path / "out", batch_size=100)  # 6 parts
    report = predict_table(checkpoint, tmp_path / "small.csv", tmp_path / "out", tier="qpu")
    assert report.rows == 10 and len(pd.read_parquet(tmp_path / "out")) == 10  # no stale parts left
