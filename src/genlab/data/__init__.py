"""Data sources: `genlab.data.load(name_or_path, split=..., **options) -> Dataset`.

Each source is one function `(split, **options) -> Dataset` registered by name in `SOURCES`;
options are its keyword arguments, and unknown options are errors naming the allowed ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from genlab.core.errors import DataError
from genlab.data.dataset import Dataset

SOURCES: dict[str, Callable[..., Dataset]] = {}
SPLITS = ("train", "test")


def source(name: str):
    """Decorator registering a data source function under `name`."""

    def wrap(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        SOURCES[name] = fn
        return fn

    return wrap


def source_options(name: str) -> dict[str, Any]:
    """The options of source `name` with their defaults."""
    fn = SOURCES[name]
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.name != "split" and p.kind == p.KEYWORD_ONLY
    }


def list_sources() -> list[str]:
    return sorted(SOURCES)


def load(name_or_path: str, split: str = "train", **options: Any) -> Dataset:
    """Load a data set by name (see `list_sources()`), with its options.

    Args:
        name_or_path: a registered source name such as "moons", "digits", "mnist5k".
        split: "train" or "test".
        options: the source's keyword options; unknown ones raise `DataError`.
    """
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if name_or_path not in SOURCES:
        raise DataError(f"unknown data set {name_or_path!r}; known: {', '.join(list_sources())}")
    allowed = source_options(name_or_path)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"data set {name_or_path}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return SOURCES[name_or_path](split, **options)


# Importing the source modules registers them.
from genlab.data import images, toys  # noqa: E402,F401

__all__ = ["Dataset", "load", "list_sources", "source", "source_options", "SOURCES"]
