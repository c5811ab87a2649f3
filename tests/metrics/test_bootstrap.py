"""Percentile bootstrap intervals for one- and two-sample statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.bootstrap import bootstrap_interval, half_sample_interval
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


def test_half_sample_interval_of_a_mean_matches_the_standard_error():
    x = np.random.default_rng(5).normal(size=400)
    estimate, low, high = half_sample_interval(_mean, x, num_resamples=400)
    assert estimate == pytest.approx(x.mean())
    assert low < estimate < high
    assert high - low == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.2)


@pytest.mark.parametrize(
    "shift,ratio_range",
    [
        (0.3, (0.6, 1.7)),  # 0.9-1.4x over six data seeds
        (0.0, (1.0, 3.5)),  # one distribution: conservative, 1.2-2.6x over six data seeds
    ],
)
def test_half_sample_interval_of_fid_brackets_it_against_fresh_draws(shift, ratio_range):
    # FID is biased upwards at finite N, and a with-replacement bootstrap more so: its
    # interval sits above the estimate. The half-sample interval is centred on the estimate;
    # its width matches the spread of FID over fresh sample sets of the same size where the
    # sets differ, and overstates it where they come from one distribution.
    rng = np.random.default_rng(6)
    dim, n = 4, 500

    def draw():
        return rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) + shift

    fresh = [fid(*draw()) for _ in range(40)]
    real, fake = draw()
    estimate, low, high = half_sample_interval(fid, real, fake, num_resamples=200)
    _, boot_low, _ = bootstrap_interval(fid, real, fake, num_resamples=200)
    assert low < estimate < high
    assert boot_low > low  # the bootstrap's duplicates push its interval up
    ratio = (high - low) / (2 * 1.96 * np.std(fresh))
    assert ratio_range[0] < ratio < ratio_range[1]


def test_half_sample_interval_needs_two_rows_and_reports_its_name():
    with pytest.raises(DataError, match="half_sample_interval got no arrays"):
        half_sample_interval(_mean)
    with pytest.raises(DataError, match="at least 2 rows"):
        half_sample_interval(_mean, np.ones(1))
    x = np.arange(10.0)
    assert half_sample_interval(_mean, x, seed=1) == half_sample_interval(_mean, x, seed=1)
