"""A deterministic training job run alone or under torchrun, for the DDP equality tests.

Usage: python ddp_worker.py OUT_FILE --batch-size B [--steps N] [--stop-after-one] [--resume RUN]
Writes the trained weights (rank 0) to OUT_FILE as safetensors.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from safetensors.torch import save_file
from torch import nn

from genlab.core.contract import Batch, DataSpec, LossOutput, NeuralModel
from genlab.data.dataset import Dataset
from genlab.train.config import TrainConfig
from genlab.train.distributed import init_from_env
from genlab.train.loop import fit


@dataclass(frozen=True)
class RegressorConfig:
    width: int = 32


class Regressor(NeuralModel):
    """An MLP regressing the second half of each row on the first: no randomness at all."""

    name = "ddp_regressor"

    def __init__(self, config: RegressorConfig, spec: DataSpec):
        super().__init__()
        self.config, self.spec = config, spec
        self.net = nn.Sequential(nn.Linear(4, config.width), nn.Tanh(), nn.Linear(config.width, 4))

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        x, y = batch.x[:, :4], batch.x[:, 4:]
        loss = ((self.net(x) - y) ** 2).mean()
        return LossOutput(loss, {"mse": float(loss.detach())})

    def sample(self, num_samples, *, generator=None, cond=None):
        x = torch.randn(num_samples, 4, generator=generator)
        with torch.no_grad():
            return torch.cat([x, self.net(x)], dim=1)

    def log_likelihood(self, x, *, cond=None):
        raise TypeError("the regressor has no likelihood")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--stop-after-one", action="store_true")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = init_from_env()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=g)
    data = Dataset(torch.cat([x, torch.sin(2 * x)], dim=1), DataSpec("points", (8,)))
    torch.manual_seed(0)
    model = Regressor(RegressorConfig(), data.spec)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=2,
        lr=3e-3,
        warmup_steps=5,
        ema_decay=0.9,
        progress=False,
        num_samples=0,
        checkpoint_every=10,
        max_seconds=1e-9 if args.stop_after_one else 0.0,
    )
    fit(model, data, config, run_dir=args.run_dir, resume=args.resume)
    if info.is_main:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)


if __name__ == "__main__":
    main()
