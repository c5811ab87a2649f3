"""FID, KID, Inception Score, MMD and the classifier two-sample test against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.spatial.distance import pdist
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from genlab.core.errors import ConfigError, DataError, GenlabError
from genlab.metrics.distances import (
    classifier_two_sample_test,
    fid,
    frechet_distance,
    inception_score,
    kid,
    mmd_rbf,
)

NUM_FEATURES = 12


class RandomFeatures(nn.Module):
    """A fixed random network from images (N, 3, 8, 8) to features (N, 12), in float64."""

    num_features = NUM_FEATURES

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, NUM_FEATURES),
        ).double()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.double())


def _images(num: int, seed: int, power: float = 1.0) -> torch.Tensor:
    """Images (num, 3, 8, 8) in [0, 1]; power > 1 darkens them, a different distribution."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num, 3, 8, 8, generator=generator, dtype=torch.float64) ** power


def _random_covariance(rng: np.random.Generator, dims: int) -> np.ndarray:
    a = rng.normal(size=(dims, dims))
    return a @ a.T / dims + 0.1 * np.eye(dims)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for dims in (1, 3, 16):
        mu1, mu2 = rng.normal(size=dims), rng.normal(size=dims)
        sigma1, sigma2 = _random_covariance(rng, dims), _random_covariance(rng, dims)
        reference = (
            np.sum((mu1 - mu2) ** 2)
            + np.trace(sigma1)
            + np.trace(sigma2)
            - 2 * np.trace(sqrtm(sigma1 @ sigma2)).real
        )
        value = frechet_distance(mu1, sigma1, mu2, sigma2)
        assert value == pytest.approx(reference, rel=1e-5)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25, 2.0]), np.array([9.0, 1.0, 0.25, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert abs(value - expected) < 1e-8
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_is_exact_for_singular_covariances():
    # rank-deficient covariances: the symmetric formulation needs no diagonal offset
    zero = np.zeros(2)
    value = frechet_distance(zero, np.diag([1.0, 0.0]), zero, np.diag([4.0, 0.0]))
    assert abs(value - 1.0) < 1e-12


def test_frechet_distance_accepts_tensors():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=3), _random_covariance(rng, 3)
    as_tensors = frechet_distance(
        torch.from_numpy(mu).float(), torch.from_numpy(sigma), torch.zeros(3), torch.eye(3)
    )
    assert as_tensors == pytest.approx(
        frechet_distance(mu.astype(np.float32), sigma, np.zeros(3), np.eye(3)), rel=1e-12
    )


def test_fid_of_large_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = np.array([0.0, 0.0, 1.0]), np.array([1.0, -1.0, 1.0])
    var1, var2 = np.array([1.0, 2.0, 0.5]), np.array([1.0, 0.5, 2.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    x = mu1 + np.sqrt(var1) * rng.normal(size=(50_000, 3))
    y = mu2 + np.sqrt(var2) * rng.normal(size=(50_000, 3))
    assert fid(x, y) == pytest.approx(expected, abs=0.05)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fid_matches_torchmetrics_with_the_same_feature_network():
    network = RandomFeatures()
    real_images, fake_images = _images(200, seed=1), _images(150, seed=2, power=3.0)
    metric = FrechetInceptionDistance(feature=network, normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(real_images, real=True)
    metric.update(fake_images, real=False)
    reference = float(metric.compute())
    assert reference > 0.01  # the two image distributions differ
    with torch.no_grad():
        value = fid(network(real_images), network(fake_images))
    assert value == pytest.approx(reference, rel=1e-5)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_matches_torchmetrics_on_the_full_sets():
    network = RandomFeatures()
    real_images, fake_images = _images(80, seed=3), _images(80, seed=4, power=3.0)
    metric = KernelInceptionDistance(feature=network, subsets=1, subset_size=80, coef=1.0)
    metric.update(real_images, real=True)
    metric.update(fake_images, real=False)
    reference_mean, _ = metric.compute()
    assert float(reference_mean) > 0.001
    with torch.no_grad():
        mean, std = kid(network(real_images), network(fake_images), num_subsets=1, subset_size=80)
    assert mean == pytest.approx(float(reference_mean), rel=1e-5)
    assert std == 0.0


def test_kid_matches_the_unbiased_estimator_by_loops():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)) + 0.5

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    n = 7
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    across = sum(k(x[i], y[j]) for i in range(n) for j in range(n))
    expected = within / (n * (n - 1)) - 2 * across / n**2
    assert kid(x, y, num_subsets=3, subset_size=7)[0] == pytest.approx(expected, rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same_mean, same_std = kid(x, y, num_subsets=10, subset_size=200)
    shifted_mean, _ = kid(x, y + 1.0, num_subsets=10, subset_size=200)
    assert abs(same_mean) < 0.02
    assert same_std > 0
    assert shifted_mean > 1.0
    assert kid(x, y, num_subsets=3, subset_size=200, seed=3) == kid(
        x, y, num_subsets=3, subset_size=200, seed=3
    )


def test_kid_clamps_the_subset_size_with_a_warning():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(40, 4))
    with pytest.warns(UserWarning, match="subset_size=1000"):
        clamped = kid(x, y, num_subsets=5)
    assert clamped == kid(x, y, num_subsets=5, subset_size=40)


def test_inception_score_of_uniform_one_hot_predictions_is_the_class_count():
    num_classes = 5
    probs = np.eye(num_classes)[np.arange(100) % num_classes]
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(num_classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_constant_predictions_is_one():
    probs = np.tile([0.2, 0.5, 0.3], (40, 1))
    assert inception_score(probs, splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)
    logits = torch.randn(1, 6).repeat(30, 1)
    assert inception_score(logits, splits=3)[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Metric `InceptionScore` will save")
@pytest.mark.filterwarnings("ignore:std\\(\\). degrees of freedom")
def test_inception_score_matches_torchmetrics_on_logits():
    torch.manual_seed(0)
    logits = 3 * torch.randn(120, 10, dtype=torch.float64)
    metric = InceptionScore(feature=nn.Identity(), splits=1)
    metric.update(logits)
    reference, _ = metric.compute()
    assert inception_score(logits, splits=1)[0] == pytest.approx(float(reference), rel=1e-10)
    from_probs = inception_score(torch.softmax(logits, dim=1), splits=1, from_logits=False)[0]
    assert from_probs == pytest.approx(float(reference), rel=1e-10)


def _mmd_by_loops(x, y, bandwidth):
    def k(a, b):
        return math.exp(-np.sum((a - b) ** 2) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_rbf_matches_the_estimator_by_loops():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(6, 2)) + 0.7
    median = float(np.median(pdist(np.concatenate([x, y]))))
    assert mmd_rbf(x, y) == pytest.approx(_mmd_by_loops(x, y, median), rel=1e-10)
    assert mmd_rbf(x, y, bandwidth=0.5) == pytest.approx(_mmd_by_loops(x, y, 0.5), rel=1e-10)


def test_mmd_rbf_is_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    assert abs(mmd_rbf(x, y)) < 0.01
    assert mmd_rbf(x, y + 1.0) > 0.1


def test_classifier_two_sample_test_separates_only_different_distributions():
    rng = np.random.default_rng(10)
    same = classifier_two_sample_test(rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)))
    assert abs(same["accuracy"] - 0.5) < 0.1
    assert same["n"] == 2000 and same["n_train"] == 2000
    assert same["p_value"] > 0.001
    separated = classifier_two_sample_test(
        rng.normal(size=(1000, 2)), rng.normal(size=(1500, 2)) + 3.0, seed=1
    )
    assert separated["accuracy"] > 0.9
    assert separated["n"] == 1000  # the larger set is cut to 1,000, half of 2,000 held out
    assert separated["p_value"] < 1e-6


def test_classifier_two_sample_test_is_reproducible():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(400, 3)) + 0.3
    assert classifier_two_sample_test(x, y, seed=4) == classifier_two_sample_test(x, y, seed=4)


TWO_SET_METRICS = {
    "fid": fid,
    "kid": lambda a, b: kid(a, b, num_subsets=2, subset_size=5),
    "mmd_rbf": mmd_rbf,
    "c2st": classifier_two_sample_test,
}


@pytest.mark.parametrize("name", sorted(TWO_SET_METRICS))
def test_two_set_metrics_reject_bad_features(name):
    metric = TWO_SET_METRICS[name]
    rng = np.random.default_rng(12)
    good = rng.normal(size=(40, 3))
    with pytest.raises(DataError, match="same feature network"):
        metric(good, rng.normal(size=(40, 4)))
    with_nan = good.copy()
    with_nan[7, 1] = np.nan
    with pytest.raises(DataError, match="NaN or infinite.*row 7"):
        metric(good, with_nan)
    with_inf = good.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        metric(with_inf, good)
    with pytest.raises(DataError, match="empty"):
        metric(np.zeros((0, 3)), good)
    with pytest.raises(DataError, match=r"matrix \(N, D\)"):
        metric(good, torch.zeros(40, 3, 2))
    with pytest.raises(DataError, match="cannot be read as numbers"):
        metric(good, [["a", "b", "c"]])


def test_fid_with_no_more_samples_than_dimensions_says_the_covariance_is_singular():
    rng = np.random.default_rng(13)
    with pytest.raises(DataError, match="singular.*more than 8 samples"):
        fid(rng.normal(size=(100, 8)), rng.normal(size=(8, 8)))


def test_frechet_distance_rejects_bad_parameters():
    with pytest.raises(DataError, match="covariance for each mean"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(DataError, match="not a covariance"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(DataError, match="shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))


def test_bad_options_and_small_sets_raise_genlab_errors():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(20, 2))
    with pytest.raises(ConfigError, match="num_subsets"):
        kid(x, x, num_subsets=0)
    with pytest.raises(ConfigError, match="gamma"):
        kid(x, x, subset_size=10, gamma=-1.0)
    with pytest.raises(DataError, match="at least 2 samples"):
        kid(x[:1], x)
    with pytest.raises(DataError, match="at least 2 samples"):
        mmd_rbf(x[:1], x)
    with pytest.raises(DataError, match="bandwidth="):
        mmd_rbf(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="bandwidth"):
        mmd_rbf(x, x, bandwidth=0.0)
    with pytest.raises(DataError, match="too few"):
        classifier_two_sample_test(x[:3], x)
    with pytest.raises(ConfigError, match="test_fraction"):
        classifier_two_sample_test(x, x, test_fraction=1.0)
    with pytest.raises(DataError, match="per split"):
        inception_score(np.eye(3), splits=10)
    with pytest.raises(DataError, match="sum 1"):
        inception_score(np.full((4, 3), 0.5), splits=1, from_logits=False)
    with pytest.raises(GenlabError):
        inception_score(np.ones(5))
