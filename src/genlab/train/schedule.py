"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, *, total: int, warmup: int, min_ratio: float, cosine: bool) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based).

    Linear warm-up over `warmup` steps, then a half-cosine from 1 to `min_ratio` at `total`
    (Loshchilov & Hutter, SGDR, 2017), or a constant 1 when `cosine` is False.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if not cosine:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
