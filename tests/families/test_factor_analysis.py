"""Maths and contract tests for the `factor_analysis` model (factor analysis and PPCA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA, FactorAnalysis

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.core.persist import load_model
from genlab.data.dataset import Dataset
from genlab.families.classical.factor_analysis import FactorAnalysisConfig, FactorAnalysisModel
from genlab.train.config import TrainConfig

TRUE_LOADINGS = np.array(
    [[1.0, 0.0], [0.9, 0.3], [0.8, -0.4], [0.0, 1.2], [0.3, 0.8], [-0.5, 0.6]]
)  # (D = 6, k = 2)
TRUE_NOISE = np.array([0.2, 0.3, 0.1, 0.25, 0.15, 0.4])
TRUE_MEAN = np.array([1.0, -1.0, 0.5, 2.0, 0.0, -0.5])


@pytest.fixture(scope="module")
def factors() -> Dataset:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5000, 2))
    x = TRUE_MEAN + z @ TRUE_LOADINGS.T + rng.standard_normal((5000, 6)) * np.sqrt(TRUE_NOISE)
    return Dataset(x=torch.from_numpy(x).float(), spec=DataSpec("points", (6,), name="factors"))


def draw(model, n: int, seed: int = 0) -> torch.Tensor:
    return model.sample(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rotation", [None, "varimax", "quartimax"])
@pytest.mark.parametrize("svd_method", ["randomized", "lapack"])
def test_fa_likelihood_matches_sklearn(factors, rotation, svd_method):
    model = genlab.create(
        "factor_analysis", n_components=2, rotation=rotation, svd_method=svd_method
    ).fit(factors, train=TrainConfig(seed=3))
    x = factors.x.double().numpy()
    reference = FactorAnalysis(
        n_components=2, rotation=rotation, svd_method=svd_method, random_state=3
    ).fit(x)
    ll = model.log_likelihood(factors.x[:500])
    assert ll.kind == "exact" and ll.nats.dtype == torch.float64
    np.testing.assert_allclose(ll.nats.numpy(), reference.score_samples(x[:500]), rtol=1e-8)
    np.testing.assert_allclose(model.loadings_, reference.components_.T)
    np.testing.assert_allclose(model.noise_variance_, reference.noise_variance_)


@pytest.mark.parametrize("n_components", [1, 3, 5])
def test_ppca_likelihood_matches_sklearn(factors, n_components):
    model = genlab.create("factor_analysis", n_components=n_components, method="ppca")
    model.fit(factors)
    x = factors.x.double().numpy()
    reference = PCA(n_components=n_components, svd_solver="full").fit(x)
    expected = reference.score_samples(x[:500])
    np.testing.assert_allclose(model.log_likelihood(x[:500]).nats.numpy(), expected, rtol=1e-8)
    np.testing.assert_allclose(model.covariance(), reference.get_covariance(), atol=1e-10)


@pytest.mark.parametrize("method", ["fa", "ppca"])
def test_recovers_the_loading_subspace(factors, method):
    model = genlab.create("factor_analysis", n_components=2, method=method).fit(factors)
    angles = subspace_angles(model.loadings_, TRUE_LOADINGS)
    assert np.max(angles) < (0.05 if method == "fa" else 0.2)
    np.testing.assert_allclose(model.mean_, TRUE_MEAN, atol=0.05)
    if method == "fa":
        np.testing.assert_allclose(model.noise_variance_, TRUE_NOISE, atol=0.04)
        true_cov = TRUE_LOADINGS @ TRUE_LOADINGS.T + np.diag(TRUE_NOISE)
        np.testing.assert_allclose(model.covariance(), true_cov, atol=0.06)


@pytest.mark.parametrize("method", ["fa", "ppca"])
def test_sample_covariance_is_w_wt_plus_psi(factors, method):
    model = genlab.create("factor_analysis", n_components=2, method=method).fit(factors)
    samples = draw(model, 100000).double().numpy()
    np.testing.assert_allclose(samples.mean(axis=0), model.mean_, atol=0.02)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), model.covariance(), atol=0.03)


def test_likelihood_normalizes_2d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 1)) @ np.array([[1.0, 0.7]]) + 0.3 * rng.standard_normal((400, 2))
    model = genlab.create("factor_analysis", n_components=1).fit(torch.from_numpy(x))
    grid = torch.linspace(-7.0, 7.0, 701, dtype=torch.float64)
    xy = torch.cartesian_prod(grid, grid)
    density = model.log_likelihood(xy).nats.exp().reshape(701, 701).numpy()
    step = float(grid[1] - grid[0])
    assert abs(np.trapezoid(np.trapezoid(density, dx=step, axis=1), dx=step) - 1.0) < 1e-3


@pytest.mark.parametrize(
    "config", [{"n_components": 2}, {"n_components": 3, "method": "ppca"}, {"rotation": "varimax"}]
)
def test_save_load_round_trip(factors, tmp_path, config):
    model = genlab.create("factor_analysis", **config).fit(factors)
    loaded = load_model(model.save(tmp_path / "model"))
    assert isinstance(loaded, FactorAnalysisModel) and loaded.config == model.config
    assert torch.equal(draw(model, 300, 4), draw(loaded, 300, 4))
    x = factors.x[:200]
    assert torch.equal(model.log_likelihood(x).nats, loaded.log_likelihood(x).nats)


def test_seeded_reproducibility(factors):
    a = FactorAnalysisModel(FactorAnalysisConfig()).fit(factors, train=TrainConfig(seed=1))
    b = FactorAnalysisModel(FactorAnalysisConfig()).fit(factors, train=TrainConfig(seed=1))
    np.testing.assert_array_equal(a.loadings_, b.loadings_)
    assert torch.equal(draw(a, 20, 1), draw(a, 20, 1))
    assert not torch.equal(draw(a, 20, 1), draw(a, 20, 2))


def test_keeps_the_sample_shape():
    x = torch.randn(300, 1, 2, 2)
    data = Dataset(x=x, spec=DataSpec("image", (1, 2, 2)))
    model = genlab.create("factor_analysis", n_components=2).fit(data)
    assert draw(model, 5).shape == (5, 1, 2, 2)
    assert model.log_likelihood(x[:7]).nats.shape == (7,)
    assert model.log_likelihood(x[:0]).nats.shape == (0,) and draw(model, 0).shape == (0, 1, 2, 2)


def test_errors(factors):
    with pytest.raises(DataError, match="n_components"):
        genlab.create("factor_analysis", n_components=7).fit(factors)
    with pytest.raises(DataError, match="n_components"):
        genlab.create("factor_analysis", n_components=6, method="ppca").fit(factors)
    x = factors.x[:50].clone()
    x[3, 3] = float("nan")
    with pytest.raises(DataError, match="1 non-finite"):
        genlab.create("factor_analysis").fit(x)
    with pytest.raises(DataError, match="at least 2 rows"):
        genlab.create("factor_analysis").fit(factors.x[:1])
    model = genlab.create("factor_analysis").fit(factors)
    with pytest.raises(DataError, match="non-finite"):
        model.log_likelihood(x)
    with pytest.raises(DataError, match="expected"):
        model.log_likelihood(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="unknown option"):
        model.sample(3, temperature=1.0)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(3, cond={"label": torch.zeros(3, dtype=torch.int64)})
    with pytest.raises(ConfigError, match="rotation"):
        genlab.create("factor_analysis", method="ppca", rotation="varimax")
    with pytest.raises(ConfigError, match="rotation"):
        genlab.create("factor_analysis", rotation="promax")
    with pytest.raises(ConfigError, match="n_components"):
        FactorAnalysisConfig(n_components=0)
    with pytest.raises(ConfigError, match="method"):
        FactorAnalysisConfig(method="ica")
    with pytest.raises(GenlabError, match="fit the model first"):
        genlab.create("factor_analysis").sample(2)
