"""arima: coefficient recovery, exact likelihood against statsmodels and the Gaussian density,
simulated paths against statsmodels' forecast distribution, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, norm

import genlab
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.families.classical.arima import ARIMA, ARIMAConfig


def _ar2(n: int, phi=(0.6, -0.3), mean=2.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, e = np.zeros(n + 500), rng.normal(size=n + 500)
    for t in range(2, len(y)):
        y[t] = phi[0] * y[t - 1] + phi[1] * y[t - 2] + e[t]
    return y[500:] + mean  # burn-in dropped: a stationary stretch


def test_recovers_known_ar2_coefficients():
    model = ARIMA(ARIMAConfig(order=(2, 0, 0))).fit(torch.tensor(_ar2(4000)))
    coef = model.coefficients()
    assert model.converged_
    assert abs(coef["ar.L1"] - 0.6) < 0.05 and abs(coef["ar.L2"] + 0.3) < 0.05
    assert abs(coef["const"] - 2.0) < 0.1 and abs(coef["sigma2"] - 1.0) < 0.08


def test_log_likelihood_matches_statsmodels_loglike_for_the_same_params():
    from statsmodels.tsa.arima.model import ARIMA as Reference

    series = _ar2(300, seed=1)
    model = ARIMA(ARIMAConfig(order=(2, 0, 1))).fit(torch.tensor(series))
    ll = model.log_likelihood(torch.tensor(series)[None, :, None])
    assert ll.kind == "exact" and ll.details["values_scored"] == 300
    assert math.isclose(float(ll.nats[0]), float(model.results_.llf), rel_tol=1e-10)
    windows = np.stack([series[i : i + 20] for i in range(0, 100, 25)])
    ll = model.log_likelihood(torch.tensor(windows)).nats
    for window, got in zip(windows, ll):
        ref = Reference(window, order=(2, 0, 1)).loglike(model.params_)
        assert math.isclose(float(got), ref, rel_tol=1e-12)


def test_log_likelihood_is_the_exact_gaussian_density_of_the_window():
    model = ARIMA(ARIMAConfig(order=(1, 0, 0))).fit(torch.tensor(_ar2(800, phi=(0.7, 0.0))))
    c = model.coefficients()
    mu, phi, s2 = c["const"], c["ar.L1"], c["sigma2"]
    t = 12
    lags = np.abs(np.arange(t)[:, None] - np.arange(t)[None, :])
    cov = s2 / (1 - phi**2) * phi**lags  # the stationary AR(1) autocovariance
    windows = np.random.default_rng(3).normal(mu, 1.5, size=(4, t))
    expected = multivariate_normal(np.full(t, mu), cov).logpdf(windows)
    got = model.log_likelihood(torch.tensor(windows)[..., None]).nats.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize(
    "config",
    [{"order": (2, 0, 0)}, {"order": (1, 1, 1)}, {"order": (0, 1, 1), "trend": "t"}],
    ids=str,
)
def test_sampled_paths_follow_the_forecast_distribution(config):
    data = genlab.data.load("statsmodels", dataset="nile", window=8)
    model = genlab.create("arima", **config).fit(data)
    fc = model.forecast(6)
    paths = model.sample(20000, generator=torch.Generator().manual_seed(0), horizon=6)
    assert paths.shape == (20000, 6, 1) and paths.dtype == torch.float32
    x = paths[..., 0].double()
    sd = fc["std"]
    assert ((x.mean(0) - fc["mean"]).abs() < 4 * sd / math.sqrt(20000)).all()
    assert ((x.std(0) / sd - 1).abs() < 0.03).all()
    z = norm.ppf(0.975)
    torch.testing.assert_close(fc["lower"], fc["mean"] - z * sd)
    torch.testing.assert_close(fc["upper"], fc["mean"] + z * sd)
    # default horizon: the data's window
    assert model.sample(3, generator=torch.Generator().manual_seed(1)).shape == (3, 8, 1)


def test_forecast_from_a_history_window():
    series = _ar2(2000, phi=(0.8, 0.0), mean=0.0, seed=4)
    model = ARIMA(ARIMAConfig(order=(1, 0, 0), trend="n")).fit(torch.tensor(series))
    phi = model.coefficients()["ar.L1"]
    fc = model.forecast(3, history=torch.tensor([0.0, 1.0, 2.0]), alpha=0.1)
    torch.testing.assert_close(fc["mean"], torch.tensor([2 * phi, 2 * phi**2, 2 * phi**3]).double())


def test_seasonal_ar_coefficient_is_recovered():
    rng = np.random.default_rng(1)
    y, e = np.zeros(1200), rng.normal(size=1200)
    for t in range(12, len(y)):
        y[t] = 0.7 * y[t - 12] + e[t]
    config = ARIMAConfig(order=(0, 0, 0), seasonal_order=(1, 0, 0, 12), trend="n")
    model = ARIMA(config).fit(torch.tensor(y[200:]))
    assert abs(model.coefficients()["ar.S.L12"] - 0.7) < 0.06


def test_bad_input_gives_clear_errors():
    with pytest.raises(ConfigError, match="3 integers"):
        ARIMAConfig(order=(1, 0))
    with pytest.raises(ConfigError, match="0 or more"):
        ARIMAConfig(order=(-1, 0, 0))
    with pytest.raises(ConfigError, match="period"):
        ARIMAConfig(seasonal_order=(1, 0, 0, 0))
    with pytest.raises(ConfigError, match="d \\+ D = 0"):
        ARIMAConfig(order=(1, 1, 0), trend="c")
    with pytest.raises(ConfigError, match="drift"):
        ARIMAConfig(order=(1, 0, 0), trend="t")
    with pytest.raises(GenlabError, match="not fitted"):
        ARIMA(ARIMAConfig()).sample(2)
    with pytest.raises(DataError, match="univariate"):
        genlab.create("arima").fit(genlab.data.load("statsmodels", dataset="macrodata"))
    with pytest.raises(DataError, match="time series"):
        genlab.create("arima").fit(genlab.data.load("moons", num_samples=20))
    with pytest.raises(DataError, match="too few"):
        ARIMA(ARIMAConfig(order=(2, 0, 0))).fit(torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match="constant"):
        ARIMA(ARIMAConfig()).fit(torch.ones(50))
    with pytest.raises(DataError, match="non-finite"):
        ARIMA(ARIMAConfig()).fit(torch.tensor([1.0, float("nan")] * 10))
    model = ARIMA(ARIMAConfig(order=(0, 1, 1))).fit(torch.tensor(_ar2(200).cumsum()))
    with pytest.raises(DataError, match="none to score"):
        model.log_likelihood(torch.zeros(2, 1, 1))
    with pytest.raises(DataError, match="univariate"):
        model.log_likelihood(torch.zeros(2, 5, 2))
    with pytest.raises(ConfigError, match="horizon"):
        model.sample(2, horizon=0)
    with pytest.raises(ConfigError, match="unknown option"):
        model.sample(2, temperature=0.5)
