"""Table metrics: hand-computed marginals and pair trends, TSTR figures, and UCI Adult."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from genlab.core.errors import ConfigError, DataError
from genlab.data.tables import ADULT_COLUMNS
from genlab.metrics.tables import column_pair_trends, column_shapes, ml_efficacy


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """Gradient boosting on a busy shared runner is many times slower with every core spinning."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "x": x,
            "y": 2 * x + rng.normal(size=n),
            "count": rng.integers(0, 5, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n).astype(object),
            "flag": rng.random(n) < 0.3,
            "level": pd.Categorical(rng.choice(["lo", "hi"], size=n)),
        }
    )
    frame.loc[::7, "x"] = np.nan
    frame.loc[::5, "color"] = None
    return frame


def test_column_shapes_of_a_frame_with_itself_is_one():
    frame = mixed_frame()
    result = column_shapes(frame, frame)
    assert set(result["columns"]) == set(frame.columns)
    assert all(score == pytest.approx(1.0) for score in result["columns"].values())
    assert result["mean"] == pytest.approx(1.0)


def test_column_shapes_by_hand():
    real = pd.DataFrame({"x": np.arange(1.0, 11.0), "c": ["a"] * 5 + ["b"] * 5})
    synthetic = pd.DataFrame(
        {"x": np.arange(1.0, 11.0) + 3, "c": ["a"] * 2 + ["b"] * 6 + [None] * 2}
    )
    result = column_shapes(real, synthetic)
    # shifting 10 evenly spaced values by 3 moves the empirical CDF by 3/10 at most
    assert result["columns"]["x"] == pytest.approx(1 - 0.3)
    # p = (a .5, b .5), q = (a .2, b .6, <missing> .2): TVD = (.3 + .1 + .2) / 2 = .3
    assert result["columns"]["c"] == pytest.approx(1 - 0.3)
    assert result["mean"] == pytest.approx(0.7)


def test_explicit_categorical_turns_a_numeric_column_into_categories():
    real = pd.DataFrame({"code": [1, 1, 2, 2]})
    synthetic = pd.DataFrame({"code": [1, 2, 2, 2]})
    # numeric: KS = 1/4; categorical: TVD = (.25 + .25) / 2 = .25 too, but by categories
    assert column_shapes(real, synthetic)["columns"]["code"] == pytest.approx(0.75)
    # 1, 3 against 2, 4: the CDFs differ by 1/2 at most, but no value is shared at all
    real, synthetic = pd.DataFrame({"code": [1, 3]}), pd.DataFrame({"code": [2, 4]})
    numeric = column_shapes(real, synthetic)["columns"]["code"]
    categorical = column_shapes(real, synthetic, categorical=["code"])["columns"]["code"]
    assert numeric == pytest.approx(0.5)
    assert categorical == pytest.approx(0.0)


def test_pair_trends_of_identical_frames_is_one():
    frame = mixed_frame()
    result = column_pair_trends(frame, frame.sample(frac=1.0, random_state=0))
    n = frame.shape[1]
    assert len(result["pairs"]) == n * (n - 1) // 2
    assert {p["kind"] for p in result["pairs"]} == {"numeric", "categorical", "mixed"}
    assert all(p["score"] == pytest.approx(1.0) for p in result["pairs"])
    assert result["mean"] == pytest.approx(1.0)


def test_pair_trends_numeric_by_hand():
    real = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 4]})  # ρ = 1
    reversed_ = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [4.0, 3, 2, 1]})  # ρ = -1
    independent = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [1.0, -1, -1, 1]})  # ρ = 0
    assert column_pair_trends(real, reversed_)["mean"] == pytest.approx(0.0)
    assert column_pair_trends(real, independent)["mean"] == pytest.approx(0.5)


def test_pair_trends_categorical_sees_dependence_the_marginals_miss():
    real = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["u", "u", "v", "v"]})
    synthetic = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["u", "v", "u", "v"]})
    assert column_shapes(real, synthetic)["mean"] == pytest.approx(1.0)
    # real joint (x,u) .5, (y,v) .5; synthetic .25 on each of four cells: TVD = .5
    pair = column_pair_trends(real, synthetic)["pairs"][0]
    assert pair == {"columns": ["a", "b"], "kind": "categorical", "score": pytest.approx(0.5)}


def test_pair_trends_mixed_bins_by_real_quantiles_with_open_ends():
    real = pd.DataFrame({"n": [1.0, 2, 3, 4], "c": ["a", "a", "b", "b"]})
    # two bins split at the real median 2.5: low values go with a, high ones with b
    swapped = pd.DataFrame({"n": [1.0, 2, 3, 4], "c": ["b", "b", "a", "a"]})
    wide = pd.DataFrame({"n": [-100.0, 2, 3, 100], "c": ["a", "a", "b", "b"]})
    assert column_pair_trends(real, swapped, num_bins=2)["mean"] == pytest.approx(0.0)
    assert column_pair_trends(real, wide, num_bins=2)["mean"] == pytest.approx(1.0)


def test_table_errors_name_the_columns():
    real = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"synthetic lacks \['b'\] and has extra \['c'\]"):
        column_shapes(real, pd.DataFrame({"a": [1.0], "c": [2.0]}))
    with pytest.raises(DataError, match="no rows"):
        column_shapes(real, real.iloc[:0])
    with pytest.raises(ConfigError, match="'z'"):
        column_shapes(real, real, categorical=["z"])
    with pytest.raises(DataError, match="only missing"):
        column_shapes(real, pd.DataFrame({"a": [np.nan], "b": [1.0]}))
    with pytest.raises(DataError, match="two columns"):
        column_pair_trends(real[["a"]], real[["a"]])


def classification_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A learnable problem with a numeric and a categorical signal, NaN in both kinds."""
    rng = np.random.default_rng(seed)
    n = 900
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    group = rng.choice(["a", "b", "c"], size=n)
    logit = 2.5 * x1 - 1.5 * x2 + np.where(group == "a", 2.0, -1.0)
    label = np.where(logit + rng.logistic(size=n) > 0, "yes", "no")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "group": group.astype(object), "label": label})
    frame.loc[::11, "x2"] = np.nan
    frame.loc[::13, "group"] = None
    return frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)


def test_ml_efficacy_copy_of_real_matches_train_on_real():
    train, test = classification_frames()
    result = ml_efficacy(train.copy(), test, target="label", train_real=train)
    assert result["metric"] == "f1" and result["task"] == "classification"
    assert result["train_synthetic_test_real"] == result["train_real_test_real"]
    assert result["train_real_test_real"] > 0.75


def test_ml_efficacy_shuffled_labels_score_clearly_lower():
    train, test = classification_frames()
    shuffled = train.copy()
    shuffled["label"] = np.random.default_rng(1).permutation(shuffled["label"].to_numpy())
    result = ml_efficacy(shuffled, test, target="label", train_real=train)
    assert result["train_synthetic_test_real"] < result["train_real_test_real"] - 0.2
    accuracy = ml_efficacy(train, test, target="label", metric="accuracy")
    assert accuracy["train_synthetic_test_real"] > 0.75
    assert "train_real_test_real" not in accuracy


def test_ml_efficacy_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["kind"] = np.where(x[:, 2] > 0, "up", "down")
    frame["y"] = 3 * x[:, 0] - x[:, 1] + np.where(frame["kind"] == "up", 2.0, 0.0)
    result = ml_efficacy(frame.iloc[:350], frame.iloc[350:], target="y", metric="r2")
    assert result["task"] == "regression"
    assert result["train_synthetic_test_real"] > 0.8


def test_ml_efficacy_errors():
    train, test = classification_frames()
    with pytest.raises(DataError, match="target 'nope'"):
        ml_efficacy(train, test, target="nope")
    one_class = train.assign(label="yes")
    with pytest.raises(DataError, match="single class"):
        ml_efficacy(one_class, test, target="label")
    with pytest.raises(ConfigError, match="categorical"):
        ml_efficacy(train, test, target="label", metric="r2")
    with pytest.raises(ConfigError, match="hist_gradient_boosting"):
        ml_efficacy(train, test, target="label", model="svm")
    with pytest.raises(DataError, match="positive_label 'maybe'"):
        ml_efficacy(train, test, target="label", positive_label="maybe")
    with pytest.raises(DataError, match=r"test_real has extra \['group'\]"):
        ml_efficacy(train.drop(columns=["group"]), test, target="label")


def adult_path() -> Path | None:
    candidates = [
        Path(__file__).resolve().parents[2].parent / "shared" / "data" / "adult.data",
        Path("/work/shared/data/adult.data"),
    ]
    return next((p for p in candidates if p.is_file()), None)


def test_adult_halves_agree():
    path = adult_path()
    if path is None:
        pytest.skip("UCI Adult (shared/data/adult.data) is not available")
    adult = pd.read_csv(
        path, header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?"
    )
    half = len(adult) // 2
    first, second = adult.iloc[:half], adult.iloc[half:]

    shapes = column_shapes(first, second)
    assert min(shapes["columns"].values()) > 0.95, shapes
    trends = column_pair_trends(first, second)
    assert trends["mean"] > 0.9
    assert min(p["score"] for p in trends["pairs"]) > 0.9

    result = ml_efficacy(
        second.iloc[:3000], first.iloc[:3000], target="income", train_real=first.iloc[3000:6000]
    )
    assert result["train_real_test_real"] > 0.55  # F1 of ">50K", the rarer class
    assert abs(result["train_synthetic_test_real"] - result["train_real_test_real"]) < 0.05
