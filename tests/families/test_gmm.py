"""Maths and contract tests for the `gmm` model (Gaussian mixture by EM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

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
