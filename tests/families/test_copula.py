"""Maths and contract tests for the `copula` model (Gaussian copula for tables and points)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import ks_2samp, multivariate_normal, norm

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.core.persist import load_model
from genlab.data.dataset import Dataset
from genlab.data.tables import adult_path, codec_from_spec, dataset_from_frame
from genlab.families.classical.copula import (
    CopulaConfig,
    EmpiricalMarginal,
    GaussianCopula,
    _fit_family,
    _fit_parametric,
)
from genlab.metrics.tables import column_shapes
from genlab.train.config import TrainConfig


def correlated_normals(n: int, rho: float, seed: int = 0) -> np.ndarray:
    cov = np.array([[1.0, rho], [rho, 1.0]])
    return np.random.default_rng(seed).multivariate_normal([0.0, 0.0], cov, size=n)


def draw(model, n: int, seed: int = 0) -> torch.Tensor:
    return model.sample(n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def skewed_points() -> Dataset:
    """Correlation 0.7 on the normal scale, marginals exp(g1) (lognormal) and Phi(g2) (uniform)."""
    g = correlated_normals(5000, 0.7)
    x = np.stack([np.exp(g[:, 0]), norm.cdf(g[:, 1])], axis=1)
    return Dataset(x=torch.from_numpy(x).float(), spec=DataSpec("points", (2,), name="skewed"))


def mixed_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Numeric, integer, categorical, boolean, constant and missing cells, with dependence."""
    rng = np.random.default_rng(seed)
    g = correlated_normals(n, 0.8, seed)
    colour = np.where(g[:, 1] < -0.5, "red", np.where(g[:, 1] < 0.7, "green", "blue"))
    size = np.exp(g[:, 0]) * 10
    size_text = np.char.mod("%.3f", size).astype(object)
    size_text[rng.random(n) < 0.1] = ""  # 10% missing numeric cells
    shade = rng.choice(np.array(["dark", "light", ""], dtype=object), size=n, p=[0.5, 0.4, 0.1])
    return pd.DataFrame(
        {
            "size": size_text,
            "count": rng.poisson(3, size=n).astype(str),
            "colour": colour,
            "flag": np.where(g[:, 0] > 0, "yes", "no"),
            "constant": "same",
            "shade": shade,
        }
    )


@pytest.fixture(scope="module")
def mixed() -> Dataset:
    return dataset_from_frame(mixed_frame(), "train", name="mixed", test_fraction=0.2)


# ---------------------------------------------------------------------------------------------
# Maths


def test_recovers_a_known_correlation(skewed_points):
    model = genlab.create("copula").fit(skewed_points, train=TrainConfig(seed=0))
    assert abs(model.correlation_[0, 1] - 0.7) < 0.05
    assert isinstance(model.marginals_[0], EmpiricalMarginal)
    samples = draw(model, 5000).double().numpy()
    # The samples keep the dependence: Spearman's rho of a Gaussian copula is 6/pi asin(rho/2).
    spearman = pd.DataFrame(samples).corr(method="spearman").iloc[0, 1]
    assert abs(spearman - 6 / np.pi * np.arcsin(0.35)) < 0.05


def test_samples_match_the_marginals(skewed_points):
    model = genlab.create("copula").fit(skewed_points)
    samples = draw(model, 5000).double().numpy()
    data = skewed_points.x.double().numpy()
    for d in range(2):
        assert ks_2samp(samples[:, d], data[:, d]).statistic < 0.05
    assert samples[:, 0].min() > 0  # the lognormal stays positive away from its tail mass


def test_gaussian_marginals_give_the_multivariate_normal():
    rng = np.random.default_rng(1)
    cov = np.array([[2.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 0.5]])
    x = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=2000)
    model = genlab.create("copula", marginals="parametric", parametric_family="gaussian")
    model.fit(torch.from_numpy(x))
    mean = np.array([m.params[0] for m in model.marginals_])
    std = np.array([m.params[1] for m in model.marginals_])
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=0), rtol=1e-12)
    implied = model.correlation_ * np.outer(std, std)
    ll = model.log_likelihood(torch.from_numpy(x[:300]))
    assert ll.kind == "exact"
    expected = multivariate_normal(mean, implied).logpdf(x[:300])
    np.testing.assert_allclose(ll.nats.numpy(), expected, rtol=0, atol=1e-6)


def test_empirical_likelihood_normalizes_1d():
    x = np.random.default_rng(2).gamma(2.0, size=(400, 1))
    model = genlab.create("copula").fit(torch.from_numpy(x))
    grid = np.linspace(-20.0, 60.0, 800001)
    density = model.log_likelihood(torch.from_numpy(grid[:, None])).nats.exp().numpy()
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-3


@pytest.mark.parametrize("marginals", ["empirical", "parametric"])
def test_copula_density_integrates_to_the_marginal(skewed_points, marginals):
    """For each x1, the integral over x2 of p(x1, x2) is f1(x1): c has uniform margins."""
    data = Dataset(x=skewed_points.x[:600], spec=skewed_points.spec)
    model = genlab.create("copula", marginals=marginals).fit(data)
    x2 = np.linspace(-3.0, 4.0, 100001)
    for x1 in (0.05, 1.0, 12.0):
        rows = np.stack([np.full_like(x2, x1), x2], axis=1)
        joint = model.log_likelihood(torch.from_numpy(rows)).nats.exp().numpy()
        f1 = np.exp(model.marginals_[0].log_pdf(np.array([x1])))[0]
        assert abs(np.trapezoid(joint, x2) / f1 - 1.0) < 2e-3


def test_integer_ties_come_back_exactly():
    """A column that is 0 in 90% of rows (like capital-gain) keeps its point mass."""
    rng = np.random.default_rng(3)
    values = np.where(rng.random(4000) < 0.9, 0, rng.integers(100, 5000, size=4000))
    frame = pd.DataFrame(
        {"gain": values.astype(str), "age": rng.integers(18, 80, 4000).astype(str)}
    )
    data = dataset_from_frame(frame, "train", name="ties", test_fraction=0.2)
    model = genlab.create("copula").fit(data)
    rows = model.sample_frame(5000, generator=torch.Generator().manual_seed(0))
    real = data.info["dataframe"]
    assert abs((rows["gain"] == 0).mean() - (real["gain"] == 0).mean()) < 0.015
    for column in ("gain", "age"):
        assert ks_2samp(rows[column], real[column]).statistic < 0.03


def test_parametric_family_selection():
    x = np.random.default_rng(4).gamma(2.0, 1.5, size=3000)
    chosen, z = _fit_parametric(x, "best", "aic")
    assert chosen.family == "gamma" and z.shape == x.shape
    aic = {}
    for family in ("gaussian", "beta", "gamma", "truncnorm"):
        fitted = _fit_family(family, x)
        if fitted is not None:
            aic[family] = 2 * len(fitted.params) - 2 * fitted.log_pdf(x).sum()
    assert chosen.family == min(aic, key=aic.get)
    model = genlab.create("copula", marginals="parametric", parametric_family="beta")
    model.fit(torch.from_numpy(np.stack([x, -x], axis=1)))
    assert [m.family for m in model.marginals_] == ["beta", "beta"]


# ---------------------------------------------------------------------------------------------
# Tables


def test_mixed_table_round_trip(mixed):
    model = genlab.create("copula").fit(mixed, train=TrainConfig(seed=0))
    real = mixed.info["dataframe"]
    rows = model.sample_frame(4000, generator=torch.Generator().manual_seed(1))
    assert list(rows.columns) == list(real.columns)
    assert rows.dtypes.equals(real.dtypes)
    assert list(rows["colour"].cat.categories) == list(real["colour"].cat.categories)
    assert (rows["constant"] == "same").all()  # a one-category column is constant
    for column in ("colour", "shade"):
        p = real[column].value_counts(normalize=True, dropna=False)
        q = rows[column].value_counts(normalize=True, dropna=False)
        assert 0.5 * p.sub(q, fill_value=0).abs().sum() < 0.03
    assert abs(rows["size"].isna().mean() - real["size"].isna().mean()) < 0.02
    assert abs(rows["flag"].mean() - real["flag"].mean()) < 0.03
    assert ks_2samp(rows["size"].dropna(), real["size"].dropna()).statistic < 0.05
    assert ks_2samp(rows["count"], real["count"]).statistic < 0.05
    # The dependence between the numeric column and the categories survives.
    real_means = real.groupby("colour", observed=True)["size"].mean()
    fake_means = rows.groupby("colour", observed=True)["size"].mean()
    assert list(real_means.sort_values().index) == list(fake_means.sort_values().index)

    x = model.sample(4000, generator=torch.Generator().manual_seed(1))
    assert x.shape == (4000, mixed.spec.shape[0]) and x.dtype == torch.float32
    pd.testing.assert_frame_equal(codec_from_spec(mixed.spec).decode(x), rows)


def test_table_likelihood(mixed):
    model = genlab.create("copula").fit(mixed)
    ll = model.log_likelihood(mixed.x[:200])
    assert ll.kind == "estimate" and ll.nats.shape == (200,) and torch.isfinite(ll.nats).all()
    from_frame = model.log_likelihood(mixed.info["dataframe"].iloc[:200])
    torch.testing.assert_close(ll.nats, from_frame.nats, rtol=0, atol=1e-9)
    test = dataset_from_frame(mixed_frame(), "test", name="mixed", test_fraction=0.2)
    assert torch.isfinite(model.log_likelihood(test.x).nats).all()


def test_numeric_table_likelihood_is_exact():
    frame = pd.DataFrame(correlated_normals(500, 0.5), columns=["a", "b"]).astype(str)
    data = dataset_from_frame(frame, "train", name="numbers", test_fraction=0.2)
    model = genlab.create("copula").fit(data)
    assert model.log_likelihood(data.x[:5]).kind == "exact"


@pytest.mark.skipif(adult_path() is None, reason="UCI Adult (adult.data) is not available")
def test_adult_column_shapes():
    train = genlab.data.load("adult")
    test = genlab.data.load("adult", split="test")
    model = genlab.create("copula").fit(train, train=TrainConfig(seed=0))
    rows = model.sample_frame(2000, generator=torch.Generator().manual_seed(0))
    real = test.info["dataframe"]
    assert list(rows.columns) == list(real.columns)
    for column in real.columns:
        if isinstance(real[column].dtype, pd.CategoricalDtype):
            assert list(rows[column].cat.categories) == list(real[column].cat.categories)
    assert column_shapes(real, rows)["mean"] > 0.8
    assert torch.isfinite(model.log_likelihood(test.x[:500]).nats).all()


# ---------------------------------------------------------------------------------------------
# State, seeds and errors


@pytest.mark.parametrize("config", [{}, {"marginals": "parametric"}, {"max_bins": 7}])
def test_save_load_round_trip_points(skewed_points, tmp_path, config):
    model = genlab.create("copula", **config).fit(skewed_points)
    loaded = load_model(model.save(tmp_path / "model"))
    assert isinstance(loaded, GaussianCopula) and loaded.config == model.config
    assert torch.equal(draw(model, 300, 5), draw(loaded, 300, 5))
    x = skewed_points.x[:100]
    assert torch.equal(model.log_likelihood(x).nats, loaded.log_likelihood(x).nats)


def test_save_load_round_trip_table(mixed, tmp_path):
    model = genlab.create("copula").fit(mixed)
    loaded = load_model(model.save(tmp_path / "model"))
    assert loaded.spec == mixed.spec and loaded.missing_rates_ == model.missing_rates_
    assert torch.equal(draw(model, 300, 2), draw(loaded, 300, 2))
    gen = torch.Generator().manual_seed(2)
    pd.testing.assert_frame_equal(
        model.sample_frame(50, generator=gen), loaded.sample_frame(50, generator=gen.manual_seed(2))
    )
    assert torch.equal(
        model.log_likelihood(mixed.x[:100]).nats, loaded.log_likelihood(mixed.x[:100]).nats
    )
    assert model.log_likelihood(mixed.x[:0]).nats.shape == (0,)
    assert draw(model, 0).shape == (0, mixed.spec.shape[0]) and len(model.sample_frame(0)) == 0


def test_seeded_reproducibility(mixed):
    a = GaussianCopula(CopulaConfig()).fit(mixed, train=TrainConfig(seed=3))
    b = GaussianCopula(CopulaConfig()).fit(mixed, train=TrainConfig(seed=3))
    c = GaussianCopula(CopulaConfig()).fit(mixed, train=TrainConfig(seed=4))
    np.testing.assert_array_equal(a.correlation_, b.correlation_)
    assert not np.array_equal(a.correlation_, c.correlation_)  # the tie/category draws differ
    assert torch.equal(draw(a, 100, 7), draw(a, 100, 7))
    assert not torch.equal(draw(a, 100, 7), draw(a, 100, 8))


def test_one_row_table_is_rejected():
    frame = pd.DataFrame({"a": ["1.5", "2.5"], "b": ["x", "y"]})
    one_row = dataset_from_frame(frame, "train", name="tiny", test_fraction=0.5)
    assert len(one_row) == 1
    with pytest.raises(DataError, match="at least 2"):
        genlab.create("copula").fit(one_row)


def test_bad_data_is_rejected(skewed_points):
    x = skewed_points.x.clone()
    x[4, 1] = float("nan")
    with pytest.raises(DataError, match="1 non-finite"):
        genlab.create("copula").fit(x)
    model = genlab.create("copula").fit(skewed_points)
    with pytest.raises(DataError, match="non-finite"):
        model.log_likelihood(x[:10])
    with pytest.raises(DataError, match="expected"):
        model.log_likelihood(torch.zeros(3, 5))
    with pytest.raises(DataError, match="sample_frame"):
        model.sample_frame(3)
    with pytest.raises(DataError, match="token ids"):
        genlab.create("copula").fit(
            Dataset(x=torch.zeros(4, 3, dtype=torch.int64), spec=DataSpec("text", (3,)))
        )


def test_options_and_config_errors(skewed_points):
    model = genlab.create("copula").fit(skewed_points)
    with pytest.raises(ConfigError, match="unknown option"):
        model.sample(3, temperature=1.0)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(3, cond={"label": torch.zeros(3, dtype=torch.int64)})
    with pytest.raises(ConfigError, match="unknown option"):
        model.log_likelihood(skewed_points.x[:3], steps=2)
    with pytest.raises(ConfigError, match="unknown option"):
        GaussianCopula(CopulaConfig()).fit(skewed_points, epochs=2)
    with pytest.raises(ConfigError, match="marginals"):
        genlab.create("copula", marginals="kde")
    with pytest.raises(ConfigError, match="max_bins"):
        CopulaConfig(max_bins=0)
    with pytest.raises(ConfigError, match="shrinkage"):
        CopulaConfig(shrinkage=1.0)
    with pytest.raises(ConfigError, match="pseudocount"):
        CopulaConfig(pseudocount=-1.0)
    with pytest.raises(GenlabError, match="fit the model first"):
        genlab.create("copula").sample(3)
