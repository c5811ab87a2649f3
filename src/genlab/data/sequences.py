"""Real-valued time series as float32 windows (B, T, C): the `timeseries` and `statsmodels` sources.

Refinement of the STYLE contract: modality "sequence" means a real-valued series, given as
float32 windows (B, T, C) of T time steps and C channels, in the data's own units. (Discrete
sequences are token ids, int64 (B, T), and go through the text source.) With `normalize=True`
every channel is standardised, (value - mean) / std, with the mean and std of the TRAIN part,
and those statistics are stored in the spec (`spec.columns[c]["mean"]`, `["std"]`), so samples
map back to data units from a run folder alone: `to_data_units(spec, x)`. A channel constant
over the train part gets std 1 (it is only centred).

Both sources share one recipe:
- The series (L, C) is split by time: the first `floor(train_fraction * L)` steps are train,
  the rest test. Windows are cut within each part, so none straddles the split.
- Windows start at 0, stride, 2 * stride, ... while they fit: x[i] = part[i * stride :
  i * stride + window]. Each part must hold at least one window, or a `DataError` says which
  window would fit.
- `spec.columns` is one dict per channel, {"name": ...} (+ "mean", "std" when normalised);
  `spec.shape` is (window, C).
- `info["series"]` is the split's whole series, float32 (L_split, C), in the same units as x;
  `info["time"]` its time stamps (a numpy array) or None.

`timeseries` reads a CSV (.csv, .tsv, .txt) or parquet file. It does not claim these files by
path (a CSV is also a table, read by the `table` source); name it:
`load("timeseries", path="x.csv", columns=["a", "b"])`. With `time_column`, rows are sorted by
that column, which must then be regularly spaced: equal numeric steps, or for dates a frequency
pandas can infer (daily, weekly, monthly...); otherwise a `DataError` names the first irregular
step (resample first, or leave `time_column` unset to use the file's row order). Missing or
non-numeric values are errors naming the column and rows, never silently filled.

`statsmodels` loads the series embedded in statsmodels (no download): sunspots (yearly sunspot
numbers 1700-2008), co2 (weekly Mauna Loa CO2 1958-2001; its 59 missing weeks are filled by
linear interpolation in time between the neighbouring weeks), nile (yearly Nile flow volume
1871-1970), elnino (monthly sea surface temperature 1950-2010: the year x month table is read
row by row into one series of 732 months, "sst"), macrodata (quarterly US macro data 1959-2009,
12 numeric channels; year and quarter become the time stamp).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
PARQUET_SUFFIXES = (".parquet", ".pq")


def _check_int(name: str, option: str, value: Any, minimum: int, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(
            f"data set {name}: {option} must be an integer >= {minimum}, got {value!r}; "
            f"pass e.g. {example}"
        )


def _check_options(
    name: str, window: int, stride: int, train_fraction: float, normalize: bool
) -> None:
    _check_int(name, "window", window, 1, "window=32")
    _check_int(name, "stride", stride, 1, "stride=1")
    if (
        isinstance(train_fraction, bool)
        or not isinstance(train_fraction, (int, float))
        or not 0 < train_fraction < 1
    ):
        raise DataError(
            f"data set {name}: train_fraction must be a number strictly between 0 and 1, got "
            f"{train_fraction!r}; pass e.g. train_fraction=0.8 (first 80% of the time train)"
        )
    if not isinstance(normalize, bool):
        raise DataError(f"data set {name}: normalize must be true or false, got {normalize!r}")


def windowed_dataset(
    name: str,
    series: np.ndarray,
    channels: Sequence[str],
    split: str,
    *,
    window: int,
    stride: int,
    train_fraction: float,
    normalize: bool,
    time: np.ndarray | None = None,
) -> Dataset:
    """Split a series by time and cut each part into windows.

    Args:
        name: the data set's name.
        series: (L, C) finite values in time order.
        channels: the C channel names.
        split: "train" or "test".
        window: time steps T per window.
        stride: steps between the starts of consecutive windows.
        train_fraction: the train part's share of the L steps, strictly in (0, 1).
        normalize: standardise each channel with the train part's mean and std.
        time: (L,) time stamps, or None.

    Returns:
        Dataset with x float32 (N, window, C).
    """
    _check_options(name, window, stride, train_fraction, normalize)
    series = np.asarray(series, dtype=np.float64)
    length = len(series)
    if length < 2:
        raise DataError(
            f"{name}: the series has {length} time step{'s' if length != 1 else ''}; a time "
            "series needs at least 2 (one for each split), and more for windows"
        )
    num_train = math.floor(train_fraction * length)
    parts = {"train": (0, num_train), "test": (num_train, length)}
    steps = {part: stop - start for part, (start, stop) in parts.items()}
    if min(steps.values()) < window:
        fits = min(steps.values())
        short = "train" if steps["train"] < window else "test"
        fix = f"use window <= {fits}" if fits >= 1 else "use a longer series"
        raise DataError(
            f"{name}: window={window} is longer than the {short} part of the series "
            f"({steps['train']} train and {steps['test']} test steps of {length}, split by time "
            f"at train_fraction={train_fraction}); {fix} or change train_fraction"
        )

    columns: list[dict[str, Any]] = [{"name": str(c)} for c in channels]
    if normalize:
        train_part = series[:num_train]
        mean = train_part.mean(axis=0)
        std = train_part.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant channel is only centred
        series = (series - mean) / std
        for column, m, s in zip(columns, mean, std):
            column["mean"], column["std"] = float(m), float(s)

    start, stop = parts[split]
    part = np.ascontiguousarray(series[start:stop], dtype=np.float32)  # (L_split, C)
    num_windows = (len(part) - window) // stride + 1
    starts = np.arange(num_windows) * stride
    x = part[starts[:, None] + np.arange(window)[None, :]]  # (N, T, C)
    spec = DataSpec(
        modality="sequence",
        shape=(window, series.shape[1]),
        name=name,
        columns=tuple(columns),
    )
    info = {
        "series": torch.from_numpy(part),
        "time": None if time is None else np.asarray(time)[start:stop],
        "step_span": (start, stop),
    }
    return Dataset(x=torch.from_numpy(np.ascontiguousarray(x)), spec=spec, info=info)


def _spec_stats(spec: DataSpec) -> tuple[Tensor, Tensor] | None:
    if spec.modality != "sequence" or spec.columns is None:
        raise DataError(
            f"data spec {spec.name!r} (modality {spec.modality}) is not a time series spec"
        )
    if not all("mean" in c for c in spec.columns):
        return None
    mean = torch.tensor([c["mean"] for c in spec.columns], dtype=torch.float32)
    std = torch.tensor([c["std"] for c in spec.columns], dtype=torch.float32)
    return mean, std


def to_data_units(spec: DataSpec, x: Tensor) -> Tensor:
    """Windows (B, T, C) as the model sees them, mapped back to the data's units."""
    stats = _spec_stats(spec)
    if stats is None:
        return x
    mean, std = (s.to(device=x.device, dtype=x.dtype) for s in stats)
    return x * std + mean


def from_data_units(spec: DataSpec, x: Tensor) -> Tensor:
    """Windows (B, T, C) in the data's units, standardised as the spec's data set was."""
    stats = _spec_stats(spec)
    if stats is None:
        return x
    mean, std = (s.to(device=x.device, dtype=x.dtype) for s in stats)
    return (x - mean) / std


# --- timeseries: a CSV or parquet file ---------------------------------------------------------


def _read_frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        if suffix in CSV_SUFFIXES:
            return pd.read_csv(path, sep=CSV_SUFFIXES[suffix], low_memory=False)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"{path} cannot be read as a {suffix[1:]} table: {e}") from None
    raise DataError(
        f"data set timeseries reads .csv, .tsv, .txt (comma-separated) and .parquet files, not "
        f"{path.name}; save the series in one of those"
    )


def _numeric_column(name: str, frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64, or a DataError naming the text, the type change or the gaps."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_complex_dtype(values):
        numbers = values.astype(np.float64)
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
        failed = np.flatnonzero(values.notna().to_numpy() & numbers.isna().to_numpy())
        if len(failed):
            first = int(failed[0])
            parsed_before = numbers.iloc[:first].notna().any()
            where = f"data row {first + 1} (file line {first + 2})"
            if parsed_before:
                raise DataError(
                    f"{name}: column {column!r} changes type mid-file: numbers up to {where}, "
                    f"which holds {values.iloc[first]!r} ({len(failed)} non-numeric value(s) "
                    "in all); fix or remove those rows"
                )
            raise DataError(
                f"{name}: column {column!r} is not numeric (e.g. {values.iloc[first]!r} in "
                f"{where}); a time series needs numbers: choose numeric columns with "
                "columns=[...] (categorical data belongs to the table source)"
            )
    missing = numbers.isna().to_numpy()
    if missing.all():
        raise DataError(
            f"{name}: column {column!r} is empty (all {len(missing)} values missing); drop it "
            "or choose other columns with columns=[...]"
        )
    if missing.any():
        rows = np.flatnonzero(missing)
        raise DataError(
            f"{name}: column {column!r} has {len(rows)} missing value(s) (first in data row "
            f"{rows[0] + 1}); fill them (e.g. pandas interpolate()) or drop those rows first"
        )
    values = numbers.to_numpy()
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(
            f"{name}: column {column!r} holds an infinite value in data row {row + 1}; "
            "replace it before loading"
        )
    return values


def _time_order(name: str, frame: pd.DataFrame, time_column: str) -> tuple[np.ndarray, np.ndarray]:
    """The row order sorting by `time_column`, and the sorted times; checks regular spacing."""
    raw = frame[time_column]
    if raw.isna().any():
        raise DataError(
            f"{name}: time column {time_column!r} has {int(raw.isna().sum())} missing value(s); "
            "every row needs a time stamp"
        )
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        times = raw.astype(np.float64)
        is_date = False
    else:
        try:
            times = pd.to_datetime(raw)
        except (ValueError, TypeError) as e:
            raise DataError(
                f"{name}: time column {time_column!r} holds neither numbers nor dates ({e}); "
                "give a numeric or date column, or leave time_column unset to use row order"
            ) from None
        is_date = True
    order = np.argsort(times.to_numpy(), kind="stable")
    times = times.iloc[order].reset_index(drop=True)
    if times.duplicated().any():
        dup = times[times.duplicated()].iloc[0]
        raise DataError(
            f"{name}: time column {time_column!r} repeats the time {dup}; give one row per time "
            "step (aggregate duplicates first)"
        )
    if len(times) >= 3:
        if is_date:
            # freq="infer" gives None unless pandas finds a regular frequency (daily, monthly...).
            if pd.DatetimeIndex(times, freq="infer").freq is None:
                gaps = times.diff().iloc[1:]
                step = gaps.mode().iloc[0]
                bad = int(np.flatnonzero((gaps != step).to_numpy())[0]) + 1
                raise DataError(
                    f"{name}: time column {time_column!r} is not regularly spaced: the usual "
                    f"step is {step} but {times.iloc[bad - 1]} -> {times.iloc[bad]} differs; "
                    "resample to a regular grid first (pandas resample/interpolate), or leave "
                    "time_column unset to use the row order"
                )
        else:
            gaps = np.diff(times.to_numpy())
            step = gaps[0]
            irregular = ~np.isclose(gaps, step, rtol=1e-6, atol=0.0)
            if irregular.any():
                bad = int(np.flatnonzero(irregular)[0]) + 1
                raise DataError(
                    f"{name}: time column {time_column!r} is not regularly spaced: steps of "
                    f"{step:g} until {times.iloc[bad - 1]:g} -> {times.iloc[bad]:g}; resample "
                    "to a regular grid first, or leave time_column unset to use the row order"
                )
    return order, times.to_numpy()


@source("timeseries")
def timeseries(
    split: str,
    *,
    path: str | None = None,
    columns: Sequence[str] | str | None = None,
    window: int = 64,
    stride: int = 1,
    time_column: str | None = None,
    train_fraction: float = 0.8,
    normalize: bool = False,
) -> Dataset:
    """Numeric columns of a CSV or parquet file as float32 windows (N, window, C).

    Args:
        split: "train" (the first `train_fraction` of the time steps) or "test" (the rest).
        path: a .csv, .tsv, .txt (comma-separated) or .parquet file with a header row.
        columns: the channels, in order (a name or a list); None takes every column except
            `time_column`, all of which must then be numeric.
        window: time steps T per window.
        stride: steps between the starts of consecutive windows.
        time_column: a numeric or date column to sort the rows by; it must be regularly
            spaced. None keeps the file's row order.
        train_fraction: the train part's share of the time steps, strictly in (0, 1).
        normalize: standardise each channel with the train part's mean and std (stored in
            the spec; `to_data_units` maps back).

    Returns:
        Dataset with x float32 (N, window, C); `info["series"]` the split's series
        (L_split, C) and `info["time"]` its time stamps (None without time_column).
    """
    _check_options("timeseries", window, stride, train_fraction, normalize)
    if path is None:
        raise DataError(
            "data set timeseries: give the file with path='series.csv' (and columns=[...])"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file} does not exist or is not a file: check the path")
    name = file.stem
    frame = _read_frame(file)
    available = [str(c) for c in frame.columns]
    frame.columns = available
    if time_column is not None and time_column not in available:
        raise DataError(
            f"{name}: no time column {time_column!r}; the columns are {', '.join(available)}"
        )
    if columns is None:
        channels = [c for c in available if c != time_column]
        non_numeric = [
            c
            for c in channels
            if not pd.api.types.is_numeric_dtype(frame[c])
            and pd.to_numeric(frame[c], errors="coerce").notna().sum() == 0
            and frame[c].notna().any()
        ]
        if non_numeric:
            numeric = [c for c in channels if c not in non_numeric]
            raise DataError(
                f"{name}: non-numeric column(s) {', '.join(map(repr, non_numeric))}; a time "
                f"series takes numbers: pass columns={numeric!r}"
                + ("" if time_column else " (and time_column=... for a date column)")
            )
    else:
        channels = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in channels if c not in available]
        if unknown or not channels:
            raise DataError(
                f"{name}: no column(s) {', '.join(map(repr, unknown)) or '(none given)'}; the "
                f"columns are {', '.join(available)}"
            )
    if not channels:
        raise DataError(f"{name}: no columns besides the time column; the file needs values")
    if len(frame) < 2:
        raise DataError(
            f"{name}: {file.name} has {len(frame)} data row{'s' if len(frame) != 1 else ''}; a "
            "time series needs at least 2 rows (one for each split), and more for windows"
        )
    series = np.stack([_numeric_column(name, frame, c) for c in channels], axis=1)  # (L, C)
    time = None
    if time_column is not None:
        order, time = _time_order(name, frame, time_column)
        series = series[order]
    return windowed_dataset(
        name,
        series,
        channels,
        split,
        window=window,
        stride=stride,
        train_fraction=train_fraction,
        normalize=normalize,
        time=time,
    )


# --- statsmodels: series shipped with the package ---------------------------------------------


def _sunspots() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.sunspots.load_pandas().data
    return pd.DataFrame({"SUNACTIVITY": data["SUNACTIVITY"].to_numpy()}, index=data["YEAR"])


def _co2() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.co2.load_pandas().data
    # Missing weeks lie between measured ones: interpolate linearly in time between neighbours.
    return data.interpolate(method="time", limit_area="inside")


def _nile() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    return pd.DataFrame({"volume": data["volume"].to_numpy()}, index=data["year"])


def _elnino() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.elnino.load_pandas().data
    months = [c for c in data.columns if c != "YEAR"]  # JAN..DEC
    values = data[months].to_numpy().reshape(-1)  # row by row: Jan..Dec of each year in turn
    years = np.repeat(data["YEAR"].to_numpy(), len(months))
    time = years + np.tile(np.arange(len(months)) / len(months), len(data))
    return pd.DataFrame({"sst": values}, index=time)


def _macrodata() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.macrodata.load_pandas().data
    time = (data["year"] + (data["quarter"] - 1) / 4).to_numpy()
    values = data.drop(columns=["year", "quarter"]).select_dtypes("number")
    return values.set_axis(time, axis=0)


STATSMODELS_SETS = {
    "sunspots": _sunspots,
    "co2": _co2,
    "nile": _nile,
    "elnino": _elnino,
    "macrodata": _macrodata,
}


@source("statsmodels")
def statsmodels_series(
    split: str,
    *,
    dataset: str = "sunspots",
    columns: Sequence[str] | str | None = None,
    window: int = 16,
    stride: int = 1,
    train_fraction: float = 0.8,
    normalize: bool = False,
) -> Dataset:
    """A time series shipped with statsmodels as float32 windows (N, window, C).

    Args:
        split: "train" (the first `train_fraction` of the time steps) or "test" (the rest).
        dataset: sunspots, co2, nile, elnino or macrodata (see the module docstring).
        columns: the channels to keep (a name or a list); None keeps all (one for every set
            but macrodata, which has 12).
        window: time steps T per window (16 by default, which fits the 20 test years of nile).
        stride: steps between the starts of consecutive windows.
        train_fraction: the train part's share of the time steps, strictly in (0, 1).
        normalize: standardise each channel with the train part's mean and std.

    Returns:
        Dataset named after `dataset`, x float32 (N, window, C); `info["time"]` the time
        stamps (years as floats, dates for co2).
    """
    _check_options("statsmodels", window, stride, train_fraction, normalize)
    if dataset not in STATSMODELS_SETS:
        raise DataError(
            f"data set statsmodels: unknown dataset {dataset!r}; supported: "
            f"{', '.join(STATSMODELS_SETS)}"
        )
    frame = STATSMODELS_SETS[dataset]()
    available = [str(c) for c in frame.columns]
    if columns is not None:
        chosen = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in chosen if c not in available]
        if unknown or not chosen:
            raise DataError(
                f"{dataset}: no column(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"its columns are {', '.join(available)}"
            )
        frame = frame[chosen]
    series = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(series).all():
        raise DataError(
            f"{dataset}: the installed statsmodels' data has missing values genlab does not "
            "fill; install statsmodels>=0.14 as pinned by genlab"
        )
    return windowed_dataset(
        dataset,
        series,
        list(frame.columns),
        split,
        window=window,
        stride=stride,
        train_fraction=train_fraction,
        normalize=normalize,
        time=frame.index.to_numpy(),
    )
