"""Data sources: `genlab.data.load(name_or_path, split=..., **options) -> Dataset`.

Each source is one function `(split, **options) -> Dataset` registered by name in `SOURCES`;
options are its keyword-only arguments, and unknown options are errors naming the allowed ones.
Sources that read files also register a path predicate, so a file or folder path resolves to
its source (`load("data.csv")`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genlab.core.errors import DataError
from genlab.data.dataset import Dataset

SOURCES: dict[str, Callable[..., Dataset]] = {}
# (source name, predicate on a path): the sources a file or folder path is dispatched to, in order.
PATH_SOURCES: list[tuple[str, Callable[[Path], bool]]] = []
SPLITS = ("train", "test")


def source(name: str, *, matches_path: Callable[[Path], bool] | None = None):
    """Decorator registering a data source function under `name`.

    A source that reads files takes a keyword-only `path` option and passes `matches_path`, a
    predicate telling whether it reads a given file or folder: `load("data.csv")` then resolves
    to that source with `path="data.csv"` (the first registered source that matches wins).
    """

    def wrap(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if name in SOURCES:
            raise ValueError(f"data source {name!r} registered twice")
        SOURCES[name] = fn
        if matches_path is not None:
            PATH_SOURCES.append((name, matches_path))
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


def resolve_source(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """The source name and the options implied by a data set name or a file/folder path."""
    if name_or_path in SOURCES:
        return name_or_path, {}
    path = Path(name_or_path).expanduser()
    if path.suffix or "/" in name_or_path or path.exists():
        if not path.exists():
            raise DataError(
                f"{path} does not exist: check the path (or give a data set name: "
                f"{', '.join(list_sources())})"
            )
        for name, matches in PATH_SOURCES:
            if matches(path):
                return name, {"path": str(path)}
        readers = ", ".join(name for name, _ in PATH_SOURCES) or "none"
        raise DataError(f"no data source reads {path}; the sources that read files: {readers}")
    raise DataError(f"unknown data set {name_or_path!r}; known: {', '.join(list_sources())}")


def load(name_or_path: str, split: str = "train", **options: Any) -> Dataset:
    """Load a data set by name (see `list_sources()`) or path, with its options.

    Args:
        name_or_path: a registered source name such as "moons", "digits", "mnist5k", or a file
            or folder path that a source reads.
        split: "train" or "test".
        options: the source's keyword options; unknown ones raise `DataError`.
    """
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    name, implied = resolve_source(name_or_path)
    options = {**implied, **options}
    allowed = source_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"data set {name}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return SOURCES[name](split, **options)


# Importing the source modules registers them.
from genlab.data import audio, image_files, images, sequences, tables, text, toys  # noqa: E402,F401

__all__ = [
    "SOURCES",
    "Dataset",
    "list_sources",
    "load",
    "resolve_source",
    "source",
    "source_options",
]
