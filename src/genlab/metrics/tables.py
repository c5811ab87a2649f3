"""Fidelity and utility of synthetic tables, on pandas DataFrames.

Three families of score, as in SDMetrics' quality report (DataCebo) and the TSTR protocol of
Esteban et al. (2017, "Real-valued (medical) time series generation with recurrent conditional
GANs") used for tables by Xu et al. (2019, CTGAN):

- `column_shapes`: each column's marginal, 1 − Kolmogorov–Smirnov statistic for numeric
  columns and 1 − total variation distance for categorical ones.
- `column_pair_trends`: each pair of columns' dependence, 1 − |ρ_real − ρ_syn| / 2 (Pearson) for
  two numeric columns, 1 − total variation distance of the joint frequency tables otherwise.
- `ml_efficacy`: train a model on synthetic rows and test it on real ones (TSTR), next to the
  same model trained on real rows (TRTR).

Column kinds: a column is categorical when its dtype is object, string, category or bool in
either frame, or when it is named in `categorical=`; every other column is numeric. Missing
values: in categorical columns NaN is a category of its own, "<missing>"; numeric columns drop
NaN for the KS statistic and for each correlation, keep it as a bin of its own when binned, and
pass it to the gradient-boosting models, which handle NaN natively.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from genlab.core.errors import ConfigError, DataError

MISSING = "<missing>"

Metric = Literal["f1", "accuracy", "r2"]


def _is_categorical(column: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _column_kinds(
    frames: dict[str, pd.DataFrame], categorical: Iterable[str] | None
) -> tuple[list[str], list[str]]:
    """Check the frames share their columns; return (numeric, categorical) column names.

    Args:
        frames: {name used in messages: frame}; the first one fixes the column order.
    """
    names = list(frames)
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{name} is a {type(frame).__name__}, not a pandas DataFrame")
        if len(frame) == 0:
            raise DataError(f"{name} has no rows: pass a non-empty DataFrame")
        if frame.columns.has_duplicates:
            dupes = sorted(map(str, frame.columns[frame.columns.duplicated()].unique()))
            raise DataError(f"{name} has duplicated column names {dupes}: rename them")
    reference = frames[names[0]]
    columns = list(reference.columns)
    for name in names[1:]:
        other = frames[name].columns
        missing = [c for c in columns if c not in other]
        extra = [c for c in other if c not in reference.columns]
        if missing or extra:
            gaps = [f"lacks {missing}"] if missing else []
            gaps += [f"has extra {extra}"] if extra else []
            raise DataError(
                f"{names[0]} and {name} must have the same columns, but {name} "
                f"{' and '.join(gaps)}; select the same columns in both"
            )
    if len(columns) == 0:
        raise DataError(f"{names[0]} has no columns")
    declared = set(categorical or ())
    unknown = sorted(map(str, declared - set(columns)))
    if unknown:
        raise ConfigError(f"categorical= names columns the data lacks: {unknown}")
    cat = [
        c
        for c in columns
        if c in declared or any(_is_categorical(frame[c]) for frame in frames.values())
    ]
    num = [c for c in columns if c not in cat]
    return num, cat


def _as_category(column: pd.Series) -> pd.Series:
    """Values as strings, with NaN as the category "<missing>" (so "1" and 1 match)."""
    values = column.astype(object)
    return values.where(values.notna(), MISSING).astype(str)


def _as_numeric(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _tvd(p: pd.Series, q: pd.Series) -> float:
    """Total variation distance ½ Σ |p − q| of two frequency tables (missing keys count 0)."""
    return 0.5 * float(p.sub(q, fill_value=0.0).abs().sum())


def _observed(values: np.ndarray, column: str, frame_name: str) -> np.ndarray:
    observed = values[~np.isnan(values)]
    if observed.size == 0:
        raise DataError(
            f"numeric column {column!r} has only missing values in {frame_name}: drop it or "
            "declare it categorical=[...]"
        )
    return observed


def column_shapes(
    real: pd.DataFrame, synthetic: pd.DataFrame, *, categorical: Iterable[str] | None = None
) -> dict[str, Any]:
    """How well each column's marginal distribution is reproduced (SDMetrics "column shapes").

    Numeric columns score 1 − KS, the two-sample Kolmogorov–Smirnov statistic
    (`scipy.stats.ks_2samp`, the largest gap between the two empirical CDFs) on the observed
    values; categorical columns score 1 − TVD, the total variation distance ½ Σ_k |p_k − q_k|
    between the category frequencies, "<missing>" included.

    Args:
        real: the real rows.
        synthetic: the synthetic rows, with the same columns (any order).
        categorical: columns to treat as categorical whatever their dtype.

    Returns:
        {"columns": {column: score in [0, 1]}, "mean": mean score}; 1 means identical marginals.
    """
    numeric, cat = _column_kinds({"real": real, "synthetic": synthetic}, categorical)
    scores: dict[str, float] = {}
    for column in real.columns:
        if column in cat:
            p = _as_category(real[column]).value_counts(normalize=True)
            q = _as_category(synthetic[column]).value_counts(normalize=True)
            scores[column] = 1.0 - _tvd(p, q)
        else:
            x = _observed(_as_numeric(real[column]), column, "real")
            y = _observed(_as_numeric(synthetic[column]), column, "synthetic")
            scores[column] = 1.0 - float(ks_2samp(x, y).statistic)
    return {"columns": scores, "mean": float(np.mean(list(scores.values())))}


def _quantile_bins(real: np.ndarray, synthetic: np.ndarray, num_bins: int, column: str):
    """Bin both columns by the quantiles of the real one; NaN gets the bin -1."""
    observed = _observed(real, column, "real")
    edges = np.unique(np.quantile(observed, np.linspace(0.0, 1.0, num_bins + 1)))
    inner = edges[1:-1]  # the outer bins are open, so synthetic values beyond the range count

    def binned(values: np.ndarray) -> pd.Series:
        codes = np.searchsorted(inner, values, side="right")
        return pd.Series(np.where(np.isnan(values), -1, codes).astype(str))

    return binned(real), binned(synthetic)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson ρ on the rows where both are observed; 0 when it is undefined (constant column)."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))


def column_pair_trends(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    categorical: Iterable[str] | None = None,
    num_bins: int = 10,
) -> dict[str, Any]:
    """How well the dependence between each pair of columns is reproduced (SDMetrics "trends").

    - two numeric columns: 1 − |ρ_real − ρ_syn| / 2 with ρ Pearson's correlation on the rows
      where both are observed (taken as 0 when a column is constant, where it is undefined);
    - two categorical columns: 1 − TVD between the contingency tables, i.e. the normalised joint
      frequencies of the value pairs ("<missing>" included);
    - one numeric and one categorical: the numeric column is cut into `num_bins` quantile bins
      of the *real* data (fewer when quantiles coincide; the outer bins are open so synthetic
      values outside the real range still count; NaN is a bin of its own), then the
      categorical rule applies.

    Args:
        real: the real rows.
        synthetic: the synthetic rows, with the same columns.
        categorical: columns to treat as categorical whatever their dtype.
        num_bins: quantile bins for the numeric column of a mixed pair.

    Returns:
        {"pairs": [{"columns": [a, b], "kind": "numeric" | "categorical" | "mixed",
        "score": in [0, 1]}, ...], "mean": mean score over the pairs}.
    """
    if num_bins < 1:
        raise ConfigError(f"num_bins must be >= 1, got {num_bins}")
    numeric, cat = _column_kinds({"real": real, "synthetic": synthetic}, categorical)
    columns = list(real.columns)
    if len(columns) < 2:
        raise DataError(f"column pair trends need at least two columns, got {columns}")

    real_num = {c: _as_numeric(real[c]) for c in numeric}
    syn_num = {c: _as_numeric(synthetic[c]) for c in numeric}
    # Categorical view of every column: categories as they are, numeric ones binned.
    real_cat: dict[str, pd.Series] = {}
    syn_cat: dict[str, pd.Series] = {}
    for c in cat:
        real_cat[c] = _as_category(real[c]).reset_index(drop=True)
        syn_cat[c] = _as_category(synthetic[c]).reset_index(drop=True)
    if cat:
        for c in numeric:
            real_cat[c], syn_cat[c] = _quantile_bins(real_num[c], syn_num[c], num_bins, c)

    pairs = []
    for i, a in enumerate(columns):
        for b in columns[i + 1 :]:
            if a in numeric and b in numeric:
                kind = "numeric"
                gap = abs(_pearson(real_num[a], real_num[b]) - _pearson(syn_num[a], syn_num[b]))
                score = 1.0 - gap / 2.0
            else:
                kind = "categorical" if a in cat and b in cat else "mixed"
                p = pd.DataFrame({"a": real_cat[a], "b": real_cat[b]}).value_counts(normalize=True)
                q = pd.DataFrame({"a": syn_cat[a], "b": syn_cat[b]}).value_counts(normalize=True)
                score = 1.0 - _tvd(p, q)
            pairs.append({"columns": [a, b], "kind": kind, "score": score})
    return {"pairs": pairs, "mean": float(np.mean([p["score"] for p in pairs]))}


def _estimator(model: str, classification: bool, categorical: list[str], seed: int):
    """A Pipeline: one-hot encode the categorical columns, pass numeric ones (NaN included)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    models = {
        "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    }
    if model not in models:
        raise ConfigError(f"unknown model {model!r}: choose from {', '.join(models)}")
    classifier, regressor = models[model]
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder="passthrough",
    )
    head = classifier(random_state=seed) if classification else regressor(random_state=seed)
    return Pipeline([("encode", encode), ("model", head)])


def _split_target(
    frame: pd.DataFrame, name: str, target: str, categorical: list[str], classification: bool
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of the rows that have a target.

    Categorical features become strings with "<missing>"; numeric ones float64 with NaN.
    """
    frame = frame[frame[target].notna()]
    if len(frame) == 0:
        raise DataError(f"every row of {name} lacks the target {target!r}")
    x = frame.drop(columns=[target])
    x = pd.DataFrame(
        {c: _as_category(x[c]) if c in categorical else _as_numeric(x[c]) for c in x.columns},
        index=x.index,
    )
    y = frame[target]
    if classification:
        y = _as_category(y) if target in categorical else y
    else:
        y = pd.Series(_as_numeric(y), index=y.index)
    return x, y


def _score(metric: Metric, y_true, y_pred, positive_label) -> float:
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if metric == "r2":
        return float(r2_score(y_true, y_pred))
    if positive_label is None:
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0.0))
    # labels=[positive] scores that class alone, even when the synthetic rows bring extra classes
    scores = f1_score(y_true, y_pred, labels=[positive_label], average=None, zero_division=0.0)
    return float(scores[0])


def ml_efficacy(
    train_synthetic: pd.DataFrame,
    test_real: pd.DataFrame,
    *,
    target: str,
    train_real: pd.DataFrame | None = None,
    model: str = "hist_gradient_boosting",
    metric: Metric = "f1",
    positive_label: Any = None,
    categorical: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Machine-learning efficacy: train on synthetic, test on real (TSTR), next to TRTR.

    Train-on-synthetic-test-on-real (Esteban et al., 2017; Xu et al., 2019, CTGAN): a
    scikit-learn Pipeline, one-hot encoding of the categorical features
    (`OneHotEncoder(handle_unknown="ignore")`, so categories unseen in training are all-zero)
    then a histogram gradient-boosting model (`HistGradientBoostingClassifier`/`Regressor`,
    `random_state=seed`, which handles NaN in numeric features natively), is fitted on the
    synthetic rows and scored on the real test rows. With `train_real`, the same pipeline fitted
    on real rows gives the reference figure; a good generator brings TSTR close to TRTR.

    Rows whose target is missing are dropped. The task is regression for metric "r2" and
    classification otherwise. F1 is the F1 of the positive class (one-vs-rest) when
    `positive_label` is given; with `positive_label=None` and two classes the positive class is
    the rarer class in `test_real` (">50K" on Adult, the usual choice), and with more than two
    classes F1 is macro-averaged.

    Args:
        train_synthetic: synthetic rows to train on.
        test_real: real held-out rows to test on, with the same columns.
        target: the column to predict.
        train_real: real training rows, for the train-on-real reference figure.
        model: the model family; "hist_gradient_boosting".
        metric: "f1" or "accuracy" (classification) or "r2" (regression).
        positive_label: the class whose F1 is reported (default: see above).
        categorical: columns to treat as categorical whatever their dtype.
        seed: the model's random_state.

    Returns:
        {"metric", "task", "train_synthetic_test_real", and with train_real
        "train_real_test_real"}.
    """
    if metric not in ("f1", "accuracy", "r2"):
        raise ConfigError(f"unknown metric {metric!r}: choose 'f1', 'accuracy' or 'r2'")
    frames = {"train_synthetic": train_synthetic, "test_real": test_real}
    if train_real is not None:
        frames["train_real"] = train_real
    _, cat = _column_kinds(frames, categorical)
    if target not in test_real.columns:
        raise DataError(
            f"target {target!r} is not a column; choose one of {list(test_real.columns)}"
        )
    classification = metric != "r2"
    if not classification and target in cat:
        raise ConfigError(
            f"target {target!r} is categorical, so 'r2' does not apply: use metric='f1' or "
            "'accuracy'"
        )
    if len(test_real.columns) < 2:
        raise DataError(f"there are no feature columns besides the target {target!r}")

    x_test, y_test = _split_target(test_real, "test_real", target, cat, classification)
    if classification:
        labels = y_test.value_counts()
        if positive_label is None and metric == "f1" and len(labels) <= 2:
            # value_counts sorts by count, so the last is the rarer class
            positive_label = labels.index[-1]
        elif positive_label is not None:
            if target in cat:
                positive_label = str(positive_label)
            if positive_label not in labels.index:
                raise DataError(
                    f"positive_label {positive_label!r} never occurs in the target {target!r} "
                    f"of test_real; choose one of {sorted(map(str, labels.index))}"
                )

    result: dict[str, Any] = {
        "metric": metric,
        "task": "classification" if classification else "regression",
    }
    for key, name in (
        ("train_synthetic_test_real", "train_synthetic"),
        ("train_real_test_real", "train_real"),
    ):
        if name not in frames:
            continue
        x, y = _split_target(frames[name], name, target, cat, classification)
        if classification and y.nunique() < 2:
            raise DataError(
                f"the target {target!r} of {name} has a single class ({y.iloc[0]!r}), so no "
                "classifier can be trained: generate or pass rows of at least two classes"
            )
        pipeline = _estimator(model, classification, [c for c in cat if c != target], seed)
        pipeline.fit(x, y)
        result[key] = _score(metric, y_test, pipeline.predict(x_test), positive_label)
    return result
