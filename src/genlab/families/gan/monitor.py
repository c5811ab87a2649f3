"""Mode-collapse monitoring while a GAN trains.

Every `every` steps the monitor draws a fixed-seed set of samples and scores two figures:

- `coverage` (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
  Models"): the share of real rows whose k-NN ball (k = 5) holds a generated sample, against a
  reservoir of the most recent real training rows the discriminator saw. A collapsed generator
  covers few real balls, whatever the quality of its samples. Images are compared in the
  digit networks' feature space when their size fits one (28x28 or 8x8 grey), else as raw pixels.
- on the 2-D Gaussian mixtures of STYLE.md (8gaussians, 25gaussians), `modes_captured` and
  `high_quality_share` by the VEEGAN protocol (genlab.metrics.modes).

When a figure falls below `drop` times its best value so far, the monitor warns with a
`ModeCollapseWarning`: the generator has lost part of the data it once covered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genlab.core.contract import DataSpec

#: the mixtures with known modes (the reference toys of STYLE.md), by data set name
MIXTURES = ("8gaussians", "25gaussians")


class ModeCollapseWarning(UserWarning):
    """A monitored diversity figure fell well below its best value during training."""


def _mixture_modes(name: str) -> tuple[Tensor, float]:
    from genlab.data import load

    info = load(name, num_samples=1).info
    return info["modes"], float(info["std"])


def _feature_fn(spec: DataSpec) -> Callable[[Tensor], Tensor]:
    """Features for the coverage figure: the digit networks for digits, else flattened values."""
    if spec.modality == "image" and tuple(spec.shape) in ((1, 28, 28), (1, 8, 8)):
        from genlab.metrics.features import get_extractor

        name = "digits28" if spec.shape[-1] == 28 else "digits8"
        extractor = get_extractor(name)
        return lambda x: extractor.features(x.float().cpu()).double()
    return lambda x: x.detach().float().cpu().flatten(1).double()


class CollapseMonitor:
    """Tracks sample diversity every `every` steps and warns when it drops.

    Args:
        spec: the data spec (chooses the features and whether modes are known).
        every: steps between checks (0 turns monitoring off).
        num_samples: generated samples per check, and real rows kept in the reservoir.
        drop: warn when a figure falls below `drop` times its best value so far.
        seed: seed of the generator that draws the monitored samples (the same every check, so
            checks compare like with like and the training RNG is never touched).
    """

    def __init__(
        self, spec: DataSpec, every: int, num_samples: int, drop: float, seed: int = 0
    ) -> None:
        self.spec = spec
        self.every = every
        self.num_samples = num_samples
        self.drop = drop
        self.seed = seed
        self.reservoir: Tensor | None = None  # the newest real rows, (M, *shape), on the CPU
        self.latest: dict[str, float] = {}
        self.best: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._features: Callable[[Tensor], Tensor] | None = None
        self._modes = _mixture_modes(spec.name) if spec.name in MIXTURES else None

    def remember(self, x: Tensor) -> None:
        """Keep the newest `num_samples` real rows (B, *shape) for the coverage figure."""
        if not self.every:
            return
        rows = x.detach().float().cpu()
        if self.reservoir is not None:
            rows = torch.cat([self.reservoir, rows])
        self.reservoir = rows[-self.num_samples :]

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def check(self, step: int, draw: Callable[[int, torch.Generator], Tensor]) -> dict[str, float]:
        """Score `draw(n, generator)` samples; record, warn on a drop, and return the figures."""
        from genlab.metrics.modes import mode_coverage
        from genlab.metrics.prdc import prdc

        fake = draw(self.num_samples, torch.Generator().manual_seed(self.seed)).cpu()
        figures: dict[str, float] = {}
        if self._modes is not None:
            modes, std = self._modes
            cover = mode_coverage(fake.double(), modes, std)
            figures["modes_captured"] = float(cover["modes_captured"])
            figures["high_quality_share"] = cover["high_quality_share"]
        real = self.reservoir
        if real is not None and real.shape[0] > 5 and fake.shape[0] > 5:
            if self._features is None:
                self._features = _feature_fn(self.spec)
            scores = prdc(self._features(real), self._features(fake), max_samples=None)
            figures["coverage"] = scores["coverage"]
            figures["precision"] = scores["precision"]
        self._warn_on_drop(step, figures)
        self.latest = figures
        self.history.append({"step": float(step), **figures})
        return figures

    def _warn_on_drop(self, step: int, figures: dict[str, Any]) -> None:
        for name in ("coverage", "modes_captured"):
            if name not in figures:
                continue
            value, best = figures[name], self.best.get(name)
            if best is not None and value < self.drop * best:
                warnings.warn(
                    f"step {step}: {name} fell to {value:.3g}, below {self.drop} x its best "
                    f"{best:.3g}: the generator may be collapsing onto fewer modes. Lower the "
                    "learning rates, add discriminator steps, or use the sngan / wgan_gp presets",
                    ModeCollapseWarning,
                    stacklevel=2,
                )
            self.best[name] = value if best is None else max(best, value)
