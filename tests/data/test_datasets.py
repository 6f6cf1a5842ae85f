"""Every registered dataset loads real data, and every bad input gets a named error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hqray.data import Dataset, list_datasets, load_dataset
from hqray.errors import ConfigError, DataError
from tests.conftest import make_prices


class TestRegistry:
    def test_lists_every_registered_dataset(self):
        assert {e.name for e in list_datasets()} == {
            "iris", "breast_cancer", "genomics", "finance", "digits", "table",
            # the benchmark paper's families (hqray/data/benchmark.py)
            "linearly_separable", "hidden_manifold", "two_curves", "hyperplanes_parity", "bars_and_stripes",
            "digits_3v5"}

    def test_unknown_dataset_names_known_ones(self):
        with pytest.raises(ConfigError, match=r"unknown dataset 'irs'.*'iris'"):
            load_dataset("irs")

    def test_unknown_option_is_named(self):
        with pytest.raises(ConfigError, match=r"tsk: unknown field.*allowed options: \['task'\]"):
            load_dataset("iris", tsk="binary")

    def test_wrong_option_value_is_named(self):
        with pytest.raises(ConfigError, match=r"task.*'pairs'"):
            load_dataset("iris", task="pairs")


class TestSklearnDatasets:
    def test_iris_binary_and_multiclass(self):
        binary = load_dataset("iris")
        assert binary.class_names == ("setosa", "versicolor")
        assert binary.features.shape == (100, 4)
        assert load_dataset("iris", task="multiclass").class_counts() == {
            "setosa": 50, "versicolor": 50, "virginica": 50}

    def test_breast_cancer_positive_class_is_malignant(self):
        data = load_dataset("breast_cancer")
        assert data.class_names == ("benign", "malignant")
        assert data.class_counts() == {"benign": 357, "malignant": 212}

    def test_digits(self):
        data = load_dataset("digits", n_classes=3)
        assert data.n_features == 64 and data.n_classes == 3

    def test_digits_rejects_one_class(self):
        with pytest.raises(ConfigError, match="n_classes"):
            load_dataset("digits", n_classes=1)


class TestDatasetRecord:
    def test_nan_feature_is_named(self):
        features = np.array([[1.0, np.nan], [2.0, 3.0]])
        with pytest.raises(DataError, match=r"feature 'b' has 1 NaN/inf"):
            Dataset("toy", features, np.array([0, 1]), ("a", "b"), ("x", "y"))

    def test_single_class(self):
        with pytest.raises(DataError, match="at least 2 classes"):
            Dataset("toy", np.zeros((3, 1)), np.zeros(3), ("a",), ("x", "y"))


class TestTable:
    def test_loads_with_string_labels(self, table_csv):
        data = load_dataset("table", path=str(table_csv), label="label")
        assert data.feature_names == ("a", "b", "c")
        assert data.class_names == ("no", "yes")

    def test_parquet(self, table_csv, tmp_path):
        path = tmp_path / "t.parquet"
        pd.read_csv(table_csv).to_parquet(path)
        assert load_dataset("table", path=str(path), label="label").n_samples == 60

    def test_missing_file(self, tmp_path):
        with pytest.raises(DataError, match=r"file '.*nope.csv' does not exist"):
            load_dataset("table", path=str(tmp_path / "nope.csv"), label="y")

    def test_missing_label_column(self, table_csv):
        with pytest.raises(DataError, match=r"label column 'target' not found"):
            load_dataset("table", path=str(table_csv), label="target")

    def test_non_numeric_feature(self, tmp_path):
        path = tmp_path / "t.csv"
        pd.DataFrame({"a": ["x", "y"] * 5, "label": [0, 1] * 5}).to_csv(path, index=False)
        with pytest.raises(DataError, match=r"feature column 'a' is not numeric"):
            load_dataset("table", path=str(path), label="label")

    def test_nan_in_features(self, tmp_path):
        path = tmp_path / "t.csv"
        pd.DataFrame({"a": [1.0, None, 2.0, 3.0], "label": [0, 1, 0, 1]}).to_csv(path, index=False)
        with pytest.raises(DataError, match=r"feature column 'a' has 1 NaN/inf"):
            load_dataset("table", path=str(path), label="label")

    def test_single_class(self, tmp_path):
        path = tmp_path / "t.csv"
        pd.DataFrame({"a": [1.0, 2.0], "label": ["x", "x"]}).to_csv(path, index=False)
        with pytest.raises(DataError, match=r"single class \['x'\]"):
            load_dataset("table", path=str(path), label="label")

    def test_duplicated_column_names_are_named_not_renamed(self, tmp_path):
        # pandas would read the second 'width' as 'width.1' and it would become a feature name.
        path = tmp_path / "t.csv"
        path.write_text("width,height,width,label\n" + "1,2,3,x\n4,5,6,y\n" * 5)
        with pytest.raises(DataError, match=r"column names must be unique, but \['width'\] appear more than once"):
            load_dataset("table", path=str(path), label="label")
        import pyarrow as pa
        import pyarrow.parquet as parquet

        parquet_path = tmp_path / "t.parquet"
        parquet.write_table(pa.table([[1.0, 2.0], [3.0, 4.0], ["x", "y"]], names=["a", "a", "label"]), parquet_path)
        with pytest.raises(DataError, match=r"\['a'\] appear more than once"):
            load_dataset("table", path=str(parquet_path), label="label")

    def test_train_test_pair_appends_the_test_rows(self, tmp_path):
        train, test = tmp_path / "train.csv", tmp_path / "test.csv"
        pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.6, 0.7], "y": ["x", "y", "x"]}).to_csv(train, index=False)
        # Columns in another order are matched by name.
        pd.DataFrame({"y": ["y", "x"], "b": [0.8, 0.9], "a": [4.0, 5.0]}).to_csv(test, index=False)
        data = load_dataset("table", path=str(train), test_path=str(test), label="y")
        np.testing.assert_array_equal(data.features, [[1, 0.5], [2, 0.6], [3, 0.7], [4, 0.8], [5, 0.9]])
        assert data.labels.tolist() == [0, 1, 0, 1, 0]

    def test_train_test_pair_with_other_columns_is_refused(self, tmp_path):
        train, test = tmp_path / "train.csv", tmp_path / "test.csv"
        pd.DataFrame({"a": [1.0, 2.0], "y": ["x", "y"]}).to_csv(train, index=False)
        pd.DataFrame({"a": [1.0, 2.0], "z": [3.0, 4.0], "y": ["x", "y"]}).to_csv(test, index=False)
        with pytest.raises(DataError, match=r"test_path '.*test.csv' has columns \['a', 'z', 'y'\], expected the "
                                            r"same columns as the train file: \['a', 'y'\]"):
            load_dataset("table", path=str(train), test_path=str(test), label="y")
        with pytest.raises(DataError, match=r"file '.*missing.csv' does not exist"):
            load_dataset("table", path=str(train), test_path=str(tmp_path / "missing.csv"), label="y")

    def test_wrong_suffix(self, tmp_path):
        path = tmp_path / "t.txt"
        path.write_text("a,b\n1,2\n")
        with pytest.raises(DataError, match=r"expected a .csv or .parquet file, got '.txt'"):
            load_dataset("table", path=str(path), label="b")


class TestFinance:
    def test_indicators_and_labels(self, prices_csv):
        data = load_dataset("finance", path=str(prices_csv), date_column="Date")
        assert data.feature_names[:3] == ("return", "ma10_gap", "ma50_gap")
        assert data.class_names == ("down", "up")
        # 50-period warm-up (MA50) and the last row (no next period) are dropped.
        assert 300 < data.n_samples <= 400 - 50
        assert np.isfinite(data.features).all()

    def test_labels_are_next_period_direction(self, prices_csv):
        prices = pd.read_csv(prices_csv)
        data = load_dataset("finance", path=str(prices_csv))
        close = prices["Close"].to_numpy()
        expected = (close[1:] > close[:-1]).astype(int)
        # The kept rows are a contiguous tail ending one before the last price row.
        assert np.array_equal(data.labels, expected[-data.n_samples:])

    def test_no_feature_sees_the_future(self, tmp_path):
        prices = make_prices(300)
        original, changed = tmp_path / "a.csv", tmp_path / "b.csv"
        prices.to_csv(original, index=False)
        future = prices.copy()
        future.loc[200:, ["Open", "High", "Low", "Close"]] *= 3.0  # rewrite the future from row 200
        future.to_csv(changed, index=False)
        a = load_dataset("finance", path=str(original))
        b = load_dataset("finance", path=str(changed))
        # Kept rows start at the same index; rows before 200 must have identical features.
        offset = 300 - 1 - a.n_samples
        before = 200 - offset
        assert np.array_equal(a.features[:before], b.features[:before])
        assert not np.array_equal(a.features[before:before + 5], b.features[before:before + 5])

    def test_real_market_data_loads_offline_without_a_file(self):
        data = load_dataset("finance")
        assert data.options["market"] == "sp500" and data.options["path"] is None
        # 5,031 trading days of the S&P 500, less the 50-day warm-up and the last day.
        assert data.n_samples == 5031 - 50
        assert 0.4 < data.labels.mean() < 0.6 and np.isfinite(data.features).all()
        assert load_dataset("finance", market="nasdaq").features.shape[1] == len(data.feature_names)

    def test_text_dates_are_sorted_as_dates_and_bad_ones_named(self, tmp_path):
        prices = make_prices(120)
        prices["Date"] = pd.date_range("2001-01-01", periods=120, freq="D").strftime("%m/%d/%Y")
        path = tmp_path / "p.csv"
        prices.sample(frac=1.0, random_state=0).to_csv(path, index=False)  # shuffled rows
        in_order = tmp_path / "q.csv"
        prices.to_csv(in_order, index=False)
        shuffled = load_dataset("finance", path=str(path), date_column="Date")
        assert np.array_equal(shuffled.features, load_dataset("finance", path=str(in_order)).features)
        prices.loc[5, "Date"] = "someday"
        prices.to_csv(path, index=False)
        with pytest.raises(DataError, match=r"date column 'date' has 1 values that are not dates \(e.g. 'someday'\)"):
            load_dataset("finance", path=str(path), date_column="Date")

    def test_missing_columns(self, tmp_path):
        path = tmp_path / "p.csv"
        make_prices().drop(columns=["Volume"]).to_csv(path, index=False)
        with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
            load_dataset("finance", path=str(path))

    def test_too_short(self, tmp_path):
        path = tmp_path / "p.csv"
        make_prices(40).to_csv(path, index=False)
        with pytest.raises(DataError, match="only 0 rows"):
            load_dataset("finance", path=str(path))


class TestGenomics:
    def test_default_model_small(self):
        data = load_dataset("genomics", individuals_per_population=10, sequence_length=300_000)
        assert data.class_names == ("AFR", "EUR", "ASIA", "ADMIX")
        assert data.class_counts() == {"AFR": 10, "EUR": 10, "ASIA": 10, "ADMIX": 10}
        assert set(np.unique(data.features)) <= {0.0, 1.0, 2.0}
        frequency = data.features.mean(axis=0) / 2
        assert (np.minimum(frequency, 1 - frequency) >= 0.05).all()

    def test_other_model_and_populations(self):
        data = load_dataset("genomics", model="OutOfAfrica_3G09", populations=["YRI", "CEU"],
                            individuals_per_population=8, sequence_length=300_000, max_snps=50)
        assert data.class_names == ("YRI", "CEU")
        assert data.n_features == 50

    def test_cache_round_trip(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HQRAY_CACHE_DIR", str(tmp_path))
        options = dict(individuals_per_population=5, sequence_length=200_000, seed=3)
        first = load_dataset("genomics", **options)
        files = list((tmp_path / "genomics").glob("*.parquet"))
        assert len(files) == 1
        second = load_dataset("genomics", **options)
        assert np.array_equal(first.features, second.features)
        assert first.feature_names == second.feature_names
        other_seed = load_dataset("genomics", **{**options, "seed": 4})
        assert len(list((tmp_path / "genomics").glob("*.parquet"))) == 2
        assert other_seed.feature_names != first.feature_names

    def test_unknown_model(self):
        with pytest.raises(ConfigError, match=r"model 'Nope' is not a HomSap model.*OutOfAfrica_3G09"):
            load_dataset("genomics", model="Nope")

    def test_unknown_population(self):
        with pytest.raises(ConfigError, match=r"populations \['XYZ'\] are not sampled.*'AFR'"):
            load_dataset("genomics", populations=["AFR", "XYZ"])
