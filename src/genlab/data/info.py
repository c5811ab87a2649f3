"""A readable summary of any Dataset: `describe(dataset) -> str`.

Works for every modality from the `DataSpec` fields and the tensors alone; `Dataset.info` keys
are shown generically (a "report" entry, e.g. a table's missing-value report, is printed in
full; "class_names" labels the class counts; other entries are summarised by type and size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.data.dataset import Dataset

MAX_CLASSES_SHOWN = 20
MAX_DIMS_SHOWN = 16
MAX_ITEMS_SHOWN = 8
MAX_TEXT = 80
INDENT = "  "


def _number(value: float) -> str:
    value = float(value)
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _brief(value: Any) -> str:
    """A one-line summary of an info value: arrays by dtype and shape, long lists by length."""
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        if value.numel() == 1:
            return f"{dtype} {_number(value.item())}"
        return f"tensor {dtype} {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {value.shape}"
    if isinstance(value, Mapping):
        return f"{len(value)} entries: {_short(', '.join(map(str, value)))}"
    if isinstance(value, (list, tuple)):
        if len(value) <= MAX_ITEMS_SHOWN:
            return _short(", ".join(map(str, value)) or "(empty)")
        shown = ", ".join(map(str, value[:3]))
        return _short(f"{len(value):,} items: {shown}, ...")
    if isinstance(value, float):
        return _number(value)
    return _short(str(value))


def _report_lines(report: Any, depth: int = 2) -> list[str]:
    """A report (dict, list or text) as indented lines, nested dicts indented further."""
    pad = INDENT * depth
    if isinstance(report, Mapping):
        lines = []
        for key, value in report.items():
            if isinstance(value, Mapping) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(_report_lines(value, depth + 1))
            else:
                lines.append(f"{pad}{key}: {_brief(value)}")
        return lines
    if isinstance(report, (list, tuple)):
        return [f"{pad}- {_brief(item)}" for item in report]
    return [f"{pad}{line}" for line in str(report).splitlines()]


def _value_lines(data: Dataset) -> list[str]:
    spec, x = data.spec, data.x
    lines = []
    parts = []
    if spec.value_range is not None:
        low, high = spec.value_range
        parts.append(f"declared range [{_number(low)}, {_number(high)}]")
    if len(data) and x.numel():
        if x.is_floating_point():
            finite = x[torch.isfinite(x)]
            missing = int(torch.isnan(x).sum())
            if finite.numel():
                lo, hi = float(finite.min()), float(finite.max())
                mean, std = float(finite.double().mean()), float(finite.double().std())
                parts.append(f"observed [{lo:.4g}, {hi:.4g}], mean {mean:.4g}, std {std:.4g}")
            if missing:
                parts.append(f"{missing:,} missing (NaN) values")
        else:
            parts.append(f"observed {int(x.min()):,} .. {int(x.max()):,}")
    if spec.discrete_levels is not None:
        parts.append(f"{spec.discrete_levels:,} discrete levels")
    if parts:
        lines.append(f"{INDENT}values: " + "; ".join(parts))
    if data.dynamic_binarize:
        lines.append(f"{INDENT}binarized: afresh for every batch (x' ~ Bernoulli(x))")
    return lines


def _per_dimension_lines(data: Dataset) -> list[str]:
    """Per-column statistics for points and tables of few dimensions."""
    spec, x = data.spec, data.x
    if len(spec.shape) != 1 or not x.is_floating_point() or not len(data):
        return []
    if spec.shape[0] > MAX_DIMS_SHOWN:
        return []
    names = [f"x{i}" for i in range(spec.shape[0])]
    if spec.columns is not None and len(spec.columns) == spec.shape[0]:
        names = [
            str(c.get("name", n)) if isinstance(c, Mapping) else n
            for c, n in zip(spec.columns, names)
        ]
    lines = [f"{INDENT}per dimension:"]
    width = max(len(n) for n in names)
    for i, name in enumerate(names):
        column = x[:, i]
        finite = column[torch.isfinite(column)].double()
        if finite.numel() == 0:
            lines.append(f"{INDENT * 2}{name:<{width}}  no finite values")
            continue
        std = float(finite.std()) if finite.numel() > 1 else 0.0
        missing = int(torch.isnan(column).sum())
        lines.append(
            f"{INDENT * 2}{name:<{width}}  [{float(finite.min()):.4g}, {float(finite.max()):.4g}]"
            f"  mean {float(finite.mean()):.4g}  std {std:.4g}"
            + (f"  missing {missing:,}" if missing else "")
        )
    return lines


def _column_lines(data: Dataset) -> list[str]:
    columns = data.spec.columns
    if not columns:
        return []
    lines = [f"{INDENT}columns ({len(columns)}):"]
    for column in columns:
        if isinstance(column, Mapping):
            column = dict(column)
            name = column.pop("name", "?")
            details = ", ".join(f"{k}={_brief(v)}" for k, v in column.items())
            lines.append(f"{INDENT * 2}{name}: {details}" if details else f"{INDENT * 2}{name}")
        else:
            lines.append(f"{INDENT * 2}{_brief(column)}")
    return lines


def _vocabulary_lines(data: Dataset) -> list[str]:
    spec = data.spec
    lines = []
    if spec.vocab is not None:
        examples = ", ".join(repr(t) for t in spec.vocab[:MAX_ITEMS_SHOWN])
        more = ", ..." if len(spec.vocab) > MAX_ITEMS_SHOWN else ""
        lines.append(f"{INDENT}vocabulary: {len(spec.vocab):,} tokens ({_short(examples)}{more})")
    if spec.tokenizer is not None:
        kind = spec.tokenizer.get("kind") or spec.tokenizer.get("type") or "unnamed"
        size = spec.tokenizer.get("vocab_size")
        lines.append(
            f"{INDENT}tokenizer: {kind}" + (f", {_number(size)} tokens" if size is not None else "")
        )
    return lines


def _label_lines(data: Dataset) -> list[str]:
    spec, labels = data.spec, data.labels
    if labels is None:
        return [f"{INDENT}classes: {spec.num_classes} (no labels)"] if spec.num_classes else []
    num_classes = spec.num_classes or (int(labels.max()) + 1 if len(labels) else 0)
    counts = torch.bincount(labels.long(), minlength=num_classes).tolist() if len(labels) else []
    names = data.info.get("class_names")
    if not isinstance(names, (list, tuple)) or len(names) != len(counts):
        names = [str(i) for i in range(len(counts))]
    lines = [f"{INDENT}classes: {num_classes} (labels in cond['label'])"]
    shown = [
        str(i) if str(name) == str(i) else f"{i} {name}"
        for i, name in enumerate(names[:MAX_CLASSES_SHOWN])
    ]
    width = max((len(entry) for entry in shown), default=0)
    for entry, count in zip(shown, counts):
        lines.append(f"{INDENT * 2}{entry:<{width}}  {count:,}")
    if len(counts) > MAX_CLASSES_SHOWN:
        lines.append(f"{INDENT * 2}... and {len(counts) - MAX_CLASSES_SHOWN} more classes")
    return lines


def _info_lines(data: Dataset) -> list[str]:
    lines = []
    for key, value in data.info.items():
        if key == "class_names" and data.labels is not None:
            continue
        if key == "report":
            lines.append(f"{INDENT}report:")
            lines.extend(_report_lines(value))
        else:
            lines.append(f"{INDENT}{key}: {_brief(value)}")
    return lines


def describe(dataset: Dataset) -> str:
    """A multi-line, human-readable summary of a Dataset.

    Covers the modality, sample shape and dtype, number of rows, declared and observed value
    ranges (with NaN counts), discrete levels and binarization, per-dimension statistics for
    low-dimensional points and tables, the column schema, vocabulary and tokenizer, class
    counts (named by `info["class_names"]` when present), whether the true density is known,
    and the remaining `info` entries (a "report" in full).

    Args:
        dataset: any Dataset, of any modality.

    Returns:
        The summary, one fact per line, without a trailing newline.
    """
    spec = dataset.spec
    dtype = str(dataset.x.dtype).removeprefix("torch.")
    title = spec.name or "(unnamed data set)"
    lines = [
        f"{title}: {len(dataset):,} rows of {spec.modality} data, each {dtype} "
        f"{tuple(spec.shape)} ({spec.num_dims:,} values)"
    ]
    lines += _value_lines(dataset)
    lines += _per_dimension_lines(dataset)
    lines += _column_lines(dataset)
    lines += _vocabulary_lines(dataset)
    lines += _label_lines(dataset)
    if dataset.true_log_density is not None:
        lines.append(f"{INDENT}true log density: known (models' likelihoods can be compared)")
    lines += _info_lines(dataset)
    return "\n".join(lines)
