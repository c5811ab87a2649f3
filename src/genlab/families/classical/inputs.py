"""Input checks shared alike by the classical models (scikit-learn style wrappers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from genlab.core.errors import ConfigError


def as_float64(x: Tensor | np.ndarray) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    if isinstance(x, Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


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
