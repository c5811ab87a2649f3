"""Percentile bootstrap intervals for one- and two-sample statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.bootstrap import bootstrap_interval
from genlab.metrics.distances import fid, kid


def _mean(x):
    return float(np.mean(x))


def test_interval_contains_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=100), rng.normal(size=10_000)
    estimate, low, high = bootstrap_interval(_mean, small)
    assert estimate == pytest.approx(small.mean())
    assert low < estimate < high
    _, large_low, large_high = bootstrap_interval(_mean, large)
    assert large_high - large_low < (high - low) / 5  # width shrinks like 1 / sqrt(N)
    # the 95% interval of a mean is close to ±1.96 standard errors
    assert high - low == pytest.approx(2 * 1.96 * small.std() / 10, rel=0.25)


def test_same_seed_reproduces_and_another_seed_differs():
    x = np.random.default_rng(1).normal(size=200)
    assert bootstrap_interval(_mean, x, seed=3) == bootstrap_interval(_mean, x, seed=3)
    assert bootstrap_interval(_mean, x, seed=3) != bootstrap_interval(_mean, x, seed=4)


def test_arrays_are_resampled_independently():
    # resampled together, x and a copy of x would stay perfectly correlated
    x = np.random.default_rng(2).normal(size=500)
    estimate, low, high = bootstrap_interval(
        lambda a, b: np.corrcoef(a, b)[0, 1], x, x.copy(), num_resamples=100
    )
    assert estimate == pytest.approx(1.0)
    assert -0.3 < low < high < 0.3


def test_two_sample_statistics_on_tensors():
    rng = np.random.default_rng(3)
    real = torch.from_numpy(rng.normal(size=(400, 4)))
    fake = torch.from_numpy(rng.normal(size=(300, 4)) + 0.5)
    estimate, low, high = bootstrap_interval(fid, real, fake, num_resamples=50)
    assert estimate == fid(real, fake)
    assert 0 < low < high
    kid_estimate, kid_low, kid_high = bootstrap_interval(
        lambda r, f: kid(r, f, num_subsets=5, subset_size=100)[0], real, fake, num_resamples=20
    )
    assert kid_low < kid_high and kid_estimate > 0


def test_bad_arguments_raise():
    x = np.ones(10)
    with pytest.raises(DataError, match="no arrays"):
        bootstrap_interval(_mean)
    with pytest.raises(DataError, match="empty"):
        bootstrap_interval(_mean, np.zeros(0))
    with pytest.raises(DataError, match="no rows"):
        bootstrap_interval(_mean, 3.0)
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap_interval(_mean, x, confidence=1.5)
    with pytest.raises(ConfigError, match="num_resamples"):
        bootstrap_interval(_mean, x, num_resamples=0)
    with pytest.raises(ConfigError, match=r"kid\(real, fake\)\[0\]"):
        bootstrap_interval(lambda a: (1.0, 2.0), x)
    with pytest.raises(DataError, match="resample 0"):
        bootstrap_interval(
            lambda a: float("nan") if len(set(a.tolist())) < 10 else 0.0, np.arange(10.0)
        )
