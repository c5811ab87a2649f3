"""Mode coverage of samples from a mixture with known, isotropic modes (the 2-D toy benchmarks).

The protocol of VEEGAN (Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using
Implicit Variational Learning"), used since by PacGAN and others on the 8-Gaussian ring
(radius 2, σ 0.02) and the 25-Gaussian grid (σ 0.05), scored on 2,500 samples:

- each sample is assigned to its nearest mode;
- a sample is *high quality* when it lies within `threshold` (3) standard deviations of that
  mode;
- a mode is *captured* when at least `min_count` high-quality samples are assigned to it.

Papers differ on `min_count`. The default here is a fifth of the samples a mode would receive
if the mixture were uniform, N / (5 K) rounded up: 20 of 2,500 samples for 25 modes, the
threshold PacGAN (Lin et al. 2018) applies on the grid, and 63 of 2,500 for the 8-mode ring.
It keeps a handful of stray samples from counting as a captured mode. `min_count=1` gives the
loosest reading, a mode with any high-quality sample at all.

For a sample drawn exactly from an isotropic Gaussian mode in D = 2, the chance of lying within
3σ is 1 - exp(-9/2) ≈ 0.9889, so a perfect model scores about 98.9% high quality.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from genlab.core.errors import ConfigError
from genlab.metrics.distances import ArrayLike, as_feature_matrix, check_same_dims


def mode_coverage(
    samples: ArrayLike,
    modes: ArrayLike,
    std: float,
    *,
    threshold: float = 3.0,
    min_count: int | None = None,
) -> dict[str, Any]:
    """Count the modes a set of samples captures and the share of high-quality samples.

    Args:
        samples: generated points (N, D); D = 2 for the toys, any D works.
        modes: mode centres (K, D).
        std: the modes' standard deviation (isotropic, shared by all modes), in data units.
        threshold: a sample within `threshold · std` of its nearest mode is high quality.
        min_count: high-quality samples a mode needs to count as captured; None means
            ceil(N / (5 K)), a fifth of a uniform share (see the module docstring).

    Returns:
        {"modes_captured": int, "num_modes": K, "high_quality_share": float in [0, 1],
         "counts": list of K ints, the high-quality samples assigned to each mode,
         "min_count": the capture threshold used}.

    Raises:
        DataError: bad or non-finite points, or samples and modes of different D.
        ConfigError: a std or threshold that is not positive, or min_count < 1.
    """
    samples = as_feature_matrix(samples, "samples")
    modes = as_feature_matrix(modes, "modes")
    check_same_dims(samples, modes, ("samples", "modes"))
    if not (math.isfinite(std) and std > 0):
        raise ConfigError(f"std must be a positive number, got {std!r}.")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ConfigError(
            f"threshold must be a positive number of standard deviations, got {threshold!r}."
        )
    num_samples, num_modes = samples.shape[0], modes.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(num_samples / (5 * num_modes)))
    elif (
        isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1
    ):
        raise ConfigError(f"min_count must be an integer ≥ 1 or None, got {min_count!r}.")

    # One mode at a time keeps memory at O(N K) for any D.
    distances = np.stack([np.linalg.norm(samples - mode, axis=1) for mode in modes], axis=1)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(num_samples), nearest] <= threshold * std
    counts = np.bincount(nearest[high_quality], minlength=num_modes)
    return {
        "modes_captured": int((counts >= min_count).sum()),
        "num_modes": num_modes,
        "high_quality_share": float(high_quality.mean()),
        "counts": [int(c) for c in counts],
        "min_count": int(min_count),
    }
