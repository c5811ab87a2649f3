"""Tables: CSV, TSV and Parquet files, and UCI Adult, as float32 rows (N, D) in the data's units.

A table is read, every column's type is inferred (or declared), and a `TableCodec` turns the
typed rows into model features `x` and model outputs back into a DataFrame. The codec's whole
state is the column schema `spec.columns`, plain JSON, so a run folder decodes its samples
without the data (`codec_from_spec(spec)`).

Reading: CSV cells are read as text, exactly as written (spaces after the separator skipped when
the first line has them, as in UCI Adult's ", "); Parquet columns keep their types. With
header="infer" the first row is the header unless it holds a number atop a column of mostly
numbers. Text cells equal to one of `missing_values` are missing, in every format.

Type inference, on the non-missing cells of each column of the whole file (so that the train
and test splits share one schema):
    numeric      every cell is a number. Integers (every cell matches [+-]digits, or an integer
                 Parquet column) decode as integers; others as floats. (Codes with leading
                 zeros, such as ZIP codes, are numbers by this rule: declare them categorical.)
    boolean      the cells are true/false or yes/no (any case), or a Parquet bool column; 0/1
                 columns are numeric unless declared boolean.
    datetime     every cell is an ISO-8601 date or date-time (YYYY-MM-DD[ HH:MM[:SS[.fff]]],
                 "T" or a space between), or a Parquet datetime column (without time zone).
    id           flagged and excluded from `x` (kept in the DataFrame and the report): an integer
                 column that is unique and strictly monotone, or a text column unique per row,
                 without missing cells and with at least ID_MIN_ROWS rows.
    categorical  any other text column with at most `max_categories` distinct values; more is
                 an error (drop the column or raise `max_categories`).
    A column that is mostly (>= half) numbers or dates with some other text is an error naming
    the column and its first offending row. `column_types={"zip": "categorical"}` (or
    `["zip=categorical"]`) declares a type instead: numeric, categorical, boolean, datetime, id.

Encoding, in file order, one contiguous block of `x` per column (`offset`, `width` in the schema):
    numeric      the raw value, one float. Missing cells are imputed with the column's median
                 and a 0/1 "missing" indicator follows (only for columns with missing cells), so
                 models see finite floats; decoding gives NaN (pd.NA for integers) where the
                 indicator is > 0.5. Integers decode rounded and clipped to the observed range;
                 floats from text are rounded to the most decimals the file uses.
    categorical  a one-hot float block over the sorted categories, plus a last "<missing>" slot
                 when the column has missing cells; decoded by argmax, "<missing>" -> NaN.
    boolean      one float 0/1 (+ missing indicator as for numbers); decoded by threshold 0.5.
    datetime     float days since 1970-01-01 (+ missing indicator); decoded clipped to the
                 observed range and rounded to whole days when every value is a date, else to
                 seconds. float32 keeps dates exact, times of day to about three minutes.

The target (`target=`) names a class column: it is categorical (or boolean) whatever its cells
look like, it must have no missing cells, its category indices are the `labels` (int64) and
`spec.num_classes` its number of classes. It also stays a regular column of `x`, so that a
generative model learns the joint distribution of all columns, labels included.

Splits: a seeded shuffle (`seed`) puts `test_fraction` of the rows in the test split,
stratified on the target when `stratify=True`; each split keeps the file's row order. Nothing is
dropped silently: missing cells are kept and counted, and `Dataset.info` holds "dataframe" (the
split's typed rows, aligned with `x`), "rows" (their 0-based positions among the file's data
rows) and "report" (per column: type, role, missing cells in the split and in the file).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import source
from genlab.data.dataset import Dataset

COLUMN_TYPES = ("numeric", "categorical", "boolean", "datetime", "id")
CSV_SUFFIXES = frozenset({".csv", ".tsv", ".data"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
TABLE_SUFFIXES = CSV_SUFFIXES | PARQUET_SUFFIXES
MISSING_CATEGORY = "<missing>"
# Fewer rows than this and a unique column is more likely a small table's data than an id.
ID_MIN_ROWS = 10
# At least this fraction of numbers (or dates) makes other text a mistake rather than a category.
MIXED_TYPE_FRACTION = 0.5
BOOLEAN_PAIRS = (("true", "false"), ("yes", "no"))
_INTEGER_RE = r"[+-]?\d+"
_DATE_RE = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
_EPOCH = pd.Timestamp("1970-01-01")
_SECONDS_PER_DAY = 86400

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
# UCI writes "?"; the copy in shared/data writes "MissingValue" in the same 4,262 cells.
ADULT_MISSING_VALUES = ("?", "MissingValue")


# ---------------------------------------------------------------------------------------------
# Reading


def _read_table(
    path: Path, *, header: str, column_names: tuple[str, ...], separator: str
) -> pd.DataFrame:
    """The file's cells: text columns for CSV, typed columns for Parquet."""
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file: check the path")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: give a file with a table in it")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
        if column_names:
            frame = _rename(frame, column_names, path)
    else:
        frame = _read_csv(path, header, column_names, separator)
    frame.columns = [str(c) for c in frame.columns]
    duplicates = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicates:
        raise DataError(
            f"{path}: column names {duplicates} appear more than once: rename them in the file "
            "or pass column_names"
        )
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except ImportError as e:
        raise DataError(f"reading {path} needs pyarrow: install it ({e})") from None
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError or others on a garbled file
        raise DataError(
            f"cannot read {path} as Parquet ({type(e).__name__}: {e}): check that the file is a "
            "whole Parquet file (pandas: DataFrame.to_parquet), or give it a .csv name if it is "
            "text"
        ) from None
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()  # a saved named index is a column of the table
    return frame


def _read_csv(
    path: Path, header: str, column_names: tuple[str, ...], separator: str
) -> pd.DataFrame:
    if separator == "," and path.suffix.lower() == ".tsv":
        separator = "\t"
    skip_space = False
    if len(separator) > 1 and len(separator.strip()) == 1:
        separator, skip_space = separator.strip(), True  # ", " is "," then spaces to skip
    try:
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text ({e}): save it as UTF-8 CSV, or give a .parquet file"
        ) from None
    if not first:
        raise DataError(f"{path} is empty (only blank lines): give a file with a table in it")
    # Files such as UCI Adult write ", " between cells: the spaces are not part of the values.
    skip_space = skip_space or f"{separator} " in first
    try:
        frame = pd.read_csv(
            path,
            sep=separator,
            header=None,
            dtype=str,
            keep_default_na=False,  # every cell as written: dataset_from_frame marks missing ones
            skipinitialspace=skip_space,
            engine="python" if len(separator) > 1 else "c",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: give a file with a table in it") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as e:
        raise DataError(
            f"cannot parse {path} as a table with separator {separator!r}: {e}. Check the "
            "separator (separator=...) and that every row has the same number of cells"
        ) from None
    default_names = [f"column_{i + 1}" for i in range(frame.shape[1])]
    if column_names:
        frame = _rename(frame, column_names, path)
        # With header="infer", a first row that repeats the given names is the file's header.
        repeats_names = list(frame.iloc[0]) == list(column_names)
        if header == "first" or (header == "infer" and repeats_names):
            frame = frame.iloc[1:].reset_index(drop=True)
    elif header == "first" or (header == "infer" and not _first_row_is_data(frame)):
        names = [str(n) if n else d for n, d in zip(frame.iloc[0].tolist(), default_names)]
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
    else:
        frame.columns = default_names
    return frame


def _first_row_is_data(frame: pd.DataFrame) -> bool:
    """Whether a header-less reading's first row is data: a number atop a column of numbers.

    Column names are rarely numbers, so a first-row number in a column whose other cells are
    mostly numbers marks a file without a header (such as UCI Adult).
    """
    first, rest = frame.iloc[0], frame.iloc[1:]
    for name in frame.columns:
        if pd.isna(pd.to_numeric(first[name], errors="coerce")):
            continue
        is_number, _ = _text_kind(rest[name][rest[name] != ""])
        if len(is_number) and is_number.mean() >= MIXED_TYPE_FRACTION:
            return True
    return False


def _rename(frame: pd.DataFrame, column_names: tuple[str, ...], path: Path) -> pd.DataFrame:
    if len(column_names) != frame.shape[1]:
        raise DataError(
            f"{path} has {frame.shape[1]} columns but column_names gives {len(column_names)} "
            f"names: give exactly {frame.shape[1]}"
        )
    frame = frame.copy()
    frame.columns = list(column_names)
    return frame


def _mark_missing(frame: pd.DataFrame, missing_values: tuple[str, ...]) -> pd.DataFrame:
    """NaN for the text cells equal to one of `missing_values`."""
    frame = frame.copy()
    for name in frame.columns:
        if _is_text(frame[name]) and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].where(~frame[name].isin(list(missing_values)), np.nan)
    return frame


def _is_text(series: pd.Series) -> bool:
    return not (
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_datetime64_any_dtype(series)
    )


# ---------------------------------------------------------------------------------------------
# Type inference


def _row_of(series: pd.Series, mask: pd.Series | np.ndarray) -> tuple[int, Any]:
    """The first row (1-based, among data rows) where `mask` holds, and its value."""
    position = int(np.flatnonzero(np.asarray(mask))[0])
    return position + 1, series.iloc[position]


def _mixed_error(name: str, series: pd.Series, bad: pd.Series, what: str) -> DataError:
    row, value = _row_of(series, bad)
    return DataError(
        f"column {name!r} is mostly {what} but data row {row} (counting from 1, header "
        f"excluded) holds {value!r}, the first of {int(bad.sum())} other values: clean the file, "
        f"add {value!r} to missing_values if it marks a missing cell, or declare the column "
        f"categorical with column_types={{{name!r}: 'categorical'}}"
    )


def _text_kind(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(is a number, is an ISO date) for each non-missing text cell."""
    # Checked on the distinct cells only: pandas parses failures one by one, slowly.
    uniques = pd.Series(text.unique(), dtype=object).astype(str)
    numbers = uniques[pd.to_numeric(uniques, errors="coerce").notna()]
    dates = uniques[uniques.str.fullmatch(_DATE_RE).astype(bool)]
    return text.isin(set(numbers)), text.isin(set(dates))


def _boolean_pair(series: pd.Series, *, allow_01: bool) -> tuple[str, str] | None:
    """The (true, false) tokens if the non-missing cells are one boolean pair, else None."""
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return ("true", "false")
    if pd.api.types.is_numeric_dtype(series):
        return ("1", "0") if allow_01 and set(present.unique().tolist()) <= {0, 1} else None
    tokens = set(present.astype(str).str.lower().unique().tolist())
    pairs = BOOLEAN_PAIRS + ((("1", "0"),) if allow_01 else ())
    return next((pair for pair in pairs if tokens <= set(pair)), None)


def _json_scalar(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if not isinstance(value, (str, int, float, bool)):
        raise DataError(
            f"category value {value!r} of type {type(value).__name__} cannot be saved in the "
            "column schema: categories must be text, numbers or booleans"
        )
    return value


def _sorted_categories(present: pd.Series) -> list[Any]:
    """Distinct values, numerically sorted when they all read as numbers, else as text."""
    values = [_json_scalar(v) for v in present.unique().tolist()]
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    if numbers.notna().all():
        return [v for _, v in sorted(zip(numbers.tolist(), values), key=lambda p: p[0])]
    return sorted(values, key=str)


def _guess_type(name: str, series: pd.Series) -> str:
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "id" if pd.api.types.is_integer_dtype(series) and _is_id(series) else "numeric"
    text = present.astype(str)
    is_number, is_date = _text_kind(text)
    if is_number.all():
        integer = bool(text.str.fullmatch(_INTEGER_RE).all())
        if integer and _is_id(pd.to_numeric(series)):
            return "id"
        return "numeric"
    if is_number.mean() >= MIXED_TYPE_FRACTION:
        raise _mixed_error(name, series, _full_mask(series, ~is_number), "numbers")
    if _boolean_pair(series, allow_01=False) is not None:
        return "boolean"
    if is_date.all():
        return "datetime"
    if is_date.mean() >= MIXED_TYPE_FRACTION:
        raise _mixed_error(name, series, _full_mask(series, ~is_date), "ISO dates")
    if len(series) >= ID_MIN_ROWS and not series.isna().any() and series.is_unique:
        return "id"
    return "categorical"


def _full_mask(series: pd.Series, mask_of_present: pd.Series) -> pd.Series:
    """A mask over the present cells, widened to the whole column (missing cells False)."""
    return mask_of_present.reindex(series.index, fill_value=False).astype(bool)


def _is_id(numbers: pd.Series) -> bool:
    if len(numbers) < ID_MIN_ROWS or numbers.isna().any() or not numbers.is_unique:
        return False
    return bool(numbers.is_monotonic_increasing or numbers.is_monotonic_decreasing)


def _infer_column(
    name: str, series: pd.Series, declared: str | None, *, is_target: bool, max_categories: int
) -> dict[str, Any]:
    """The schema entry of one column (without its offset in x)."""
    missing = int(series.isna().sum())
    if missing == len(series):
        raise DataError(
            f"column {name!r} has no values (every cell is missing): drop it with "
            f"drop_columns=[{name!r}], or check missing_values"
        )
    if is_target:
        if declared not in (None, "categorical", "boolean"):
            raise DataError(
                f"target column {name!r} is declared {declared}: a target names classes, so it "
                "must be categorical or boolean; declare it so, or leave target empty"
            )
        if missing:
            row, _ = _row_of(series, series.isna())
            raise DataError(
                f"target column {name!r} has {missing} missing cell{'s' if missing > 1 else ''} "
                f"(the first in data row {row}): remove those rows from the file, or choose "
                "another target"
            )
        is_boolean = _boolean_pair(series, allow_01=declared == "boolean") is not None
        kind = declared or ("boolean" if is_boolean else "categorical")
    else:
        kind = declared or _guess_type(name, series)
    column: dict[str, Any] = {
        "name": name,
        "type": kind,
        "role": "target" if is_target else ("excluded" if kind == "id" else "feature"),
        "has_missing": bool(missing),
    }
    column.update(_FIT[kind](name, series, max_categories))
    return column


def _fit_numeric(name: str, series: pd.Series, max_categories: int) -> dict[str, Any]:
    if _is_text(series):
        text = series.dropna().astype(str)
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.isna().any():
            raise _mixed_error(name, series, _full_mask(series, numbers.isna()), "numbers")
        integer = bool(text.str.fullmatch(_INTEGER_RE).all())
        decimals = None if integer else _decimals(text)
    else:
        numbers = series.dropna().astype(float)
        integer = pd.api.types.is_integer_dtype(series)
        decimals = None
    if not np.isfinite(numbers.to_numpy(dtype=float)).all():
        row, value = _row_of(series, _full_mask(series, ~np.isfinite(numbers.astype(float))))
        raise DataError(
            f"column {name!r} holds an infinite value ({value!r}, data row {row}): replace it, "
            "or add it to missing_values"
        )
    has_missing = bool(series.isna().any())
    if integer:
        dtype = "Int64" if has_missing else "int64"
        low, high = int(numbers.min()), int(numbers.max())
    else:
        dtype, low, high = "float64", float(numbers.min()), float(numbers.max())
    return {
        "dtype": dtype,
        "integer": integer,
        "min": low,
        "max": high,
        "fill": float(numbers.median()),
        "decimals": decimals,
    }


def _decimals(text: pd.Series) -> int | None:
    """The most digits after the point in plain decimal text; None when exponents appear."""
    if text.str.contains(r"[eEnN]", regex=True).any():
        return None
    fraction = text.str.extract(r"\.(\d*)$", expand=False).fillna("")
    return int(fraction.str.len().max())


def _fit_categorical(name: str, series: pd.Series, max_categories: int) -> dict[str, Any]:
    categories = _sorted_categories(series.dropna())
    if len(categories) > max_categories:
        raise DataError(
            f"column {name!r} has {len(categories)} distinct values, more than "
            f"max_categories={max_categories}: drop it (drop_columns=[{name!r}]), declare it "
            f"numeric or id in column_types, or raise max_categories"
        )
    return {"dtype": "category", "categories": categories}


def _fit_boolean(name: str, series: pd.Series, max_categories: int) -> dict[str, Any]:
    pair = _boolean_pair(series, allow_01=True)
    if pair is None:
        values = sorted(map(str, series.dropna().unique().tolist()))[:5]
        raise DataError(
            f"column {name!r} is declared boolean but holds {values}: boolean cells are "
            "true/false, yes/no or 0/1; declare it categorical instead"
        )
    has_missing = bool(series.isna().any())
    flags = _to_flags(name, series, pair)
    return {
        "dtype": "boolean" if has_missing else "bool",
        "true_value": pair[0],
        "false_value": pair[1],
        "fill": float(flags.dropna().mode().iloc[0]),
    }


def _fit_datetime(name: str, series: pd.Series, max_categories: int) -> dict[str, Any]:
    times = _to_datetime(name, series)
    present = times.dropna()
    days = _days(present)
    whole_days = bool((present == present.dt.normalize()).all())
    return {
        "dtype": str(times.dtype),
        "resolution": "day" if whole_days else "second",
        "min": float(days.min()),
        "max": float(days.max()),
        "fill": float(days.median()),
    }


def _fit_id(name: str, series: pd.Series, max_categories: int) -> dict[str, Any]:
    return {"dtype": str(series.dtype)}


_FIT = {
    "numeric": _fit_numeric,
    "categorical": _fit_categorical,
    "boolean": _fit_boolean,
    "datetime": _fit_datetime,
    "id": _fit_id,
}


# ---------------------------------------------------------------------------------------------
# Parsing cells into typed columns


def _to_flags(name: str, series: pd.Series, pair: tuple[str, str]) -> pd.Series:
    """1.0 / 0.0 / NaN per cell for a boolean column."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        flags = series.astype("float64")
    else:
        tokens = series.astype(str).str.lower()
        flags = pd.Series(np.nan, index=series.index)
        flags[tokens == pair[0]] = 1.0
        flags[tokens == pair[1]] = 0.0
    bad = series.notna() & ~flags.isin([0.0, 1.0])
    if bad.any():
        row, value = _row_of(series, bad)
        raise DataError(
            f"boolean column {name!r} holds {value!r} in data row {row}, neither {pair[0]!r} nor "
            f"{pair[1]!r}: fix the cell, add it to missing_values, or declare the column "
            "categorical"
        )
    return flags.where(series.notna(), np.nan)


def _to_datetime(name: str, series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:
            raise DataError(
                f"column {name!r} holds date-times with a time zone: convert it to UTC without "
                "a zone (series.dt.tz_convert(None)) before saving the table"
            )
        return series
    text = series.astype(str).where(series.notna(), None)
    valid = text.dropna().str.fullmatch(_DATE_RE).astype(bool)
    times = pd.to_datetime(text.where(_full_mask(series, valid)), format="ISO8601", errors="coerce")
    bad = series.notna() & times.isna()
    if bad.any():
        row, value = _row_of(series, bad)
        raise DataError(
            f"column {name!r} holds {value!r} in data row {row}, not an ISO-8601 date "
            "(YYYY-MM-DD[ HH:MM:SS]): fix the cell, add it to missing_values, or declare the "
            "column categorical"
        )
    return times


def _days(times: pd.Series) -> pd.Series:
    return (times - _EPOCH) / pd.Timedelta(days=1)


def _parse_numeric(column: dict[str, Any], series: pd.Series) -> pd.Series:
    name = column["name"]
    numbers = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & numbers.isna()
    if bad.any():
        raise _mixed_error(name, series, bad, "numbers")
    if column["integer"]:
        fractional = numbers.notna() & (numbers != np.round(numbers.astype(float)))
        if fractional.any():
            row, value = _row_of(series, fractional)
            raise DataError(
                f"integer column {name!r} holds {value!r} in data row {row}: give whole numbers "
                "(the column held only integers when its schema was made)"
            )
    return numbers.astype(column["dtype"])


def _category_dtype(column: dict[str, Any]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(categories=list(column["categories"]), ordered=False)


def _parse_categorical(column: dict[str, Any], series: pd.Series) -> pd.Series:
    dtype = _category_dtype(column)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    unknown = series.notna() & ~series.isin(list(column["categories"]))
    if unknown.any():
        row, value = _row_of(series, unknown)
        shown = ", ".join(map(repr, column["categories"][:10]))
        raise DataError(
            f"column {column['name']!r}: {value!r} in data row {row} is not one of its "
            f"categories ({shown}{', ...' if len(column['categories']) > 10 else ''}): give "
            "rows from the same table, or mark the cell missing"
        )
    return series.astype(dtype)


def _parse_boolean(column: dict[str, Any], series: pd.Series) -> pd.Series:
    flags = _to_flags(column["name"], series, (column["true_value"], column["false_value"]))
    if flags.isna().any() and column["dtype"] == "bool":
        raise _unexpected_missing(column, flags)
    return flags.astype("boolean").astype(column["dtype"])


def _parse_datetime(column: dict[str, Any], series: pd.Series) -> pd.Series:
    return _to_datetime(column["name"], series).astype(column["dtype"])


def _parse_id(column: dict[str, Any], series: pd.Series) -> pd.Series:
    return series


def _parse(column: dict[str, Any], series: pd.Series) -> pd.Series:
    """The column in its schema dtype; a column already typed so passes through unchecked."""
    if column["type"] != "id" and series.dtype == _dtype(column):
        return series
    return _PARSE[column["type"]](column, series)


def _dtype(column: dict[str, Any]) -> Any:
    return _category_dtype(column) if column["type"] == "categorical" else column["dtype"]


_PARSE = {
    "numeric": _parse_numeric,
    "categorical": _parse_categorical,
    "boolean": _parse_boolean,
    "datetime": _parse_datetime,
    "id": _parse_id,
}


# ---------------------------------------------------------------------------------------------
# Encoding typed columns into x, and decoding x


def _unexpected_missing(column: dict[str, Any], values: pd.Series) -> DataError:
    row, _ = _row_of(values, values.isna())
    return DataError(
        f"column {column['name']!r} has a missing cell in data row {row}, but the table it was "
        "fitted on had none, so x has no slot for it: fill the cell, or rebuild the schema "
        "from data that includes missing cells"
    )


def _with_indicator(column: dict[str, Any], values: pd.Series) -> np.ndarray:
    """(N, 1 or 2): the value with missing cells imputed, then the 0/1 indicator if any."""
    missing = values.isna().to_numpy()
    if missing.any() and not column["has_missing"]:
        raise _unexpected_missing(column, values)
    filled = np.where(missing, column["fill"], values.to_numpy(dtype=float, na_value=np.nan))
    blocks = [filled] + ([missing.astype(float)] if column["has_missing"] else [])
    return np.stack(blocks, axis=1)


def _encode_numeric(column: dict[str, Any], values: pd.Series) -> np.ndarray:
    return _with_indicator(column, values.astype("Float64"))


def _encode_categorical(column: dict[str, Any], values: pd.Series) -> np.ndarray:
    codes = values.cat.codes.to_numpy()
    num_categories = len(column["categories"])
    if (codes < 0).any() and not column["has_missing"]:
        raise _unexpected_missing(column, values)
    onehot = np.zeros((len(values), column["width"]))
    onehot[np.arange(len(values)), np.where(codes < 0, num_categories, codes)] = 1.0
    return onehot


def _encode_boolean(column: dict[str, Any], values: pd.Series) -> np.ndarray:
    return _with_indicator(column, values.astype("Float64"))


def _encode_datetime(column: dict[str, Any], values: pd.Series) -> np.ndarray:
    return _with_indicator(column, _days(values))


def _missing_mask(column: dict[str, Any], block: np.ndarray) -> np.ndarray:
    return block[:, 1] > 0.5 if column["has_missing"] else np.zeros(len(block), dtype=bool)


def _decode_numeric(column: dict[str, Any], block: np.ndarray) -> pd.Series:
    value, missing = block[:, 0], _missing_mask(column, block)
    if column["integer"]:
        value = np.clip(np.round(value), column["min"], column["max"])
        value = np.where(np.isfinite(value), value, np.round(column["fill"]))
        series = pd.Series(value.astype(np.int64)).astype(column["dtype"])
    else:
        if column["decimals"] is not None:
            value = np.round(value, column["decimals"])
        series = pd.Series(value, dtype="float64")
    if missing.any():
        series[missing] = pd.NA if column["integer"] else np.nan
    return series


def _decode_categorical(column: dict[str, Any], block: np.ndarray) -> pd.Series:
    codes = block.argmax(axis=1)
    codes = np.where(codes >= len(column["categories"]), -1, codes)  # the "<missing>" slot
    return pd.Series(pd.Categorical.from_codes(codes, dtype=_category_dtype(column)))


def _decode_boolean(column: dict[str, Any], block: np.ndarray) -> pd.Series:
    missing = _missing_mask(column, block)
    series = pd.Series(block[:, 0] > 0.5).astype(column["dtype"])
    if missing.any():
        series[missing] = pd.NA
    return series


def _decode_datetime(column: dict[str, Any], block: np.ndarray) -> pd.Series:
    missing = _missing_mask(column, block)
    days = np.clip(block[:, 0], column["min"], column["max"])
    days = np.where(np.isfinite(days), days, column["fill"])
    if column["resolution"] == "day":
        seconds = np.round(days) * _SECONDS_PER_DAY
    else:
        seconds = np.round(days * _SECONDS_PER_DAY)
    series = pd.Series(seconds.astype(np.int64).astype("datetime64[s]")).astype(column["dtype"])
    if missing.any():
        series[missing] = pd.NaT
    return series


_ENCODE = {
    "numeric": _encode_numeric,
    "categorical": _encode_categorical,
    "boolean": _encode_boolean,
    "datetime": _encode_datetime,
}
_DECODE = {
    "numeric": _decode_numeric,
    "categorical": _decode_categorical,
    "boolean": _decode_boolean,
    "datetime": _decode_datetime,
}


def _feature_names(column: dict[str, Any]) -> list[str]:
    name = column["name"]
    if column["type"] == "id":
        return []
    if column["type"] == "categorical":
        names = [f"{name}={c}" for c in column["categories"]]
        return names + ([f"{name}={MISSING_CATEGORY}"] if column["has_missing"] else [])
    return [name] + ([f"{name}:missing"] if column["has_missing"] else [])


class TableCodec:
    """Typed table rows <-> float32 features x (N, D), defined by a JSON column schema.

    Each schema entry (one per column, in file order) holds: name, type (numeric | categorical |
    boolean | datetime | id), role (feature | target | excluded), dtype (the pandas dtype of the
    decoded column), has_missing, offset and width (its block of x; id columns have width 0),
    features (the names of its dimensions), and per type: numeric integer, min, max, fill,
    decimals; categorical categories; boolean true_value, false_value, fill; datetime
    resolution, min, max, fill (days since 1970-01-01). See the module docstring for the rules.

    Args:
        columns: the schema entries, e.g. `spec.columns` of a saved run.
    """

    def __init__(self, columns: Sequence[Mapping[str, Any]]):
        self._columns = [copy.deepcopy(dict(c)) for c in columns]
        offset = 0
        for column in self._columns:
            kind = column.get("type")
            if kind not in COLUMN_TYPES:
                raise DataError(
                    f"column schema entry {column.get('name')!r} has type {kind!r}, not one of "
                    f"{', '.join(COLUMN_TYPES)}: the schema is corrupt; rebuild it from the data"
                )
            if kind != "id" and (column.get("offset") != offset or column.get("width", 0) < 1):
                raise DataError(
                    f"column schema entry {column['name']!r} does not follow the previous one in "
                    "x (offset/width): the schema is corrupt; rebuild it from the data"
                )
            offset += column.get("width", 0)
        self.num_features = offset
        targets = [c for c in self._columns if c["role"] == "target"]
        self.target: str | None = targets[0]["name"] if targets else None

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        *,
        column_types: Mapping[str, str] | None = None,
        target: str | None = None,
        max_categories: int = 1000,
    ) -> TableCodec:
        """Infer the schema of `frame` (cells as read: text or typed), by the module's rules."""
        column_types = dict(column_types or {})
        columns, offset = [], 0
        for name in frame.columns:
            column = _infer_column(
                name,
                frame[name],
                column_types.get(name),
                is_target=name == target,
                max_categories=max_categories,
            )
            column["features"] = _feature_names(column)
            column["width"] = len(column["features"])
            column["offset"] = None if column["type"] == "id" else offset
            offset += column["width"]
            columns.append(column)
        return cls(columns)

    @property
    def columns(self) -> tuple[dict[str, Any], ...]:
        """The schema: one JSON-serialisable dict per column (copies)."""
        return tuple(copy.deepcopy(self._columns))

    @property
    def model_columns(self) -> list[str]:
        """The columns that x holds (features and target), in order."""
        return [c["name"] for c in self._columns if c["type"] != "id"]

    @property
    def feature_names(self) -> list[str]:
        """The name of each of x's D dimensions."""
        return [f for c in self._columns for f in c["features"]]

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the target column, or None without a target."""
        column = self._column(self.target) if self.target else None
        if column is None:
            return None
        return 2 if column["type"] == "boolean" else len(column["categories"])

    def class_names(self) -> list[Any]:
        """The target's classes in label order (index i is label i)."""
        column = self._column(self.target) if self.target else None
        if column is None:
            return []
        return [False, True] if column["type"] == "boolean" else list(column["categories"])

    def _column(self, name: str) -> dict[str, Any]:
        return next(c for c in self._columns if c["name"] == name)

    def parse(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Typed columns (the schema's dtypes) from cells as read; typed input passes through.

        Columns the schema does not know are dropped; a column it needs that is absent, or a
        cell that does not fit (an unknown category, text in a numeric column), raises.
        """
        missing = [c["name"] for c in self._columns if c["name"] not in frame.columns]
        needed = [n for n in missing if n in self.model_columns]
        if needed:
            raise DataError(
                f"the table lacks columns {needed} that the schema needs; it has "
                f"{list(frame.columns)}: give rows of the same table"
            )
        typed = {
            c["name"]: _parse(c, frame[c["name"]].reset_index(drop=True))
            for c in self._columns
            if c["name"] in frame.columns
        }
        return pd.DataFrame(typed)

    def encode(self, frame: pd.DataFrame) -> Tensor:
        """Float32 features (N, D) of the rows of `frame` (typed or as read)."""
        typed = self.parse(frame)
        blocks = [
            _ENCODE[c["type"]](c, typed[c["name"]]) for c in self._columns if c["type"] != "id"
        ]
        x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(typed), 0))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def decode(self, x: Tensor | np.ndarray) -> pd.DataFrame:
        """The rows (N, D) of `x` (data or samples) as a DataFrame of the model columns.

        Columns come back with their names, order, dtypes and categories; id columns, which x
        does not hold, are left out.
        """
        x = torch.as_tensor(x).detach().cpu().to(torch.float64).numpy()
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise DataError(
                f"cannot decode an array of shape {tuple(x.shape)}: this table's rows have "
                f"{self.num_features} features, so give shape (N, {self.num_features})"
            )
        decoded = {
            c["name"]: _DECODE[c["type"]](c, x[:, c["offset"] : c["offset"] + c["width"]])
            for c in self._columns
            if c["type"] != "id"
        }
        return pd.DataFrame(decoded, index=pd.RangeIndex(len(x)))

    def labels(self, frame: pd.DataFrame) -> Tensor | None:
        """Int64 (N,) class indices of the target column, or None without a target."""
        if self.target is None:
            return None
        column = self._column(self.target)
        values = _parse(column, frame[self.target].reset_index(drop=True))
        if values.isna().any():
            row, _ = _row_of(values, values.isna())
            raise DataError(
                f"target column {self.target!r} has a missing cell in data row {row}: give "
                "rows with a class"
            )
        codes = values.astype(int) if column["type"] == "boolean" else values.cat.codes
        return torch.from_numpy(codes.to_numpy(dtype=np.int64, copy=True))


def codec_from_spec(spec: DataSpec) -> TableCodec:
    """The `TableCodec` of a tabular `DataSpec` (e.g. `DataSpec.load(run / "data_spec.json")`)."""
    if spec.modality != "tabular" or not spec.columns:
        raise DataError(
            f"data spec {spec.name!r} is {spec.modality} without a column schema: only tables "
            "(modality 'tabular') can be decoded into rows"
        )
    codec = TableCodec(spec.columns)
    if codec.num_features != spec.num_dims:
        raise DataError(
            f"data spec {spec.name!r} has shape {spec.shape} but its columns describe "
            f"{codec.num_features} features: the spec is corrupt; rebuild it from the data"
        )
    return codec


# ---------------------------------------------------------------------------------------------
# Data sets


def _str_tuple(source_name: str, option: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise DataError(
            f"data set {source_name}: {option} must be a list of names, got {value!r}; "
            f"pass e.g. {option}=['a', 'b']"
        )
    if not all(isinstance(v, str) for v in value):
        raise DataError(f"data set {source_name}: {option} must hold text, got {list(value)!r}")
    return tuple(value)


def _column_types(source_name: str, value: Any) -> dict[str, str]:
    """`{"col": "type"}` from a mapping or a list of "col=type" strings."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for item in _str_tuple(source_name, "column_types", value):
            name, sep, kind = item.rpartition("=")
            if not sep:
                raise DataError(
                    f"data set {source_name}: column_types entry {item!r} is not NAME=TYPE; "
                    "pass e.g. column_types=['zip=categorical']"
                )
            pairs.append((name, kind))
    for name, kind in pairs:
        if kind not in COLUMN_TYPES:
            raise DataError(
                f"data set {source_name}: column_types gives {name!r} the type {kind!r}; "
                f"choose one of {', '.join(COLUMN_TYPES)}"
            )
    return {str(name): str(kind) for name, kind in pairs}


def _check_options(
    source_name: str, *, test_fraction: Any, stratify: Any, seed: Any, max_categories: Any
) -> None:
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0 < test_fraction < 1
    ):
        raise DataError(
            f"data set {source_name}: test_fraction must be a number between 0 and 1 "
            f"(exclusive), got {test_fraction!r}; pass e.g. test_fraction=0.2"
        )
    if not isinstance(stratify, bool):
        raise DataError(f"data set {source_name}: stratify must be true or false, got {stratify!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(
            f"data set {source_name}: seed must be a non-negative integer, got {seed!r}; "
            "pass e.g. seed=0"
        )
    if (
        isinstance(max_categories, bool)
        or not isinstance(max_categories, int)
        or max_categories < 1
    ):
        raise DataError(
            f"data set {source_name}: max_categories must be a positive integer, got "
            f"{max_categories!r}; pass e.g. max_categories=1000"
        )


def _split_rows(
    num_rows: int, *, test_fraction: float, seed: int, strata: np.ndarray | None, where: str
) -> dict[str, np.ndarray]:
    """Sorted row positions of the train and test splits (seeded, optionally stratified)."""
    from sklearn.model_selection import train_test_split

    try:
        train, test = train_test_split(
            np.arange(num_rows), test_size=test_fraction, random_state=seed, stratify=strata
        )
    except ValueError as e:
        fix = (
            "set stratify=false, or use a larger table / a test_fraction that leaves every class "
            "rows on both sides"
            if strata is not None
            else "use a larger table or another test_fraction"
        )
        raise DataError(f"{where}: cannot split {num_rows} rows ({e}): {fix}") from None
    return {"train": np.sort(train), "test": np.sort(test)}


def dataset_from_frame(
    frame: pd.DataFrame,
    split: str,
    *,
    name: str,
    target: str = "",
    test_fraction: float = 0.2,
    stratify: bool = False,
    seed: int = 0,
    drop_columns: Sequence[str] = (),
    column_types: Mapping[str, str] | None = None,
    max_categories: int = 1000,
    missing_values: Sequence[str] = ("", "?", "NA", "NaN"),
    path: str = "",
) -> Dataset:
    """A split of a table held in memory, as the `table` source builds it from a file.

    Args:
        frame: the table's cells, text as read from CSV or typed columns (Parquet, pandas).
        split: "train" or "test".
        name: the data set's name in its spec.
        target, test_fraction, stratify, seed, drop_columns, column_types, max_categories,
            missing_values: as for the `table` source.
        path: where the table came from, for the report.

    Returns:
        Dataset with x float32 (N, D), labels int64 (N,) when there is a target, spec
        (modality "tabular", columns = the schema) and info {"dataframe", "rows", "report"}.
    """
    frame = frame.reset_index(drop=True)
    where = f"table {name}"
    known = list(frame.columns)
    for option, names in (("drop_columns", drop_columns), ("column_types", column_types or {})):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{where}: {option} names {unknown}, not columns of it; it has {known}")
    if target and target not in known:
        raise DataError(f"{where}: target column {target!r} not found; its columns: {known}")
    if target in drop_columns:
        raise DataError(f"{where}: the target {target!r} is also in drop_columns: keep one")
    if stratify and not target:
        raise DataError(
            f"{where}: stratify=true needs a target column to stratify on: set target=NAME "
            "(a class column) or stratify=false"
        )
    frame = _mark_missing(frame.drop(columns=list(drop_columns)), tuple(missing_values))
    if frame.shape[1] == 0:
        raise DataError(f"{where}: no columns left to model: drop fewer columns")
    if len(frame) < 2:
        raise DataError(
            f"{where} has {len(frame)} data row{'s' if len(frame) != 1 else ''}: a table needs "
            "at least 2 (rows for a train and a test split); give a file with more rows (a header "
            "alone is not data; for a header-less file pass header='none')"
        )
    codec = TableCodec.infer(
        frame, column_types=column_types, target=target or None, max_categories=max_categories
    )
    if codec.num_features == 0:
        raise DataError(
            f"{where}: every column is id-like and excluded, so rows have no features: declare "
            "a column's type in column_types (e.g. {'col': 'numeric'}) to keep it"
        )
    typed = codec.parse(frame)
    labels = codec.labels(typed)
    strata = labels.numpy() if stratify else None
    if strata is not None:
        counts = np.bincount(strata, minlength=codec.num_classes)
        rare = [str(c) for c, k in zip(codec.class_names(), counts) if k < 2]
        if rare:
            raise DataError(
                f"{where}: stratify=true needs at least 2 rows of every class of "
                f"{target!r}, but {', '.join(rare[:10])}{' ...' if len(rare) > 10 else ''} "
                f"{'has' if len(rare) == 1 else 'have'} only one: set stratify=false, or use "
                "a target with fewer, larger classes"
            )
    rows = _split_rows(
        len(typed), test_fraction=test_fraction, seed=seed, strata=strata, where=where
    )[split]
    part = typed.iloc[rows].reset_index(drop=True)
    spec = DataSpec(
        modality="tabular",
        shape=(codec.num_features,),
        name=name,
        num_classes=codec.num_classes,
        columns=codec.columns,
    )
    report = _report(codec, typed, part, split=split, path=path)
    return Dataset(
        x=codec.encode(part),
        spec=spec,
        labels=None if labels is None else labels[torch.from_numpy(rows)],
        info={"dataframe": part, "rows": rows, "report": report},
    )


def _report(
    codec: TableCodec, whole: pd.DataFrame, part: pd.DataFrame, *, split: str, path: str
) -> dict[str, Any]:
    columns = {}
    for column in codec.columns:
        name = column["name"]
        note = ""
        if column["type"] == "id":
            numbers = pd.to_numeric(whole[name], errors="coerce").notna().all()
            keep_as = "numeric" if numbers else "categorical"
            note = (
                "id-like (unique per row): excluded from x; declare another type in "
                f"column_types (e.g. {{{name!r}: {keep_as!r}}}) to keep it"
            )
        columns[name] = {
            "type": column["type"],
            "dtype": column["dtype"],
            "role": column["role"],
            "missing": int(part[name].isna().sum()),
            "missing_in_file": int(whole[name].isna().sum()),
            "distinct": int(whole[name].nunique()),
            "width": column.get("width", 0),
            "note": note,
        }
    return {
        "path": path,
        "split": split,
        "rows": len(part),
        "rows_in_file": len(whole),
        "num_features": codec.num_features,
        "target": codec.target,
        "classes": [str(c) for c in codec.class_names()],
        "excluded": [c["name"] for c in codec.columns if c["role"] == "excluded"],
        "columns": columns,
    }


def describe_table(dataset: Dataset) -> str:
    """A plain-text summary of a table data set: rows, features, target and every column."""
    report = dataset.info.get("report")
    if dataset.spec.modality != "tabular" or report is None:
        raise DataError(
            f"data set {dataset.spec.name!r} is not a table loaded by genlab (modality "
            f"{dataset.spec.modality}): describe_table needs the table or adult source"
        )
    lines = [
        f"table {dataset.spec.name} ({report['split']} split): {report['rows']:,} of "
        f"{report['rows_in_file']:,} rows, {len(report['columns'])} columns -> x float32 "
        f"(N, {report['num_features']})"
    ]
    if report["path"]:
        lines.append(f"file: {report['path']}")
    if report["target"]:
        classes = ", ".join(report["classes"][:10]) + (
            ", ..." if len(report["classes"]) > 10 else ""
        )
        lines.append(f"target: {report['target']} ({len(report['classes'])} classes: {classes})")
    header = ("column", "type", "role", "missing (split/file)", "x dims", "values")
    rows = [header]
    for column in dataset.spec.columns:
        entry = report["columns"][column["name"]]
        rows.append(
            (
                column["name"],
                column["type"] + (" int" if column.get("integer") else ""),
                column["role"],
                f"{entry['missing']:,}/{entry['missing_in_file']:,}",
                str(entry["width"]),
                _describe_values(column, entry),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    for name in report["excluded"]:
        lines.append(f"note: {name}: {report['columns'][name]['note']}")
    return "\n".join(lines)


def _describe_values(column: dict[str, Any], entry: dict[str, Any]) -> str:
    kind = column["type"]
    if kind == "numeric":
        spec = "," if column["integer"] else "g"
        return f"{column['min']:{spec}} .. {column['max']:{spec}}"
    if kind == "categorical":
        missing = f" + {MISSING_CATEGORY}" if column["has_missing"] else ""
        return f"{len(column['categories'])} categories{missing}"
    if kind == "boolean":
        return f"{column['true_value']}/{column['false_value']}"
    if kind == "datetime":
        low, high = (_EPOCH + pd.Timedelta(days=column[k]) for k in ("min", "max"))
        fmt = "%Y-%m-%d" if column["resolution"] == "day" else "%Y-%m-%d %H:%M:%S"
        return f"{low.strftime(fmt)} .. {high.strftime(fmt)}"
    return f"{entry['distinct']:,} distinct"


def _is_table_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


@source("table", matches_path=_is_table_file)
def table(
    split: str,
    *,
    path: str = "",
    header: str = "infer",
    column_names: tuple[str, ...] = (),
    separator: str = ",",
    missing_values: tuple[str, ...] = ("", "?", "NA", "NaN"),
    target: str = "",
    test_fraction: float = 0.2,
    stratify: bool = False,
    seed: int = 0,
    drop_columns: tuple[str, ...] = (),
    column_types: tuple[str, ...] = (),
    max_categories: int = 1000,
) -> Dataset:
    """A CSV (.csv, .tsv, .data) or Parquet (.parquet, .pq) table as float32 rows (N, D).

    Args:
        split: "train" or "test".
        path: the file; `genlab.data.load("x.csv")` sets it.
        header: "infer", "first" or "none". "infer": the first row names the columns unless
            it holds a number atop a column of mostly numbers (then it is data); with
            column_names, a first row equal to them is skipped. "first": the first row is the
            header, always. "none": every row is data. Unnamed columns are column_1,
            column_2, ...; Parquet files always carry their names.
        column_names: names for the columns, in order (for header-less files).
        separator: the cell separator; ".tsv" files default to a tab. When the first line has
            the separator followed by a space (", "), leading spaces of cells are skipped.
        missing_values: cells that mark a missing value (exact text, after skipped spaces).
        target: a class column: its category indices become `labels`, its class count
            `spec.num_classes`; it stays a column of x too.
        test_fraction: the fraction of rows in the test split.
        stratify: keep the target's class proportions in both splits (needs a target).
        seed: seed of the split's shuffle.
        drop_columns: columns to leave out entirely.
        column_types: declared types, ["col=type", ...] or {"col": "type"}, type one of
            numeric, categorical, boolean, datetime, id; other columns are inferred.
        max_categories: the most distinct values a categorical column may have.

    Returns:
        Dataset with x float32 (N, D), labels int64 (N,) when `target` is set, spec (modality
        "tabular", columns = the `TableCodec` schema) and info {"dataframe", "rows", "report"}.
    """
    if not path:
        raise DataError(
            "data set table: give the file with path=... (or load the path directly: "
            "genlab.data.load('data.csv'))"
        )
    if header not in ("infer", "first", "none"):
        raise DataError(
            f"data set table: header must be 'infer', 'first' or 'none', got {header!r}"
        )
    if not isinstance(separator, str) or not separator:
        raise DataError(f"data set table: separator must be text such as ',', got {separator!r}")
    _check_options(
        "table",
        test_fraction=test_fraction,
        stratify=stratify,
        seed=seed,
        max_categories=max_categories,
    )
    file = Path(path).expanduser()
    frame = _read_table(
        file,
        header=header,
        column_names=_str_tuple("table", "column_names", column_names),
        separator=separator,
    )
    if len(frame) == 0:
        raise DataError(
            f"{file} has a header but no data rows: give a file with rows (for a header-less "
            "file pass header='none')"
        )
    return dataset_from_frame(
        frame,
        split,
        name=file.name,
        target=target,
        test_fraction=test_fraction,
        stratify=stratify,
        seed=seed,
        drop_columns=_str_tuple("table", "drop_columns", drop_columns),
        column_types=_column_types("table", column_types),
        max_categories=max_categories,
        missing_values=_str_tuple("table", "missing_values", missing_values),
        path=str(file),
    )


def adult_path() -> Path | None:
    """The shared UCI Adult file beside the checkout (../shared/data/adult.data), if present."""
    candidates = (
        Path(__file__).resolve().parents[3].parent / "shared" / "data" / "adult.data",
        Path("/work/shared/data/adult.data"),
    )
    return next((p for p in candidates if p.is_file()), None)


@source("adult")
def adult(
    split: str,
    *,
    path: str = "",
    target: str = "income",
    test_fraction: float = 0.2,
    stratify: bool = True,
    seed: int = 0,
    drop_columns: tuple[str, ...] = (),
    column_types: tuple[str, ...] = (),
) -> Dataset:
    """UCI Adult census income (Kohavi, 1996): 32,561 rows x 15 columns, income as target.

    Read from `path`, else from ../shared/data/adult.data beside the checkout. The file has no
    header and ", " between cells; "?" (or "MissingValue" in the shared copy) marks the 4,262
    missing cells of workclass, occupation and native-country, which are kept.

    Args:
        split: "train" or "test" (80/20 by default, stratified on income, seed 0).
        path: the adult.data file, when not in the shared folder.
        target, test_fraction, stratify, seed, drop_columns, column_types: as for `table`.

    Returns:
        Dataset with x float32 (N, 110) (6 numeric columns, the others one-hot), labels int64
        (0 = "<=50K", 1 = ">50K") and info {"dataframe", "rows", "report"}.
    """
    if path:
        file = Path(path).expanduser()
    else:
        found = adult_path()
        if found is None:
            raise DataError(
                "adult: adult.data not found in ../shared/data beside the checkout or in "
                "/work/shared/data: download it from the UCI repository "
                "(https://archive.ics.uci.edu/dataset/2/adult) and pass path=/path/to/adult.data"
            )
        file = found
    frame = _read_table(file, header="none", column_names=(), separator=",")
    if frame.shape[1] != len(ADULT_COLUMNS):
        raise DataError(
            f"adult: {file} has {frame.shape[1]} columns, not Adult's {len(ADULT_COLUMNS)}: give "
            "the UCI adult.data file (or load other tables with the table source)"
        )
    frame.columns = list(ADULT_COLUMNS)
    _check_options(
        "adult", test_fraction=test_fraction, stratify=stratify, seed=seed, max_categories=1000
    )
    return dataset_from_frame(
        frame,
        split,
        name="adult",
        target=target,
        test_fraction=test_fraction,
        stratify=stratify,
        seed=seed,
        drop_columns=_str_tuple("adult", "drop_columns", drop_columns),
        column_types=_column_types("adult", column_types),
        missing_values=ADULT_MISSING_VALUES,
        path=str(file),
    )
