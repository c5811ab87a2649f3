"""2-D toy distributions: float32 points (N, 2) in the distribution's own units.

Every source draws from a numpy generator seeded by `(seed, split)`, so the train and test
splits are independent draws and the same seed always gives identical tensors. Most shapes
follow the FFJORD toy set (Grathwohl et al., 2019); the two Gaussian mixtures are the reference
mode-coverage problems of STYLE.md and carry their exact log density.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from sklearn.datasets import make_circles, make_moons, make_swiss_roll
from torch import Tensor

from genlab.core.contract import DataSpec
from genlab.core.errors import DataError
from genlab.data import source
from genlab.data.dataset import Dataset

NUM_SAMPLES = 5000
# Mixed into the seed so that train and test are different draws of the same distribution.
_SPLIT_STREAM = {"train": 0, "test": 1}


def _rng(name: str, split: str, num_samples: int, seed: int) -> np.random.Generator:
    """Check the common options and return the generator for this (seed, split)."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise DataError(
            f"data set {name}: num_samples must be a positive integer, got {num_samples!r}; "
            "pass e.g. num_samples=5000"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(
            f"data set {name}: seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0"
        )
    return np.random.default_rng([seed, _SPLIT_STREAM[split]])


def _check_noise(name: str, noise: float) -> None:
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise >= 0:
        raise DataError(
            f"data set {name}: noise must be a number >= 0, got {noise!r}; pass e.g. noise=0.05"
        )


def _sklearn_seed(rng: np.random.Generator) -> int:
    """An integer `random_state` for scikit-learn, which does not take numpy Generators."""
    return int(rng.integers(2**31 - 1))


def _points(name: str, x: np.ndarray, **extra) -> Dataset:
    spec = DataSpec(modality="points", shape=(2,), name=name)
    return Dataset(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), spec=spec, **extra
    )


@source("moons")
def moons(
    split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0, noise: float = 0.05
) -> Dataset:
    """Two interleaving half circles, centred and scaled by 2 to span about [-3, 3] x [-1.5, 1.5].

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.
        noise: std of the Gaussian noise added by `sklearn.datasets.make_moons`, before scaling.

    Returns:
        Dataset with x float32 (N, 2).
    """
    rng = _rng("moons", split, num_samples, seed)
    _check_noise("moons", noise)
    x, _ = make_moons(num_samples, noise=noise, random_state=_sklearn_seed(rng))
    return _points("moons", (x - [0.5, 0.25]) * 2.0)


@source("circles")
def circles(
    split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0, noise: float = 0.08
) -> Dataset:
    """Two concentric circles of radius 3 and 1.5 (`make_circles` with factor 0.5, scaled by 3).

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.
        noise: std of the Gaussian noise added by `make_circles`, before scaling.

    Returns:
        Dataset with x float32 (N, 2).
    """
    rng = _rng("circles", split, num_samples, seed)
    _check_noise("circles", noise)
    x, _ = make_circles(num_samples, factor=0.5, noise=noise, random_state=_sklearn_seed(rng))
    return _points("circles", x * 3.0)


@source("swissroll")
def swissroll(
    split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0, noise: float = 1.0
) -> Dataset:
    """The (x, z) plane of scikit-learn's swiss roll divided by 5, spanning about [-3, 3]^2.

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.
        noise: std of the Gaussian noise added by `make_swiss_roll`, before scaling.

    Returns:
        Dataset with x float32 (N, 2).
    """
    rng = _rng("swissroll", split, num_samples, seed)
    _check_noise("swissroll", noise)
    x, _ = make_swiss_roll(num_samples, noise=noise, random_state=_sklearn_seed(rng))
    return _points("swissroll", x[:, [0, 2]] / 5.0)


@source("checkerboard")
def checkerboard(split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> Dataset:
    """Uniform on the 8 dark squares of a 4 x 4 checkerboard of side-2 squares over [-4, 4]^2.

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.

    Returns:
        Dataset with x float32 (N, 2).
    """
    rng = _rng("checkerboard", split, num_samples, seed)
    x1 = rng.random(num_samples) * 4 - 2
    x2 = rng.random(num_samples) - rng.integers(0, 2, num_samples) * 2
    # Shift the second coordinate up by one square in every other column.
    x2 = x2 + np.floor(x1) % 2
    return _points("checkerboard", np.stack([x1, x2], axis=1) * 2)


@source("pinwheel")
def pinwheel(split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> Dataset:
    """Five curved arms (radial std 0.3, tangential std 0.1, twist rate 0.25), as in FFJORD.

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.

    Returns:
        Dataset with x float32 (N, 2).
    """
    rng = _rng("pinwheel", split, num_samples, seed)
    num_arms, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    arm = rng.integers(num_arms, size=num_samples)
    features = rng.standard_normal((num_samples, 2)) * [radial_std, tangential_std]
    features[:, 0] += 1.0
    # Each arm is rotated to its own angle and twisted by an angle growing with the radius.
    angle = 2 * math.pi * arm / num_arms + rate * np.exp(features[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    rotations = np.stack([cos, -sin, sin, cos], axis=1).reshape(-1, 2, 2)  # (N, 2, 2)
    x = 2 * np.einsum("ni,nij->nj", features, rotations)
    return _points("pinwheel", x)


@source("spirals")
def spirals(
    split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0, noise: float = 0.1
) -> Dataset:
    """Two interleaved spirals of 1.5 turns (point-symmetric copies), spanning about [-4, 4]^2.

    Args:
        split: "train" or "test".
        num_samples: number of points N (the first spiral gets N // 2, the second the rest).
        seed: seed of the draw; the test split uses an independent stream of the same seed.
        noise: std of the Gaussian noise added to every point.

    Returns:
        Dataset with x float32 (N, 2), shuffled so that the two spirals are mixed.
    """
    rng = _rng("spirals", split, num_samples, seed)
    _check_noise("spirals", noise)
    # sqrt of a uniform makes the density along the arc even, since arc length grows with angle.
    angle = np.sqrt(rng.random(num_samples)) * 3 * math.pi
    arm = np.stack([-np.cos(angle) * angle, np.sin(angle) * angle], axis=1)  # (N, 2)
    arm = arm + rng.random((num_samples, 2)) * 0.5
    sign = np.where(np.arange(num_samples) < num_samples // 2, 1.0, -1.0)[:, None]
    x = sign * arm / 3 + rng.standard_normal((num_samples, 2)) * noise
    return _points("spirals", x[rng.permutation(num_samples)])


def gaussian_mixture_log_density(x: Tensor, *, modes: Tensor, std: float) -> Tensor:
    """Exact log density of an equal-weight isotropic Gaussian mixture.

    Args:
        x: (B, 2) points.
        modes: (K, 2) mode centres.
        std: the standard deviation of every component, in each coordinate.

    Returns:
        (B,) float64 log p(x) in nats: logsumexp_k log N(x; modes_k, std^2 I) - log K.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    modes = modes.to(device=x.device, dtype=torch.float64)
    num_modes, dim = modes.shape
    sq_dist = ((x[:, None, :] - modes[None, :, :]) ** 2).sum(-1)  # (B, K)
    log_norm = -0.5 * dim * math.log(2 * math.pi * std**2)
    return torch.logsumexp(-0.5 * sq_dist / std**2, dim=1) + log_norm - math.log(num_modes)


def _mixture(
    name: str, split: str, num_samples: int, seed: int, modes: np.ndarray, std: float
) -> Dataset:
    rng = _rng(name, split, num_samples, seed)
    # cos(pi / 2) is 6e-17, not 0: snap, so that the stated centres are exactly the true ones.
    modes = np.where(np.abs(modes) < 1e-12, 0.0, modes)
    component = rng.integers(len(modes), size=num_samples)
    x = modes[component] + std * rng.standard_normal((num_samples, 2))
    modes_t = torch.from_numpy(modes)  # float64: the density is exact, not float32-rounded
    density = functools.partial(gaussian_mixture_log_density, modes=modes_t, std=std)
    return _points(name, x, true_log_density=density, info={"modes": modes_t, "std": std})


@source("8gaussians")
def eight_gaussians(split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> Dataset:
    """Eight equal-weight Gaussians on a ring of radius 2 (angles k pi / 4), std 0.02.

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.

    Returns:
        Dataset with x float32 (N, 2), `true_log_density` the exact mixture density and
        `info = {"modes": float64 (8, 2) centres, "std": 0.02}` for mode-coverage metrics.
    """
    angles = np.arange(8) * math.pi / 4
    modes = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture("8gaussians", split, num_samples, seed, modes, 0.02)


@source("25gaussians")
def twenty_five_gaussians(split: str, *, num_samples: int = NUM_SAMPLES, seed: int = 0) -> Dataset:
    """Twenty-five equal-weight Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05.

    Args:
        split: "train" or "test".
        num_samples: number of points N.
        seed: seed of the draw; the test split uses an independent stream of the same seed.

    Returns:
        Dataset with x float32 (N, 2), `true_log_density` the exact mixture density and
        `info = {"modes": float64 (25, 2) centres, "std": 0.05}` for mode-coverage metrics.
    """
    grid = np.arange(-4.0, 5.0, 2.0)
    modes = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    return _mixture("25gaussians", split, num_samples, seed, modes, 0.05)
