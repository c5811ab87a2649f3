"""Mode coverage on the 8-Gaussian ring and the 25-Gaussian grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.modes import mode_coverage

RING_STD = 0.02
RING = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=1)
GRID_STD = 0.05
GRID = np.array([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], dtype=float)


def _mixture(modes, std, num, seed, which=None):
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(modes), num) if which is None else which
    return modes[which] + std * rng.normal(size=(num, modes.shape[1]))


def test_exact_ring_samples_capture_every_mode_with_the_expected_quality():
    result = mode_coverage(_mixture(RING, RING_STD, 2500, seed=0), RING, RING_STD)
    assert result["modes_captured"] == 8 and result["num_modes"] == 8
    # P(||z|| ≤ 3) for a standard 2-D Gaussian is 1 - exp(-9/2) ≈ 0.9889
    expected = 1 - math.exp(-4.5)
    tolerance = 4 * math.sqrt(expected * (1 - expected) / 2500)
    assert abs(result["high_quality_share"] - expected) < tolerance
    assert sum(result["counts"]) == round(result["high_quality_share"] * 2500)
    assert result["min_count"] == 63  # ceil(2500 / (5 · 8))


def test_exact_grid_samples_capture_every_mode():
    result = mode_coverage(_mixture(GRID, GRID_STD, 2500, seed=1), GRID, GRID_STD)
    assert result["modes_captured"] == 25
    assert result["min_count"] == 20
    assert result["high_quality_share"] > 0.97


def test_samples_near_three_modes_capture_three():
    rng = np.random.default_rng(2)
    samples = _mixture(RING, RING_STD, 2500, seed=3, which=rng.choice([0, 3, 5], 2500))
    result = mode_coverage(samples, RING, RING_STD)
    assert result["modes_captured"] == 3
    assert [i for i, c in enumerate(result["counts"]) if c > 0] == [0, 3, 5]


def test_a_few_stray_samples_do_not_capture_a_mode_unless_min_count_allows():
    which = np.zeros(2500, dtype=int)
    which[:5] = 1  # five samples at mode 1, far below a fifth of a uniform share
    samples = _mixture(RING, RING_STD, 2500, seed=4, which=which)
    assert mode_coverage(samples, RING, RING_STD)["modes_captured"] == 1
    assert mode_coverage(samples, RING, RING_STD, min_count=1)["modes_captured"] == 2


def test_samples_between_modes_are_low_quality():
    midpoints = (RING + np.roll(RING, 1, axis=0)) / 2
    result = mode_coverage(np.repeat(midpoints, 10, axis=0), RING, RING_STD)
    assert result["high_quality_share"] == 0.0
    assert result["modes_captured"] == 0
    wide = mode_coverage(RING + 0.1, RING, RING_STD, threshold=10.0, min_count=1)
    assert wide["high_quality_share"] == 1.0 and wide["modes_captured"] == 8


def test_bad_inputs_raise():
    samples = _mixture(RING, RING_STD, 100, seed=5)
    with pytest.raises(DataError, match="same feature network"):
        mode_coverage(samples, np.zeros((8, 3)), RING_STD)
    with pytest.raises(ConfigError, match="std"):
        mode_coverage(samples, RING, 0.0)
    with pytest.raises(ConfigError, match="threshold"):
        mode_coverage(samples, RING, RING_STD, threshold=-1.0)
    with pytest.raises(ConfigError, match="min_count"):
        mode_coverage(samples, RING, RING_STD, min_count=0)
    with pytest.raises(DataError, match="NaN"):
        mode_coverage(np.full((3, 2), np.nan), RING, RING_STD)
