"""2-D toy sources: shapes, seeding, the reference Gaussian mixtures and option errors."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from genlab.core.errors import DataError
from genlab.data import load, source_options

TOYS = [
    "moons",
    "circles",
    "8gaussians",
    "25gaussians",
    "swissroll",
    "checkerboard",
    "pinwheel",
    "spirals",
]


@pytest.mark.parametrize("name", TOYS)
def test_toy_loads_with_shape_dtype_and_spec(name):
    data = load(name, "train", num_samples=300)
    assert data.x.shape == (300, 2)
    assert data.x.dtype == torch.float32
    assert torch.isfinite(data.x).all()
    assert data.spec.modality == "points"
    assert data.spec.shape == (2,)
    assert data.spec.name == name
    assert data.labels is None
    assert not data.dynamic_binarize
    assert len(load(name, "test", num_samples=7)) == 7


@pytest.mark.parametrize("name", TOYS)
def test_toy_options_are_keyword_only_with_num_samples_and_seed(name):
    options = source_options(name)
    assert options["num_samples"] == 5000
    assert options["seed"] == 0
    assert len(load(name).x) == 5000


@pytest.mark.parametrize("name", TOYS)
def test_toy_seeding(name):
    a = load(name, "train", num_samples=200, seed=3).x
    b = load(name, "train", num_samples=200, seed=3).x
    other_seed = load(name, "train", num_samples=200, seed=4).x
    test = load(name, "test", num_samples=200, seed=3).x
    assert torch.equal(a, b)
    assert not torch.equal(a, other_seed)
    assert not torch.equal(a, test)


@pytest.mark.parametrize(
    ("name", "modes", "std"),
    [
        (
            "8gaussians",
            [(2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)) for k in range(8)],
            0.02,
        ),
        ("25gaussians", [(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], 0.05),
    ],
)
def test_gaussian_mixture_modes_and_std(name, modes, std):
    data = load(name, "train", num_samples=50_000)
    expected = torch.tensor(modes, dtype=torch.float64)
    info_modes = data.info["modes"]
    assert data.info["std"] == std
    assert info_modes.shape == expected.shape
    # The same set of centres, in whatever order.
    assert torch.cdist(expected, info_modes.double()).min(dim=1).values.max() < 1e-12

    x = data.x.double()
    dist = torch.cdist(x, expected)  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)
    assert nearest_dist.max() < 5 * std * math.sqrt(2)
    assert (x - expected[nearest]).abs().max() < 5 * std
    counts = torch.bincount(nearest, minlength=len(modes))
    # Equal weights: every count within 5 binomial standard deviations of N / K.
    mean = len(x) / len(modes)
    assert (counts - mean).abs().max() < 5 * math.sqrt(mean)
    for k in range(len(modes)):
        residual = x[nearest == k] - expected[k]
        empirical_std = residual.std(dim=0)
        assert torch.allclose(empirical_std, torch.full((2,), std, dtype=torch.float64), rtol=0.1)
        assert residual.mean(dim=0).abs().max() < 5 * std / math.sqrt(len(residual))


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_true_log_density_matches_scipy_mixture(name):
    data = load(name, "test", num_samples=50)
    modes = data.info["modes"].double().numpy()
    std = data.info["std"]
    rng = np.random.default_rng(0)
    # Points on the data and far from it; all exactly representable in float32, so that
    # float32 and float64 inputs name the same points.
    far = rng.uniform(-5, 5, size=(50, 2)).astype(np.float32)
    points = np.concatenate([data.x.numpy(), far]).astype(np.float64)
    component_logpdf = np.stack(
        [multivariate_normal(mean=m, cov=std**2 * np.eye(2)).logpdf(points) for m in modes], axis=1
    )
    expected = logsumexp(component_logpdf, axis=1) - math.log(len(modes))
    for dtype in (torch.float32, torch.float64):
        got = data.true_log_density(torch.from_numpy(points).to(dtype))
        assert got.dtype == torch.float64
        assert got.shape == (100,)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_eight_gaussians_density_integrates_to_one_near_a_mode():
    # Each mode holds 1/8 of the mass; integrate the density over a box of +-6 sigma round one.
    data = load("8gaussians", num_samples=10)
    step = 0.0005
    grid = torch.arange(-0.12, 0.12, step, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid + 2.0, grid, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    mass = data.true_log_density(points).exp().sum().item() * step**2
    assert mass == pytest.approx(1 / 8, rel=1e-3)


@pytest.mark.parametrize("name", TOYS)
@pytest.mark.parametrize("num_samples", [0, -5, 2.5])
def test_bad_num_samples_raises(name, num_samples):
    with pytest.raises(DataError, match="num_samples"):
        load(name, num_samples=num_samples)


@pytest.mark.parametrize("name", ["moons", "circles", "swissroll", "spirals"])
def test_negative_noise_raises(name):
    with pytest.raises(DataError, match="noise must be a number >= 0"):
        load(name, noise=-0.1)


def test_negative_seed_raises():
    with pytest.raises(DataError, match="seed"):
        load("moons", seed=-1)


def test_unknown_option_lists_allowed_options():
    with pytest.raises(DataError) as info:
        load("moons", nosie=0.1)
    message = str(info.value)
    assert "nosie" in message
    assert "allowed: noise, num_samples, seed" in message
    with pytest.raises(DataError, match="allowed: num_samples, seed"):
        load("8gaussians", noise=0.1)


def test_unknown_name_and_split_raise():
    with pytest.raises(DataError, match="unknown data set 'mooons'.*moons"):
        load("mooons")
    with pytest.raises(DataError, match="split 'valid'"):
        load("moons", "valid")
