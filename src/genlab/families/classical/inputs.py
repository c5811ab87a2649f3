"""Input checks shared alike by the classical models (scikit-learn style wrappers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.data.dataset import Dataset


def as_float64(x: Tensor | np.ndarray) -> np.ndarray:
    """A float64 numpy copy of a tensor or array (always a copy: models may keep it)."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64, copy=True).numpy()
    return np.array(x, dtype=np.float64, copy=True)


def reject_options(
    name: str,
    method: str,
    options: dict[str, Any],
    cond: dict[str, Tensor] | None,
    *,
    cond_hint: str = "call it without cond",
    takes: str = "no options",
) -> None:
    """Raise `ConfigError` for conditioning given to an unconditional model or unknown options.

    Args:
        name, method: the model's registry name and the method called, for the message.
        options: the keyword options the method did not recognise.
        cond: the conditioning passed, if any.
        cond_hint: how to get what conditioning was meant to do, for the message.
        takes: the options the method does take, for the message.
    """
    if cond is not None:
        raise ConfigError(f"{name}.{method}: {name} is unconditional; {cond_hint}")
    if options:
        raise ConfigError(
            f"{name}.{method}: unknown option{'s' if len(options) > 1 else ''} "
            f"{', '.join(sorted(options))}; {name}.{method} takes {takes}"
        )


def vectors_for_fit(model: Any, data: Any, name: str) -> tuple[np.ndarray, DataSpec]:
    """The data as a finite (N, D) float64 array and its spec, for models of vectors.

    Args:
        model: the model being fitted (its `spec`, if set, fixes D).
        data: a genlab `Dataset` (x flattened to (N, D)) or a raw (N, D) tensor or array.
        name: the model's registry name, for messages.
    """
    if isinstance(data, Dataset):
        if data.spec.modality in ("text", "sequence"):
            raise DataError(
                f"{name} models continuous vectors, but data {data.spec.name!r} holds "
                f"{data.spec.modality} token ids: use an autoregressive model (e.g. ngram, gpt)"
            )
        spec = data.spec
        x = as_float64(data.x).reshape(data.x.shape[0], -1)
    else:
        x = as_float64(data)
        if x.ndim != 2:
            raise DataError(
                f"{name}.fit expects a Dataset or an (N, D) array of points, got shape "
                f"{tuple(x.shape)}: wrap other shapes in a genlab Dataset with their DataSpec"
            )
        spec = None
    if model.spec is not None and model.spec.num_dims != x.shape[1]:
        raise DataError(
            f"this {name} is for samples of shape {model.spec.shape} ({model.spec.num_dims} "
            f"values), but the data has {x.shape[1]} values per sample: create a new model"
        )
    spec = spec or model.spec or DataSpec(modality="points", shape=(x.shape[1],))
    if x.shape[0] == 0:
        raise DataError(f"data has no rows: give {name} at least one sample")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"data has {bad} non-finite values (NaN or inf): drop or impute them")
    return x, spec
