"""Reproducible, resumable data order: a fresh seeded permutation per epoch."""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.core.errors import DataError


class BatchStream:
    """Yields index batches of `batch_size` from shuffled epochs over `num_rows` rows.

    Epoch e's order is `randperm(num_rows)` from a generator seeded with (seed, e), so the whole
    order follows from (seed, epoch, position): that pair is the data-order state a checkpoint
    keeps. The last incomplete batch of an epoch is dropped (every step sees a full batch).
    Under distributed training each of `world_size` ranks takes a strided share of every batch
    of `batch_size * world_size` rows.
    """

    def __init__(
        self, num_rows: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1
    ):
        global_batch = batch_size * world_size
        if num_rows < global_batch:
            raise DataError(
                f"the data set has {num_rows} rows, fewer than one batch of {global_batch}: "
                f"lower train.batch_size to at most {max(1, num_rows // world_size)}"
            )
        self.num_rows = num_rows
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_rows, generator=g)

    def next(self) -> Tensor:
        """Indices (batch_size,) int64 of the next batch for this rank."""
        global_batch = self.batch_size * self.world_size
        if self.position + global_batch > self.num_rows:
            self.epoch += 1
            self.position = 0
            self._order = self._permutation(self.epoch)
        rows = self._order[self.position : self.position + global_batch]
        self.position += global_batch
        return rows[self.rank :: self.world_size]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._permutation(self.epoch)
