"""Tables: UCI Adult, type inference, the codec's round trip, Parquet, path dispatch, errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import load, resolve_source
from genlab.data.tables import (
    ADULT_COLUMNS,
    TableCodec,
    codec_from_spec,
    dataset_from_frame,
    describe_table,
)

# The shared data folder sits beside the checkout (../shared/data), as in CI.
_ADULT_CANDIDATES = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "adult.data",
    Path("/work/shared/data/adult.data"),
)
ADULT_FILE = next((p for p in _ADULT_CANDIDATES if p.is_file()), None)
needs_adult = pytest.mark.skipif(ADULT_FILE is None, reason="shared/data/adult.data not present")


@functools.lru_cache(maxsize=1)
def _adult_splits():
    return load("adult", "train", path=str(ADULT_FILE)), load("adult", "test", path=str(ADULT_FILE))


@functools.lru_cache(maxsize=1)
def _adult_by_pandas() -> pd.DataFrame:
    """The file read independently of genlab: the values the round trip must reproduce."""
    return pd.read_csv(
        ADULT_FILE,
        header=None,
        names=list(ADULT_COLUMNS),
        skipinitialspace=True,
        na_values=["?", "MissingValue"],
        keep_default_na=False,
    )


@needs_adult
def test_adult_rows_columns_and_labels():
    train, test = _adult_splits()
    assert len(train) + len(test) == 32_561
    assert len(test) == 6_513  # ceil(0.2 * 32,561)
    assert train.info["dataframe"].shape[1] == 15
    assert list(train.info["dataframe"].columns) == list(ADULT_COLUMNS)
    rows = np.concatenate([train.info["rows"], test.info["rows"]])
    assert np.array_equal(np.sort(rows), np.arange(32_561))  # disjoint, and nothing dropped
    assert train.x.dtype == torch.float32 and train.x.shape[1] == train.spec.shape[0] == 110
    assert torch.isfinite(train.x).all()
    assert train.spec.modality == "tabular" and train.spec.num_classes == 2
    assert train.spec == test.spec  # one schema, fitted on the whole file
    labels = torch.cat([train.labels, test.labels])
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [24_720, 7_841]
    assert TableCodec(train.spec.columns).class_names() == ["<=50K", ">50K"]


@needs_adult
def test_adult_stratified_split_keeps_the_label_ratio():
    train, test = _adult_splits()
    overall = 7_841 / 32_561
    for split in (train, test):
        ratio = split.labels.double().mean().item()
        assert abs(ratio - overall) < 0.001  # within 0.1 percentage points
    again = load("adult", "test", path=str(ADULT_FILE))
    assert np.array_equal(again.info["rows"], test.info["rows"])  # seed 0 is reproducible
    other = load("adult", "test", path=str(ADULT_FILE), seed=1)
    assert not np.array_equal(other.info["rows"], test.info["rows"])


@needs_adult
def test_adult_missing_values_are_kept_and_reported():
    train, test = _adult_splits()
    report = train.info["report"]
    missing = {name: c["missing_in_file"] for name, c in report["columns"].items()}
    assert missing == {
        **dict.fromkeys(ADULT_COLUMNS, 0),
        "workclass": 1836,
        "occupation": 1843,
        "native-country": 583,
    }
    for name in ("workclass", "occupation", "native-country"):
        split_counts = (
            train.info["report"]["columns"][name]["missing"]
            + test.info["report"]["columns"][name]["missing"]
        )
        assert split_counts == missing[name]
        assert train.info["dataframe"][name].isna().sum() == report["columns"][name]["missing"]
    assert report["columns"]["age"]["type"] == "numeric"
    assert report["columns"]["income"]["role"] == "target"
    assert report["excluded"] == []
    text = describe_table(train)
    assert "workclass" in text and "1,836" in text and "income (2 classes" in text


@needs_adult
def test_adult_round_trip_reproduces_the_file_exactly():
    train, test = _adult_splits()
    expected = _adult_by_pandas()
    for split in (train, test):
        codec = codec_from_spec(split.spec)
        decoded = codec.decode(split.x)
        pd.testing.assert_frame_equal(decoded, split.info["dataframe"], check_exact=True)
        original = expected.iloc[split.info["rows"]].reset_index(drop=True)
        for name in ADULT_COLUMNS:
            got, want = decoded[name], original[name]
            assert got.isna().equals(want.isna()), name
            if isinstance(got.dtype, pd.CategoricalDtype):
                assert _values(got) == _values(want), name
            else:
                assert got.dtype == np.int64 and np.array_equal(got, want), name
    categories = codec_from_spec(train.spec).columns[1]["categories"]
    assert decoded["workclass"].cat.categories.tolist() == categories


@needs_adult
def test_codec_from_spec_after_json_round_trip():
    train, _ = _adult_splits()
    saved = json.loads(json.dumps(train.spec.to_json()))
    spec = DataSpec.from_json(saved)
    assert spec == train.spec
    codec = codec_from_spec(spec)
    pd.testing.assert_frame_equal(codec.decode(train.x[:500]), train.info["dataframe"][:500])
    assert torch.equal(codec.encode(train.info["dataframe"]), train.x)


def _values(series: pd.Series) -> list:
    """Plain Python values, None for every kind of missing cell."""
    return [None if pd.isna(v) else v for v in series.astype(object)]


def _handmade_frame() -> pd.DataFrame:
    n = 12
    return pd.DataFrame(
        {
            "row_id": [str(100 + i) for i in range(n)],
            "name": [f"person{i:02d}" for i in range(n)],
            "height": [
                "1.5",
                "1.62",
                "",
                "1.8",
                "1.75",
                "1.7",
                "1.66",
                "1.9",
                "1.55",
                "1.6",
                "1.7",
                "1.82",
            ],
            "count": ["3", "1", "4", "1", "5", "9", "2", "6", "5", "3", "5", "-8"],
            "color": [
                "red",
                "blue",
                "red",
                "?",
                "green",
                "blue",
                "red",
                "red",
                "blue",
                "green",
                "red",
                "blue",
            ],
            "smoker": ["yes", "no", "No", "YES", "no", "no", "yes", "", "no", "no", "yes", "no"],
            "born": [f"19{60 + i}-0{1 + i % 9}-1{i % 10}" for i in range(n)],
            "seen": [f"2024-03-0{1 + i % 9} 1{i % 10}:3{i % 10}:0{i % 10}" for i in range(n)],
            "flag01": ["0", "1"] * 6,
        }
    )


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_type_inference_on_a_handmade_table(tmp_path):
    csv = _write_csv(_handmade_frame(), tmp_path / "people.csv")
    data = load(str(csv))
    types = {c["name"]: c["type"] for c in data.spec.columns}
    assert types == {
        "row_id": "id",  # monotone integers, unique per row
        "name": "id",  # text unique per row
        "height": "numeric",
        "count": "numeric",
        "color": "categorical",
        "smoker": "boolean",
        "born": "datetime",
        "seen": "datetime",
        "flag01": "numeric",  # 0/1 is numeric unless declared boolean
    }
    columns = {c["name"]: c for c in data.spec.columns}
    assert columns["count"]["integer"] and not columns["height"]["integer"]
    assert columns["height"]["has_missing"] and columns["height"]["width"] == 2
    assert columns["color"]["categories"] == ["blue", "green", "red"]
    assert columns["color"]["width"] == 4  # three categories + "<missing>"
    assert columns["born"]["resolution"] == "day" and columns["seen"]["resolution"] == "second"
    assert columns["row_id"]["width"] == 0 and columns["row_id"]["role"] == "excluded"
    assert data.info["report"]["excluded"] == ["row_id", "name"]
    assert data.spec.shape == (2 + 1 + 4 + 2 + 1 + 1 + 1,)
    frame = data.info["dataframe"]
    assert str(frame["count"].dtype) == "int64" and str(frame["height"].dtype) == "float64"
    assert str(frame["smoker"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(frame["born"])
    assert "row_id" in frame.columns  # excluded from x, kept in the rows
    assert "note: row_id: id-like" in describe_table(data)
    json.dumps(data.spec.to_json())  # the schema is plain JSON


def test_declared_types_override_inference(tmp_path):
    csv = _write_csv(_handmade_frame(), tmp_path / "people.csv")
    data = load(
        str(csv),
        column_types=["flag01=boolean", "row_id=numeric", "count=categorical"],
        drop_columns=["name"],
    )
    columns = {c["name"]: c for c in data.spec.columns}
    assert "name" not in columns
    assert columns["flag01"]["type"] == "boolean" and columns["flag01"]["width"] == 1
    assert columns["row_id"]["type"] == "numeric" and columns["row_id"]["role"] == "feature"
    # Numbers declared categorical sort by value, not as text.
    assert columns["count"]["categories"] == ["-8", "1", "2", "3", "4", "5", "6", "9"]
    same = load(str(csv), column_types={"flag01": "boolean"})
    assert {c["name"]: c["type"] for c in same.spec.columns}["flag01"] == "boolean"


def test_handmade_round_trip_restores_missing_cells_and_types():
    frame = _handmade_frame()
    data = dataset_from_frame(frame, "train", name="people", test_fraction=0.25)
    codec = codec_from_spec(DataSpec.from_json(json.loads(json.dumps(data.spec.to_json()))))
    decoded = codec.decode(data.x)
    kept = data.info["dataframe"].drop(columns=["row_id", "name"])
    exact = kept.drop(columns=["seen"])
    pd.testing.assert_frame_equal(decoded.drop(columns=["seen"]), exact, check_exact=True)
    # Times of day go through float32 days since 1970: kept to within a few minutes.
    drift = (decoded["seen"] - kept["seen"]).abs().max()
    assert drift <= pd.Timedelta(minutes=3)
    assert decoded["height"].isna().equals(kept["height"].isna())


def test_decoding_model_outputs_gives_valid_rows():
    data = dataset_from_frame(_handmade_frame(), "train", name="people")
    codec = TableCodec(data.spec.columns)
    noise = torch.randn(64, codec.num_features, generator=torch.Generator().manual_seed(0)) * 50
    rows = codec.decode(noise)
    assert list(rows.columns) == codec.model_columns
    count = rows["count"].dropna()
    assert count.between(-8, 9).all() and str(rows["count"].dtype) == "int64"
    assert set(rows["color"].dropna()) <= {"blue", "green", "red"}
    assert rows["color"].isna().any()  # the "<missing>" slot decodes to NaN
    assert set(rows["smoker"].dropna()) <= {True, False}
    assert rows["born"].min() >= pd.Timestamp("1960-01-10")  # clipped to the observed range
    assert len(codec.feature_names) == codec.num_features


def test_target_gives_labels_and_num_classes(tmp_path):
    frame = pd.DataFrame(
        {
            "x": [str(v) for v in range(20)],
            "kind": ["b", "a", "c", "a"] * 5,
            "ok": ["true", "false"] * 10,
        }
    )
    csv = _write_csv(frame, tmp_path / "t.csv")
    data = load(
        str(csv), target="kind", stratify=True, test_fraction=0.4, column_types=["x=numeric"]
    )
    assert data.spec.num_classes == 3
    codec = TableCodec(data.spec.columns)
    assert codec.class_names() == ["a", "b", "c"]
    assert data.labels.tolist() == data.info["dataframe"]["kind"].cat.codes.tolist()
    assert torch.bincount(data.labels).tolist() == [6, 3, 3]
    flags = load(str(csv), target="ok", column_types=["x=numeric"])
    assert flags.spec.num_classes == 2 and set(flags.labels.tolist()) == {0, 1}


def test_parquet_with_typed_columns(tmp_path):
    n = 15
    frame = pd.DataFrame(
        {
            "size": np.linspace(0.5, 7.5, n),
            "rooms": pd.array([1, 2, None, 4, 5] * 3, dtype="Int64"),
            "city": ["oslo", "rome", None, "lima", "oslo"] * 3,
            "garden": [True, False, True] * 5,
            "built": pd.to_datetime([f"20{10 + i}-05-01" for i in range(n)]),
        }
    )
    path = tmp_path / "houses.parquet"
    frame.to_parquet(path)
    assert resolve_source(str(path))[0] == "table"
    data = load(str(path), test_fraction=0.2)
    types = {c["name"]: c["type"] for c in data.spec.columns}
    assert types == {
        "size": "numeric",
        "rooms": "numeric",
        "city": "categorical",
        "garden": "boolean",
        "built": "datetime",
    }
    codec = codec_from_spec(data.spec)
    decoded = codec.decode(data.x)
    typed = data.info["dataframe"]
    pd.testing.assert_frame_equal(decoded.drop(columns="size"), typed.drop(columns="size"))
    assert np.allclose(decoded["size"], typed["size"], rtol=1e-6)  # x is float32
    original = frame.iloc[data.info["rows"]].reset_index(drop=True)
    for name in ("rooms", "city", "garden", "built"):
        assert _values(typed[name]) == _values(original[name]), name


def test_csv_path_dispatch_tsv_and_header_options(tmp_path):
    frame = pd.DataFrame({"a": [str(v) for v in range(5)], "b": ["u", "v", "u", "v", "u"]})
    csv = _write_csv(frame, tmp_path / "x.csv")
    assert resolve_source(str(csv)) == ("table", {"path": str(csv)})
    data = load(str(csv))
    assert data.spec.name == "x.csv" and len(data) == 4 and data.spec.shape == (3,)
    tsv = tmp_path / "x.tsv"
    frame.to_csv(tsv, sep="\t", index=False)
    assert load(str(tsv)).spec.columns == data.spec.columns
    raw = tmp_path / "raw.data"
    raw.write_text("1, u\n2, v\n3, u\n4, v\n5, u\n")  # ", " separated, no header
    plain = load(str(raw), header="none")
    assert [c["name"] for c in plain.spec.columns] == ["column_1", "column_2"]
    assert set(plain.info["dataframe"]["column_2"]) <= {"u", "v"}  # spaces skipped
    named = load(str(raw), column_names=["a", "b"])
    assert [c["name"] for c in named.spec.columns] == ["a", "b"]
    years = tmp_path / "years.csv"
    years.write_text("2019,2020\n1,2\n3,4\n5,6\n")  # numbers atop numbers: no header
    assert load(str(years)).spec.columns[0]["name"] == "column_1"
    assert load(str(years), header="first").spec.columns[0]["name"] == "2019"
    # A header row equal to the given names is skipped, not read as data.
    assert len(load(str(csv), column_names=["a", "b"], test_fraction=0.5)) == 2


# --- bad input: each a DataError that names the problem and the fix ---------------------------


def test_one_row_is_an_error(tmp_path):
    csv = tmp_path / "one.csv"
    csv.write_text("a,b\n1,x\n")
    with pytest.raises(DataError, match="1 data row: a table needs at least 2"):
        load(str(csv))


def test_all_missing_column_is_named_with_the_fix(tmp_path):
    csv = tmp_path / "holes.csv"
    csv.write_text("a,empty,c\n1,,x\n2,?,y\n3,NA,x\n")
    with pytest.raises(DataError, match=r"column 'empty' has no values.*drop_columns=\['empty'\]"):
        load(str(csv))
    assert load(str(csv), drop_columns=["empty"]).spec.shape == (3,)


def test_type_change_mid_file_names_the_column_and_row(tmp_path):
    values = [str(v) for v in range(30)]
    values[17] = "twelve"
    csv = _write_csv(pd.DataFrame({"n": values, "k": ["a", "b"] * 15}), tmp_path / "mixed.csv")
    with pytest.raises(
        DataError, match=r"column 'n' is mostly numbers but data row 18.*'twelve'"
    ) as e:
        load(str(csv))
    assert "categorical" in str(e.value) and "missing_values" in str(e.value)
    assert load(str(csv), column_types=["n=categorical"]).spec.columns[0]["type"] == "categorical"
    with pytest.raises(DataError, match="'n' is mostly numbers but data row 18"):
        load(str(csv), column_types=["n=numeric"])


def test_stratify_without_target_is_an_error(tmp_path):
    csv = _write_csv(_handmade_frame(), tmp_path / "p.csv")
    with pytest.raises(DataError, match="stratify=true needs a target column"):
        load(str(csv), stratify=True)
    with pytest.raises(DataError, match=r"at least 2 rows of every class of 'count', but -8, 2"):
        load(str(csv), target="count", stratify=True)


def test_unknown_target_lists_the_columns(tmp_path):
    csv = _write_csv(_handmade_frame(), tmp_path / "p.csv")
    with pytest.raises(DataError, match=r"target column 'income' not found.*'color'"):
        load(str(csv), target="income")


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        load(str(empty))
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        load(str(blank))
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    with pytest.raises(DataError, match="header but no data rows"):
        load(str(header))


def test_garbled_parquet_is_an_error(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="cannot read .*bad.parquet as Parquet"):
        load(str(bad))
    good = tmp_path / "cut.parquet"
    pd.DataFrame({"a": range(100)}).to_parquet(good)
    cut = tmp_path / "truncated.parquet"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match="as Parquet"):
        load(str(cut))


def test_option_and_schema_errors(tmp_path):
    csv = _write_csv(_handmade_frame(), tmp_path / "p.csv")
    with pytest.raises(DataError, match=r"drop_columns names \['nope'\]"):
        load(str(csv), drop_columns=["nope"])
    with pytest.raises(DataError, match="choose one of numeric"):
        load(str(csv), column_types=["color=colour"])
    with pytest.raises(DataError, match="header must be"):
        load(str(csv), header="yes")
    with pytest.raises(DataError, match="test_fraction"):
        load(str(csv), test_fraction=1.5)
    with pytest.raises(DataError, match="column_names gives 2 names"):
        load(str(csv), column_names=["a", "b"])
    with pytest.raises(DataError, match="more than max_categories=2"):
        load(str(csv), max_categories=2)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataError, match="cannot parse .*separator"):
        load(str(ragged))
    data = dataset_from_frame(_handmade_frame(), "train", name="p")
    codec = TableCodec(data.spec.columns)
    with pytest.raises(DataError, match="'purple' in data row 1 is not one of its categories"):
        codec.encode(data.info["dataframe"].assign(color="purple"))
    with pytest.raises(DataError, match=r"give shape \(N, 12\)"):
        codec.decode(torch.zeros(2, 5))
    with pytest.raises(DataError, match="modality 'tabular'"):
        codec_from_spec(DataSpec(modality="points", shape=(2,)))


def test_target_with_missing_cells_and_table_without_path(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,y\n1,p\n2,\n3,q\n4,p\n")
    with pytest.raises(DataError, match="target column 'y' has 1 missing cell .*data row 2"):
        load(str(csv), target="y")
    with pytest.raises(DataError, match="give the file with path"):
        load("table")
    with pytest.raises(DataError, match="adult.data"):
        load("adult", path=str(tmp_path / "nowhere" / "adult.data"))
