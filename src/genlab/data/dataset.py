"""The in-memory data set every source returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import DataError


@dataclass
class Dataset:
    """Tensors in genlab's ranges plus their `DataSpec`.

    Args:
        x: (N, *spec.shape); images float32 in [0, 1], points and rows float32, tokens int64.
        spec: the data spec saved into every run.
        labels: int64 (N,) class labels, or None.
        dynamic_binarize: draw x' ~ Bernoulli(x) afresh for every batch (training on binarized
            images); the draw uses the generator passed to `batch`, so it is reproducible.
        true_log_density: for synthetic data with a known density, a function x (B, D) ->
            log p(x) in nats (B,), used to put a model's likelihood beside the truth.
    """

    x: Tensor
    spec: DataSpec
    labels: Tensor | None = None
    dynamic_binarize: bool = False
    true_log_density: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape[0] != self.x.shape[0]:
            raise DataError(
                f"{self.labels.shape[0]} labels for {self.x.shape[0]} rows: give one label per row"
            )
        if tuple(self.x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"x has sample shape {tuple(self.x.shape[1:])}, spec says {self.spec.shape}"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, indices: Tensor, *, generator: torch.Generator | None = None) -> Batch:
        """The batch of rows `indices` (int64 (B,)), binarized if the set is dynamic."""
        x = self.x[indices]
        if self.dynamic_binarize:
            x = torch.bernoulli(x, generator=generator)
        cond = {} if self.labels is None else {"label": self.labels[indices]}
        return Batch(x, cond)

    def all(self) -> Batch:
        """The whole set as one batch (no dynamic binarization: the stored values)."""
        cond = {} if self.labels is None else {"label": self.labels}
        return Batch(self.x, cond)
