"""Distributed training through PyTorch's own engine: torchrun + DistributedDataParallel.

`genlab train` and `genlab.train.fit` run unchanged under
`torchrun --nproc_per_node=N -m genlab.cli train ...`: torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK, and `init_from_env` joins the process group (gloo on CPU, NCCL on CUDA). Each rank
trains on its share of every global batch; DDP averages gradients; only rank 0 writes logs,
samples and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from genlab.core.contract import Batch, NeuralModel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank, world size, local rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env() -> DistInfo:
    """Join the process group that torchrun describes in the environment (idempotent)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_rng_states(info: DistInfo) -> list[torch.Tensor]:
    """Every rank's CPU RNG state (for checkpoints): rank r's at index r."""
    return gather_states(info, torch.get_rng_state())


class LossModule(nn.Module):
    """Makes `model.loss(batch, key=...)` the forward pass, so DDP can wrap it.

    DDP synchronises gradients through `forward`; the contract's entry point is `loss`, so this
    adapter holds the model as its only submodule (the parameters are the model's own).
    """

    def __init__(self, model: NeuralModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, key: str):
        return self.model.loss(batch, key=key)


def wrap(model: NeuralModel, info: DistInfo, device: torch.device, num_keys: int) -> nn.Module:
    """The module whose forward computes a loss: DDP-wrapped under torchrun, else the adapter."""
    module = LossModule(model)
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # With several loss keys each key's loss leaves the other groups without gradients.
    return DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=num_keys > 1,
    )


def gather_states(info: DistInfo, state: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a state tensor (e.g. a generator state): rank r's at index r."""
    if not info.enabled:
        return [state]
    states: list = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def no_sync(module: nn.Module, skip: bool):
    """DDP's `no_sync()` when `skip` (accumulating micro-batches), else a null context."""
    import contextlib

    if skip and hasattr(module, "no_sync"):
        return module.no_sync()
    return contextlib.nullcontext()


def average_logs(info: DistInfo, logs: dict[str, float]) -> dict[str, float]:
    """Logged figures averaged over ranks (a collective call), so rank 0 logs the global batch."""
    if not info.enabled or not logs:
        return logs
    keys = sorted(logs)
    values = torch.tensor([logs[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    values /= info.world_size
    return dict(zip(keys, values.tolist()))
