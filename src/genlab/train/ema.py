"""Exponential moving average of a model's weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class EMA:
    """Keeps `shadow = decay * shadow + (1 - decay) * weights` for every floating tensor.

    Buffers that are not floating point (counters) are copied as they are. `swapped_in` lends
    the averaged weights to the model for sampling or evaluation and puts the live ones back.

    With `warmup`, the decay after optimizer step t (1-based) is min(decay, (1 + t) / (10 + t)),
    the ramp of diffusers' EMAModel without its power warm-up (diffusers counts from t - 1 and
    copies the weights at its first update): early steps average over the few weights seen so
    far, so a long
    average (0.999) no longer carries the random initial weights through a short run (without
    it, 0.999 ** 3000 = 5% of the shadow is still the initialization after 3,000 steps).
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = False):
        self.model = model
        self.decay = decay
        self.warmup = warmup
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items()
        }

    def decay_at(self, step: int) -> float:
        """The decay applied after optimizer step `step` (1-based)."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, step: int | None = None) -> None:
        """Average in the current weights; `step` (1-based) is needed with warm-up."""
        if self.warmup and step is None:
            raise ValueError("EMA with warm-up needs the step: call update(step)")
        decay = self.decay_at(step) if step is not None else self.decay
        for k, v in self.model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.detach(), 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        live = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            self.model.load_state_dict(live)

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
