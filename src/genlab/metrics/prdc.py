"""Precision, recall, density and coverage of generated samples, from k-NN balls in feature space.

- Precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
  Assessing Generative Models"): the share of generated samples inside the real manifold, and of
  real samples inside the generated manifold, where a manifold is the union of balls around each
  sample reaching its k-th nearest neighbour in the same set.
- Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models"): density counts how many real balls hold each generated sample (divided by
  k, so about 1 when the distributions match, and robust to real outliers); coverage is the
  share of real balls that hold at least one generated sample.

The paper defaults are k = 3 for precision and recall and k = 5 for density and coverage, which
`prdc` computes in one pass. `precision_recall_density_coverage` uses one k for all four and
returns exactly what the `prdc` package's `compute_prdc` returns.

All pairwise distances are needed, so time is O(N M D) and each set is capped (10,000 rows by
default, the sample size Naeem et al. use) by a seeded subsample with a warning. Distances are
computed in row blocks, so memory stays near 64 MB whatever N.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import pairwise_distances

from genlab.core.errors import ConfigError, DataError
from genlab.metrics.distances import ArrayLike, as_feature_matrix, check_same_dims

DEFAULT_MAX_SAMPLES = 10_000
_BLOCK_ENTRIES = 8_000_000  # float64 distances per block: 64 MB


def _row_blocks(num_rows: int, num_cols: int) -> list[slice]:
    step = max(1, _BLOCK_ENTRIES // num_cols)
    return [slice(start, min(start + step, num_rows)) for start in range(0, num_rows, step)]


def _kth_neighbour_distances(x: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Distance (N,) from each row to its k-th nearest other row, for each k in `ks`.

    Each row's distance to itself (0) is the smallest in its row, so the k-th neighbour is the
    (k + 1)-th smallest distance, as in `compute_prdc`.
    """
    radii = {k: np.empty(x.shape[0]) for k in ks}
    for block in _row_blocks(x.shape[0], x.shape[0]):
        kth = np.partition(pairwise_distances(x[block], x), ks, axis=1)
        for k in ks:
            radii[k][block] = kth[:, k]
    return radii


def _cap(x: np.ndarray, name: str, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or x.shape[0] <= max_samples:
        return x
    warnings.warn(
        f"{name} has {x.shape[0]} samples; PRDC costs O(N²) distances, so a seeded subsample "
        f"of {max_samples} is used. Pass max_samples=None to use every sample.",
        stacklevel=4,
    )
    return x[np.sort(rng.choice(x.shape[0], max_samples, replace=False))]


def _check_k(k: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"{name} must be an integer ≥ 1, got {k!r}.")
    return int(k)


def _prdc(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    k_pr: int,
    k_dc: int,
    max_samples: int | None,
    seed: int,
) -> dict[str, float]:
    real = as_feature_matrix(real_features, "real_features")
    fake = as_feature_matrix(fake_features, "fake_features")
    check_same_dims(real, fake, ("real_features", "fake_features"))
    k_pr = _check_k(k_pr, "k_pr")
    k_dc = _check_k(k_dc, "k_dc")
    if max_samples is not None:
        max_samples = _check_k(max_samples, "max_samples")
    rng = np.random.default_rng(seed)
    real = _cap(real, "real_features", max_samples, rng)
    fake = _cap(fake, "fake_features", max_samples, rng)
    ks = sorted({k_pr, k_dc})
    for name, x in (("real_features", real), ("fake_features", fake)):
        if x.shape[0] <= ks[-1]:
            raise DataError(
                f"{name} has {x.shape[0]} samples, but the {ks[-1]}-th nearest neighbour needs "
                f"at least {ks[-1] + 1}; pass more samples or a smaller k."
            )

    real_radii = _kth_neighbour_distances(real, ks)
    fake_radii = _kth_neighbour_distances(fake, ks)
    num_fake = fake.shape[0]
    fake_in_real_manifold = np.zeros(num_fake, dtype=bool)
    real_balls_per_fake = np.zeros(num_fake, dtype=np.int64)
    real_in_fake_manifold = np.zeros(real.shape[0], dtype=bool)
    nearest_fake = np.empty(real.shape[0])
    for block in _row_blocks(real.shape[0], num_fake):
        distances = pairwise_distances(real[block], fake)  # (b, M)
        fake_in_real_manifold |= (distances < real_radii[k_pr][block, None]).any(axis=0)
        real_balls_per_fake += (distances < real_radii[k_dc][block, None]).sum(axis=0)
        real_in_fake_manifold[block] = (distances < fake_radii[k_pr][None, :]).any(axis=1)
        nearest_fake[block] = distances.min(axis=1)
    return {
        "precision": float(fake_in_real_manifold.mean()),
        "recall": float(real_in_fake_manifold.mean()),
        "density": float(real_balls_per_fake.sum() / (k_dc * num_fake)),
        "coverage": float((nearest_fake < real_radii[k_dc]).mean()),
    }


def precision_recall_density_coverage(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    nearest_k: int = 5,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Precision, recall, density and coverage with one k (Kynkäänniemi 2019; Naeem 2020).

    Matches the `prdc` package's `compute_prdc(real_features, fake_features, nearest_k)`.

    Args:
        real_features: features of real samples (N, D), N > nearest_k.
        fake_features: features of generated samples (M, D), M > nearest_k.
        nearest_k: the k of the k-th nearest neighbour that sets each ball's radius.
        max_samples: cap on rows per set; a larger set is subsampled (seeded) with a warning.
            None uses every row.
        seed: seeds the subsampling.

    Returns:
        {"precision", "recall", "density", "coverage"} as floats; density can exceed 1.

    Raises:
        DataError: bad features, mismatched D, or a set with no more than k samples.
        ConfigError: k or max_samples below 1.
    """
    return _prdc(real_features, fake_features, nearest_k, nearest_k, max_samples, seed)


def prdc(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Precision and recall with k = k_pr, density and coverage with k = k_dc, in one pass.

    The defaults are each paper's own: k = 3 in Kynkäänniemi et al. 2019, k = 5 in Naeem et al.
    2020. With k_pr == k_dc this equals `precision_recall_density_coverage`.

    Args:
        real_features: features of real samples (N, D), N > max(k_pr, k_dc).
        fake_features: features of generated samples (M, D), M > max(k_pr, k_dc).
        k_pr: k for precision and recall.
        k_dc: k for density and coverage.
        max_samples: cap on rows per set; a larger set is subsampled (seeded) with a warning.
            None uses every row.
        seed: seeds the subsampling.

    Returns:
        {"precision", "recall", "density", "coverage"} as floats; density can exceed 1.

    Raises:
        DataError: bad features, mismatched D, or a set with no more than k samples.
        ConfigError: a k or max_samples below 1.
    """
    return _prdc(real_features, fake_features, k_pr, k_dc, max_samples, seed)
