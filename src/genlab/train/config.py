"""The training configuration: the `train:` section of a run's YAML, field for field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genlab.core.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """How `genlab.train.fit` trains a neural model.

    Steps count optimizer steps of the first key in `param_groups()` order ("outer" steps); a key
    with `steps_per_key[key] = k` takes k optimizer steps per outer step (e.g. 5 discriminator
    steps per generator step).

    Args:
        steps: outer optimizer steps to train for.
        batch_size: samples per micro-batch (the effective batch is batch_size * grad_accum).
        lr: peak learning rate; `lr_per_key` overrides it per loss key.
        betas, weight_decay: AdamW settings.
        warmup_steps: linear warm-up from 0 to lr; then `schedule`.
        schedule: "cosine" decays to lr * min_lr_ratio at `steps`; "constant" keeps lr.
        grad_clip: clip the global gradient norm per key (0 turns clipping off).
        grad_accum: micro-batches accumulated per optimizer step.
        ema_decay: decay of an exponential moving average of the weights used for sampling and
            evaluation (0 turns EMA off).
        ema_warmup: ramp the EMA decay as min(ema_decay, (1 + step) / (10 + step)), so that a
            long average (e.g. 0.999) forgets the initial weights within a short run.
        precision: "fp32", "bf16" (autocast; CPU and CUDA), "fp16" (CUDA autocast with a grad
            scaler), or "auto": bf16 on a CUDA device that supports it, fp32 otherwise.
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
        seed: seeds weights, data order, dropout and every noise draw of training.
        max_seconds: stop (and checkpoint) after this much wall time; 0 means no limit.
        log_every: steps between log lines in metrics.jsonl.
        sample_every: steps between sample grids written to samples/ (0: only at the end).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many checkpoints to keep (the newest).
        num_samples: samples drawn for each periodic grid.
        progress: show a progress bar with the loss and it/s.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    lr_per_key: dict[str, float] = field(default_factory=dict)
    steps_per_key: dict[str, int] = field(default_factory=dict)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    ema_decay: float = 0.0
    ema_warmup: bool = False
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    seed: int = 0
    max_seconds: float = 0.0
    log_every: int = 10
    sample_every: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    num_samples: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("sample_every", "checkpoint_every", "warmup_steps", "num_samples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be 0 or more, got {getattr(self, name)}")
        if self.lr <= 0 or any(v <= 0 for v in self.lr_per_key.values()):
            raise ConfigError("train.lr (and every train.lr_per_key value) must be positive")
        for key, k in self.steps_per_key.items():
            if k < 1:
                raise ConfigError(
                    f"train.steps_per_key.{key} = {k}: each key needs at least 1 step per outer step"
                )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not isinstance(self.ema_warmup, bool):
            raise ConfigError(f"train.ema_warmup must be true or false, got {self.ema_warmup!r}")
        if self.ema_warmup and self.ema_decay == 0:
            raise ConfigError(
                "train.ema_warmup ramps the EMA decay, but ema_decay is 0 (no EMA): set "
                "ema_decay, e.g. 0.999, or drop ema_warmup"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0 or self.max_seconds < 0 or self.weight_decay < 0:
            raise ConfigError("train.grad_clip, max_seconds and weight_decay must be 0 or more")
