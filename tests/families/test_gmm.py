"""Maths and contract tests for the `gmm` model (Gaussian mixture by EM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.core.persist import MODEL_JSON, WEIGHTS_FILE, load_model
from genlab.data.dataset import Dataset
from genlab.families.classical.gmm import GMM, GMMConfig
from genlab.train.config import TrainConfig

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")
TRUE_WEIGHTS = np.array([0.3, 0.5, 0.2])
TRUE_MEANS = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]])
TRUE_COVS = np.array(
    [
        [[0.50, 0.40], [0.40, 0.50]],
        [[0.20, -0.15], [-0.15, 0.40]],
        [[0.25, 0.0], [0.0, 0.25]],
    ]
)


def mixture_points(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2) draws from the known, well separated 3-component mixture."""
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    z = rng.standard_normal((n, 2))
    chol = np.linalg.cholesky(TRUE_COVS)
    return TRUE_MEANS[k] + np.einsum("nij,nj->ni", chol[k], z)


@pytest.fixture(scope="module")
def points() -> Dataset:
    x = torch.from_numpy(mixture_points(10000)).float()
    return Dataset(x=x, spec=DataSpec(modality="points", shape=(2,), name="three_gaussians"))


def fit_gmm(data, **config) -> GMM:
    return GMM(GMMConfig(**config)).fit(data)


def full_covariances(model: GMM) -> np.ndarray:
    """Every component's covariance as a (K, D, D) matrix, whatever the covariance type."""
    m = model.mixture_
    k, d = m.means_.shape
    kind = model.config.covariance_type
    if kind == "full":
        return m.covariances_
    if kind == "tied":
        return np.broadcast_to(m.covariances_, (k, d, d))
    if kind == "diag":
        return np.stack([np.diag(c) for c in m.covariances_])
    return np.stack([v * np.eye(d) for v in m.covariances_])


def test_recovers_known_means(points):
    model = genlab.create("gmm", n_components=3).fit(points, train=TrainConfig(seed=0))
    means = model.mixture_.means_
    cost = np.linalg.norm(TRUE_MEANS[:, None] - means[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() < 0.05
    np.testing.assert_allclose(model.mixture_.weights_[cols], TRUE_WEIGHTS, atol=0.03)
    assert model.n_components_ == 3 and model.selection_scores_ is None
    assert model.spec == points.spec


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_covariance_type_fits_and_samples(points, covariance_type):
    model = fit_gmm(points, n_components=3, covariance_type=covariance_type)
    x = model.sample(17, generator=torch.Generator().manual_seed(0))
    assert x.shape == (17, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    ll = model.log_likelihood(x)
    assert ll.kind == "exact" and ll.nats.shape == (17,) and ll.nats.dtype == torch.float64
    assert model.sample(0).shape == (0, 2)
    assert model.log_likelihood(torch.zeros(0, 2)).nats.shape == (0,)


def test_bic_selects_three_components(points):
    model = fit_gmm(points, select_components="bic", max_components=6)
    assert model.n_components_ == 3
    assert sorted(model.selection_scores_) == [1, 2, 3, 4, 5, 6]
    assert min(model.selection_scores_, key=model.selection_scores_.get) == 3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_exact_likelihood_normalizes(points, covariance_type):
    model = fit_gmm(points, n_components=3, covariance_type=covariance_type)
    grid = torch.linspace(-8.0, 8.0, 401, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="ij")
    xy = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (401 * 401, 2)
    density = model.log_likelihood(xy).nats.exp().reshape(401, 401).numpy()
    step = float(grid[1] - grid[0])
    mass = np.trapezoid(np.trapezoid(density, dx=step, axis=1), dx=step)
    assert abs(mass - 1.0) < 1e-3


def test_exact_likelihood_normalizes_1d():
    x = torch.from_numpy(mixture_points(500)[:, :1])  # (500, 1) raw points, no Dataset
    model = fit_gmm(x, n_components=2)
    assert model.spec == DataSpec(modality="points", shape=(1,))
    grid = torch.linspace(-10.0, 10.0, 4001, dtype=torch.float64)
    density = model.log_likelihood(grid[:, None]).nats.exp().numpy()
    assert abs(np.trapezoid(density, dx=float(grid[1] - grid[0])) - 1.0) < 1e-3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_matches_scipy(points, covariance_type):
    model = fit_gmm(points, n_components=3, covariance_type=covariance_type)
    x = points.x[:200].double().numpy()
    covs = full_covariances(model)
    per_component = np.stack(
        [
            np.log(w) + multivariate_normal(mean=mu, cov=cov).logpdf(x)
            for w, mu, cov in zip(model.mixture_.weights_, model.mixture_.means_, covs)
        ],
        axis=1,
    )  # (B, K)
    expected = logsumexp(per_component, axis=1)
    np.testing.assert_allclose(
        model.log_likelihood(points.x[:200]).nats.numpy(), expected, rtol=1e-8
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments_match_mixture(points, covariance_type):
    model = fit_gmm(points, n_components=3, covariance_type=covariance_type)
    w, mu, covs = model.mixture_.weights_, model.mixture_.means_, full_covariances(model)
    mean = w @ mu
    cov = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", mu, mu)) - np.outer(mean, mean)
    x = model.sample(20000, generator=torch.Generator().manual_seed(1)).double().numpy()
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.06)
    np.testing.assert_allclose(np.cov(x, rowvar=False), cov, atol=0.15)

    # The components are far apart, so each sample's component is recoverable; per-component
    # moments check the Cholesky factor (L z, not L^T z) of every covariance type tightly.
    component = model.mixture_.predict(x)
    for k in range(3):
        xk = x[component == k]
        assert abs(len(xk) / len(x) - w[k]) < 0.015
        np.testing.assert_allclose(xk.mean(axis=0), mu[k], atol=0.03)
        np.testing.assert_allclose(np.cov(xk, rowvar=False), covs[k], atol=0.03)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_samples_follow_a_correlated_covariance(covariance_type):
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    x = np.random.default_rng(2).multivariate_normal([1.0, -2.0], cov, size=5000)
    model = fit_gmm(torch.from_numpy(x), n_components=1, covariance_type=covariance_type)
    fitted = full_covariances(model)[0]
    samples = model.sample(20000, generator=torch.Generator().manual_seed(3)).double().numpy()
    np.testing.assert_allclose(np.cov(samples, rowvar=False), fitted, atol=0.05)


def test_sample_keeps_dataset_shape():
    x = torch.from_numpy(mixture_points(400, seed=3)).float().reshape(400, 1, 1, 2)
    data = Dataset(x=x, spec=DataSpec(modality="image", shape=(1, 1, 2)))
    model = fit_gmm(data, n_components=3)
    assert model.sample(5).shape == (5, 1, 1, 2)
    assert model.log_likelihood(x[:7]).nats.shape == (7,)


def test_seeded_reproducibility(points):
    a = fit_gmm(points, n_components=3, init_params="random", max_iter=5)
    b = fit_gmm(points, n_components=3, init_params="random", max_iter=5)
    np.testing.assert_array_equal(a.mixture_.means_, b.mixture_.means_)
    c = GMM(GMMConfig(n_components=3, init_params="random", max_iter=5))
    c.fit(points, train=TrainConfig(seed=7))
    assert not np.array_equal(a.mixture_.means_, c.mixture_.means_)

    s1 = a.sample(100, generator=torch.Generator().manual_seed(5))
    s2 = a.sample(100, generator=torch.Generator().manual_seed(5))
    s3 = a.sample(100, generator=torch.Generator().manual_seed(6))
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)


@pytest.mark.parametrize(
    "config",
    [
        {"n_components": 3},
        {"covariance_type": "tied", "select_components": "bic", "max_components": 4},
        {"n_components": 2, "covariance_type": "spherical"},
        {"n_components": 3, "covariance_type": "diag"},
    ],
)
def test_save_load_round_trip(points, tmp_path, config):
    model = fit_gmm(points, **config)
    folder = model.save(tmp_path / "model")
    loaded = load_model(folder)
    assert isinstance(loaded, GMM) and loaded.config == model.config and loaded.spec == model.spec
    assert loaded.n_components_ == model.n_components_
    assert loaded.selection_scores_ == model.selection_scores_

    draw = lambda m: m.sample(500, generator=torch.Generator().manual_seed(11))  # noqa: E731
    assert torch.equal(draw(model), draw(loaded))
    x = points.x[:300]
    assert torch.equal(model.log_likelihood(x).nats, loaded.log_likelihood(x).nats)

    meta = json.loads((folder / MODEL_JSON).read_text())
    assert meta["model"] == "gmm" and meta["config"]["n_components"] == model.config.n_components
    assert not (folder / MODEL_JSON).read_bytes().startswith(b"\x80")
    assert sorted(p.name for p in folder.iterdir()) == [MODEL_JSON, WEIGHTS_FILE]
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        assert {"weights", "means", "covariances", "n_components"} <= set(f.keys())


def test_nan_data_is_rejected(points):
    x = points.x.clone()
    x[3, 1] = float("nan")
    x[10, 0] = float("inf")
    with pytest.raises(DataError, match="data has 2 non-finite values"):
        fit_gmm(x, n_components=3)


def test_too_few_rows_is_rejected():
    with pytest.raises(DataError, match="at least 5"):
        fit_gmm(torch.randn(4, 2), n_components=5)
    with pytest.raises(DataError, match="max_components"):
        fit_gmm(torch.randn(4, 2), select_components="aic", max_components=6)


def test_unknown_options_are_rejected(points):
    model = fit_gmm(points, n_components=3)
    with pytest.raises(ConfigError, match="unknown option"):
        GMM(GMMConfig(n_components=3)).fit(points, epochs=3)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(4, temperature=0.5)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(4, cond={"label": torch.zeros(4, dtype=torch.int64)})
    with pytest.raises(ConfigError, match="unknown option"):
        model.log_likelihood(points.x[:4], steps=3)


def test_unfitted_model_errors(tmp_path):
    model = GMM(GMMConfig(n_components=3))
    with pytest.raises(GenlabError, match="fit the model first"):
        model.sample(4)
    with pytest.raises(GenlabError, match="fit the model first"):
        model.log_likelihood(torch.zeros(4, 2))
    with pytest.raises(GenlabError, match="fit the model first"):
        model.save(tmp_path / "unfitted")


def test_invalid_config_is_rejected():
    with pytest.raises(ConfigError, match="n_components"):
        genlab.create("gmm", n_components=0)
    with pytest.raises(ConfigError, match="n_components"):
        GMMConfig(n_components=0)
    with pytest.raises(ConfigError, match="covariance_type"):
        genlab.create("gmm", covariance_type="banded")
    with pytest.raises(ConfigError, match="unknown key"):
        genlab.create("gmm", components=3)
    with pytest.raises(ConfigError, match="reg_covar"):
        GMMConfig(reg_covar=-1.0)


# ---------------------------------------------------------------------------------------------
# Conditional sampling and AIC


def conditional_closed_form(model: GMM, x0: float):
    """p(x_1 | x_0) of a 2-D mixture, from scalar Gaussian formulas (independent of gmm.py)."""
    w, mu, covs = model.mixture_.weights_, model.mixture_.means_, full_covariances(model)
    s00, s01, s11 = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]
    log_w = np.log(w) - 0.5 * np.log(2 * np.pi * s00) - 0.5 * (x0 - mu[:, 0]) ** 2 / s00
    weights = np.exp(log_w - logsumexp(log_w))
    means = mu[:, 1] + s01 / s00 * (x0 - mu[:, 0])
    variances = s11 - s01**2 / s00
    return weights, means, variances


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_matches_closed_form(points, covariance_type):
    model = fit_gmm(points, n_components=3, covariance_type=covariance_type)
    weights, means, variances = conditional_closed_form(model, 1.5)
    mix = model.conditional({0: 1.5})
    assert mix.given_dims.tolist() == [0] and mix.rest_dims.tolist() == [1]
    np.testing.assert_allclose(mix.weights.numpy(), weights, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(mix.means.numpy()[:, 0], means, rtol=1e-10)
    np.testing.assert_allclose(mix.covariances.numpy()[:, 0, 0], variances, rtol=1e-10)

    # Bayes: log p(x_1 | x_0) = log p(x_0, x_1) - log p(x_0) at a few x_1.
    x1 = np.array([-1.0, 0.5, 3.0, 4.2])
    log_cond = logsumexp(
        np.log(weights)[None]
        - 0.5 * np.log(2 * np.pi * variances)[None]
        - 0.5 * (x1[:, None] - means[None]) ** 2 / variances[None],
        axis=1,
    )
    covs, mu, w = full_covariances(model), model.mixture_.means_, model.mixture_.weights_
    log_p0 = logsumexp(np.log(w) + norm.logpdf(1.5, mu[:, 0], np.sqrt(covs[:, 0, 0])))
    joint = model.log_likelihood(torch.tensor([[1.5, v] for v in x1], dtype=torch.float64))
    np.testing.assert_allclose(joint.nats.numpy() - log_p0, log_cond, rtol=1e-9)


@pytest.mark.parametrize("x0", [1.5, -4.0])
def test_conditional_samples_match_closed_form(points, x0):
    model = fit_gmm(points, n_components=3)
    weights, means, variances = conditional_closed_form(model, x0)
    mean = weights @ means
    variance = weights @ (variances + means**2) - mean**2
    x = model.sample(40000, generator=torch.Generator().manual_seed(0), given={0: x0})
    assert x.shape == (40000, 2) and x.dtype == torch.float32
    assert (x[:, 0] == torch.tensor(x0, dtype=torch.float32)).all()
    rest = x[:, 1].double().numpy()
    standard_error = np.sqrt(variance / len(rest))
    assert abs(rest.mean() - mean) < 5 * standard_error
    assert abs(rest.var() - variance) < 0.05 * variance


def test_conditional_in_three_dimensions():
    rng = np.random.default_rng(5)
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.5, -0.4], [0.3, -0.4, 0.7]])
    x = rng.multivariate_normal([0.0, 1.0, -1.0], cov, size=4000)
    model = fit_gmm(torch.from_numpy(x), n_components=1)
    fitted_mean, fitted = model.mixture_.means_[0], full_covariances(model)[0]
    mix = model.conditional({2: 0.5, 0: -1.0})
    assert mix.given_dims.tolist() == [0, 2] and mix.rest_dims.tolist() == [1]
    g, r = [0, 2], [1]
    gain = fitted[np.ix_(r, g)] @ np.linalg.inv(fitted[np.ix_(g, g)])
    expected_mean = fitted_mean[r] + gain @ (np.array([-1.0, 0.5]) - fitted_mean[g])
    expected_cov = fitted[np.ix_(r, r)] - gain @ fitted[np.ix_(g, r)]
    np.testing.assert_allclose(mix.means.numpy()[0], expected_mean, rtol=1e-10)
    np.testing.assert_allclose(mix.covariances.numpy()[0], expected_cov, rtol=1e-10)
    samples = model.sample(5, generator=torch.Generator().manual_seed(1), given={0: -1.0, 2: 0.5})
    assert torch.equal(samples[:, 0], torch.full((5,), -1.0)) and (samples[:, 2] == 0.5).all()
    every = model.sample(3, given={0: 1.0, 1: 2.0, 2: 3.0})
    assert torch.equal(every, torch.tensor([[1.0, 2.0, 3.0]] * 3))


def test_conditional_sampling_is_seeded_and_keeps_shape():
    x = torch.from_numpy(mixture_points(400, seed=3)).float().reshape(400, 1, 1, 2)
    model = fit_gmm(Dataset(x=x, spec=DataSpec(modality="image", shape=(1, 1, 2))), n_components=3)
    a = model.sample(6, generator=torch.Generator().manual_seed(2), given={1: 4.0})
    b = model.sample(6, generator=torch.Generator().manual_seed(2), given={1: 4.0})
    assert a.shape == (6, 1, 1, 2) and torch.equal(a, b)
    plain = model.sample(6, generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.sample(6, generator=torch.Generator().manual_seed(2), given={}), plain)
    assert model.sample(0, given={0: 1.0}).shape == (0, 1, 1, 2)


def test_conditional_errors(points):
    model = fit_gmm(points, n_components=3)
    with pytest.raises(ConfigError, match="dimensions 0 to 1"):
        model.sample(3, given={2: 1.0})
    with pytest.raises(ConfigError, match="dimension indices"):
        model.sample(3, given={"x": 1.0})
    with pytest.raises(ConfigError, match="must be a number"):
        model.sample(3, given={0: "high"})
    with pytest.raises(ConfigError, match="finite"):
        model.conditional({0: float("nan")})
    with pytest.raises(ConfigError, match="non-empty mapping"):
        model.conditional({})
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(3, given={0: 1.0}, cond={"label": torch.zeros(3, dtype=torch.int64)})
    with pytest.raises(GenlabError, match="fit the model first"):
        GMM(GMMConfig(n_components=2)).conditional({0: 1.0})


def test_aic_selection(points):
    model = fit_gmm(points, select_components="aic", max_components=5)
    assert sorted(model.selection_scores_) == [1, 2, 3, 4, 5]
    assert model.n_components_ == min(model.selection_scores_, key=model.selection_scores_.get)
    assert model.n_components_ == 3
    x = points.x.double().numpy()
    refit = GMM(GMMConfig(n_components=3)).fit(points).mixture_
    assert model.selection_scores_[3] == pytest.approx(refit.aic(x), rel=1e-9)
