"""Time series sources: split by time, windows, normalisation, time columns, error paths."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import PATH_SOURCES, load
from genlab.data.sequences import from_data_units, to_data_units


def _series_csv(tmp_path: Path, num_rows: int = 100, name: str = "series.csv") -> Path:
    t = np.arange(num_rows)
    frame = pd.DataFrame(
        {"a": np.sin(t / 5.0) * 10 + 3, "b": t * 0.5, "label": [f"s{i % 3}" for i in t]}
    )
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _raw(path: Path, columns: list[str]) -> np.ndarray:
    return np.array(pd.read_csv(path)[columns], dtype=np.float32)


def test_windows_split_by_time(tmp_path):
    path = _series_csv(tmp_path)
    raw = _raw(path, ["a", "b"])
    train = load("timeseries", path=str(path), columns=["a", "b"], window=10)
    test = load("timeseries", "test", path=str(path), columns=["a", "b"], window=10)
    assert train.x.shape == (80 - 10 + 1, 10, 2)
    assert test.x.shape == (20 - 10 + 1, 10, 2)
    for data in (train, test):
        assert data.x.dtype == torch.float32
        assert data.spec.modality == "sequence"
        assert data.spec.shape == (10, 2)
        assert data.spec.name == "series"
        assert data.spec.columns == ({"name": "a"}, {"name": "b"})
    for i in range(len(train)):
        assert torch.equal(train.x[i], torch.from_numpy(raw[i : i + 10]))
    for i in range(len(test)):
        assert torch.equal(test.x[i], torch.from_numpy(raw[80 + i : 90 + i]))
    # Column b is the time index * 0.5: no train window reaches row 80, no test window row 79.
    assert float(train.x[..., 1].max()) == 79 * 0.5
    assert float(test.x[..., 1].min()) == 80 * 0.5
    assert torch.equal(train.info["series"], torch.from_numpy(raw[:80]))
    assert train.info["step_span"] == (0, 80) and test.info["step_span"] == (80, 100)
    assert train.info["time"] is None


def test_stride_and_single_column(tmp_path):
    path = _series_csv(tmp_path)
    data = load("timeseries", path=str(path), columns="a", window=10, stride=5)
    assert data.x.shape == ((80 - 10) // 5 + 1, 10, 1)
    raw = _raw(path, ["a"])
    assert torch.equal(data.x[2], torch.from_numpy(raw[10:20]))


def test_normalize_uses_train_statistics_and_maps_back(tmp_path):
    path = _series_csv(tmp_path)
    raw = _raw(path, ["a", "b"]).astype(np.float64)
    options = dict(path=str(path), columns=["a", "b"], window=10, normalize=True)
    train = load("timeseries", **options)
    test = load("timeseries", "test", **options)
    mean, std = raw[:80].mean(0), raw[:80].std(0)
    assert [c["mean"] for c in train.spec.columns] == pytest.approx(mean)
    assert [c["std"] for c in train.spec.columns] == pytest.approx(std)
    assert test.spec == train.spec
    assert train.info["series"].double().mean(0).numpy() == pytest.approx([0, 0], abs=1e-5)
    assert train.info["series"].double().std(0, correction=0).numpy() == pytest.approx([1, 1])
    # The spec alone (as saved in a run) maps samples back to data units.
    spec = DataSpec.from_json(json.loads(json.dumps(test.spec.to_json())))
    back = to_data_units(spec, test.x)
    assert torch.allclose(back[0], torch.from_numpy(raw[80:90]).float(), atol=1e-4)
    assert torch.allclose(from_data_units(spec, back), test.x, atol=1e-5)


def test_constant_channel_is_only_centred(tmp_path):
    path = tmp_path / "flat.csv"
    pd.DataFrame({"v": np.full(50, 7.0), "w": np.arange(50.0)}).to_csv(path, index=False)
    data = load("timeseries", path=str(path), window=5, normalize=True)
    assert data.spec.columns[0]["std"] == 1.0
    assert torch.all(data.x[..., 0] == 0)


def test_all_numeric_columns_by_default(tmp_path):
    path = tmp_path / "two.csv"
    pd.DataFrame({"x": np.arange(30.0), "y": np.arange(30) * 2}).to_csv(path, index=False)
    data = load("timeseries", path=str(path), window=4)
    assert data.spec.columns == ({"name": "x"}, {"name": "y"})


def test_non_numeric_columns_are_reported(tmp_path):
    path = _series_csv(tmp_path)
    with pytest.raises(DataError, match=r"non-numeric column\(s\) 'label'.*columns=\['a', 'b'\]"):
        load("timeseries", path=str(path), window=10)
    with pytest.raises(DataError, match=r"column 'label' is not numeric \(e.g. 's0' in data row 1"):
        load("timeseries", path=str(path), columns=["a", "label"], window=10)


def test_time_column_sorts_rows(tmp_path):
    rng = np.random.default_rng(0)
    order = rng.permutation(40)
    t = np.arange(40) * 0.25 + 1.0
    path = tmp_path / "shuffled.csv"
    pd.DataFrame({"t": t[order], "v": t[order] * 3}).to_csv(path, index=False)
    data = load("timeseries", path=str(path), time_column="t", window=4)
    assert data.spec.columns == ({"name": "v"},)
    assert np.allclose(data.info["time"], t[:32])
    assert torch.allclose(data.info["series"][:, 0], torch.from_numpy(t[:32] * 3).float())


def test_monthly_dates_are_regular(tmp_path):
    dates = pd.date_range("2000-01-01", periods=48, freq="MS")
    path = tmp_path / "monthly.csv"
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d")[::-1], "v": np.arange(48.0)[::-1]}).to_csv(
        path, index=False
    )
    data = load("timeseries", "test", path=str(path), time_column="date", window=6)
    assert data.x.shape == (10 - 6 + 1, 6, 1)
    assert pd.Timestamp(data.info["time"][0]) == dates[38]
    assert float(data.x[0, 0, 0]) == 38.0


def test_irregular_or_repeated_times_are_errors(tmp_path):
    path = tmp_path / "gappy.csv"
    pd.DataFrame({"t": [0, 1, 2, 3, 5, 6, 7, 8], "v": np.arange(8.0)}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"not regularly spaced: steps of 1 until 3 -> 5"):
        load("timeseries", path=str(path), time_column="t", window=2)
    dates = tmp_path / "dates.csv"
    days = ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06", "2020-01-07"]
    pd.DataFrame({"day": days, "v": np.arange(6.0)}).to_csv(dates, index=False)
    with pytest.raises(DataError, match="not regularly spaced.*resample"):
        load("timeseries", path=str(dates), time_column="day", window=1)
    repeated = tmp_path / "repeated.csv"
    pd.DataFrame({"t": [0, 1, 1, 2, 3], "v": np.arange(5.0)}).to_csv(repeated, index=False)
    with pytest.raises(DataError, match="repeats the time 1"):
        load("timeseries", path=str(repeated), time_column="t", window=1)
    with pytest.raises(DataError, match="no time column 'when'"):
        load("timeseries", path=str(repeated), time_column="when", window=1)


def test_parquet_files(tmp_path):
    path = tmp_path / "series.parquet"
    pd.DataFrame({"v": np.arange(50.0)}).to_parquet(path)
    data = load("timeseries", path=str(path), window=5)
    assert data.x.shape == (40 - 5 + 1, 5, 1)


def test_timeseries_does_not_claim_csv_paths():
    assert "timeseries" not in [name for name, _ in PATH_SOURCES]


def test_one_row_csv(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1.0,2.0\n")
    with pytest.raises(DataError, match="has 1 data row; a time series needs at least 2"):
        load("timeseries", path=str(path), window=1)


def test_all_nan_column(tmp_path):
    path = tmp_path / "nan.csv"
    pd.DataFrame({"a": np.arange(20.0), "b": np.full(20, np.nan)}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'b' is empty \(all 20 values missing\)"):
        load("timeseries", path=str(path), window=2)


def test_missing_values_name_the_column_and_count(tmp_path):
    values = np.arange(20.0)
    values[[4, 9, 10]] = np.nan
    path = tmp_path / "gaps.csv"
    pd.DataFrame({"a": values}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'a' has 3 missing value\(s\).*row 5.*interpolate"):
        load("timeseries", path=str(path), window=2)


def test_column_changing_type_mid_file_reports_the_row(tmp_path):
    lines = ["t,v"] + [f"{i},{i * 1.5}" for i in range(5)] + ["5,abc", "6,7.0"]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError,
        match=r"column 'v' changes type mid-file: numbers up to data row 6 \(file line 7\)",
    ):
        load("timeseries", path=str(path), columns=["v"], window=1)


def test_window_longer_than_the_series(tmp_path):
    path = _series_csv(tmp_path, num_rows=30)
    with pytest.raises(DataError, match=r"window=64 is longer than the train part.*window <= 6"):
        load("timeseries", path=str(path), columns=["a"])
    with pytest.raises(DataError, match=r"window=10 is longer than the test part.*window <= 6"):
        load("timeseries", path=str(path), columns=["a"], window=10)


def test_bad_options_and_files(tmp_path):
    path = _series_csv(tmp_path)
    with pytest.raises(DataError, match="path='series.csv'"):
        load("timeseries")
    with pytest.raises(DataError, match="does not exist"):
        load("timeseries", path=str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match=r"no column\(s\) 'c'; the columns are a, b, label"):
        load("timeseries", path=str(path), columns=["a", "c"])
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        load("timeseries", path=str(path), columns="a", train_fraction=1.0)
    with pytest.raises(DataError, match="stride must be an integer >= 1"):
        load("timeseries", path=str(path), columns="a", stride=0)
    with pytest.raises(DataError, match="window must be an integer >= 1"):
        load("timeseries", path=str(path), columns="a", window=2.5)
    with pytest.raises(DataError, match="normalize must be true or false"):
        load("timeseries", path=str(path), columns="a", normalize="yes")
    other = tmp_path / "series.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(DataError, match="reads .csv, .tsv"):
        load("timeseries", path=str(other))


# --- statsmodels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, length, channels",
    [("sunspots", 309, 1), ("co2", 2284, 1), ("nile", 100, 1), ("elnino", 732, 1),
     ("macrodata", 203, 12)],
)  # fmt: skip
def test_statsmodels_sets_load_with_defaults(dataset, length, channels):
    train = load("statsmodels", dataset=dataset)
    test = load("statsmodels", "test", dataset=dataset)
    num_train = int(0.8 * length)
    assert train.info["step_span"] == (0, num_train)
    assert test.info["step_span"] == (num_train, length)
    assert train.x.shape == (num_train - 16 + 1, 16, channels)
    assert test.x.shape == (length - num_train - 16 + 1, 16, channels)
    assert train.spec.name == dataset
    assert torch.isfinite(train.x).all() and torch.isfinite(test.x).all()
    assert len(train.info["time"]) == num_train


def test_statsmodels_values_match_the_package():
    sunspots = sm.datasets.sunspots.load_pandas().data
    data = load("statsmodels", dataset="sunspots", window=8)
    assert np.allclose(data.info["series"][:, 0].numpy(), sunspots["SUNACTIVITY"][:247])
    assert data.info["time"][0] == 1700.0
    nile = load("statsmodels", "test", dataset="nile", window=20)
    assert nile.x.shape == (1, 20, 1)
    assert nile.info["time"][0] == 1951.0


def test_co2_missing_weeks_are_interpolated():
    raw = sm.datasets.co2.load_pandas().data["co2"]
    data = load("statsmodels", dataset="co2", train_fraction=0.9)
    series = data.info["series"][:, 0].double().numpy()
    missing = np.flatnonzero(raw.isna().to_numpy()[: len(series)])
    assert len(missing) > 0 and np.isfinite(series).all()
    i = int(missing[0])
    # An isolated gap in a weekly series is the mean of its two neighbours.
    assert not raw.iloc[[i - 1, i + 1]].isna().any()
    assert series[i] == pytest.approx((series[i - 1] + series[i + 1]) / 2, abs=1e-4)
    observed = ~raw.isna().to_numpy()[: len(series)]
    assert np.allclose(series[observed], raw.to_numpy()[: len(series)][observed], atol=1e-4)


def test_elnino_months_are_read_row_by_row():
    table = sm.datasets.elnino.load_pandas().data
    data = load("statsmodels", dataset="elnino", window=12, stride=12)
    months = table.drop(columns="YEAR").to_numpy()
    assert data.spec.columns == ({"name": "sst"},)
    assert np.allclose(data.x[0, :, 0].numpy(), months[0], atol=1e-5)
    assert np.allclose(data.x[1, :, 0].numpy(), months[1], atol=1e-5)
    assert data.info["time"][13] == pytest.approx(1951 + 1 / 12)


def test_macrodata_channels_and_selection():
    data = load("statsmodels", dataset="macrodata", window=8)
    names = [c["name"] for c in data.spec.columns]
    assert "year" not in names and "quarter" not in names
    assert names[:3] == ["realgdp", "realcons", "realinv"]
    subset = load("statsmodels", dataset="macrodata", columns=["unemp", "infl"], window=8)
    assert subset.x.shape[2] == 2
    assert torch.equal(subset.x[..., 0], data.x[..., names.index("unemp")])
    assert data.info["time"][1] == 1959.25


def test_statsmodels_bad_dataset_or_column():
    with pytest.raises(DataError, match="supported: sunspots, co2, nile, elnino, macrodata"):
        load("statsmodels", dataset="airline")
    with pytest.raises(DataError, match=r"no column\(s\) 'gdp'; its columns are realgdp"):
        load("statsmodels", dataset="macrodata", columns=["gdp"])
    with pytest.raises(DataError, match="window=40 is longer than the test part"):
        load("statsmodels", dataset="nile", window=40)
