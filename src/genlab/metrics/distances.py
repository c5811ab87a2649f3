"""Distances between a real and a generated sample set, computed on features.

Every function here is pure: it takes feature matrices `(N, D)` (numpy arrays or torch tensors
of any float dtype), computes in float64 and returns Python floats. Which network produced the
features (Inception, a small classifier, the raw data for 2-D toys) is the caller's choice; the
feature networks live apart in `genlab.metrics.features`.

- `frechet_distance`, `fid`: Fréchet distance between Gaussians fitted to the two sets (Heusel
  et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium").
- `kid`: unbiased MMD² with a cubic polynomial kernel, averaged over subsets (Bińkowski et al.
  2018, "Demystifying MMD GANs").
- `inception_score`: exp E[KL(p(y|x) || p(y))] (Salimans et al. 2016, "Improved Techniques for
  Training GANs").
- `mmd_rbf`: unbiased MMD² with a Gaussian kernel (Gretton et al. 2012, "A Kernel Two-Sample
  Test").
- `classifier_two_sample_test`: held-out accuracy of a classifier telling the sets apart
  (Lopez-Paz & Oquab 2017, "Revisiting Classifier Two-Sample Tests").
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from genlab.core.errors import ConfigError, DataError

ArrayLike = Any  # np.ndarray | torch.Tensor | nested sequences of numbers


def as_feature_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """Check and convert one feature set to a float64 matrix; the check every metric here runs.

    Args:
        x: features (N, D), a numpy array, a torch tensor or nested sequences of numbers.
        name: the argument's name, used in error messages.

    Returns:
        float64 array (N, D).

    Raises:
        DataError: `x` is not numeric, not two-dimensional, empty, or holds NaN or infinity.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"{name} cannot be read as numbers ({error}); pass a float array or tensor "
                "of shape (N, D)."
            ) from error
    if x.ndim != 2:
        raise DataError(
            f"{name} has shape {tuple(x.shape)}, but feature metrics take a matrix (N, D) of N "
            "samples with D features each; flatten each sample with x.reshape(len(x), -1) or "
            "add the missing sample axis."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(
            f"{name} is empty (shape {tuple(x.shape)}); pass at least one sample with at least "
            "one feature."
        )
    finite = np.isfinite(x)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            f"{name} holds NaN or infinite values in {bad_rows.size} of {x.shape[0]} rows "
            f"(first: row {bad_rows[0]}); a diverged model or a failed feature network "
            "produces them: fix or drop those samples before scoring."
        )
    return x


def check_same_dims(real: np.ndarray, fake: np.ndarray, names: tuple[str, str]) -> None:
    """Raise `DataError` unless both feature matrices have the same number of features."""
    if real.shape[1] != fake.shape[1]:
        raise DataError(
            f"{names[0]} has {real.shape[1]} features per sample but {names[1]} has "
            f"{fake.shape[1]}; extract both sets with the same feature network and layer."
        )


def _as_vector(x: ArrayLike, name: str, size: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or (size is not None and x.shape[0] != size):
        expected = f"({size},)" if size is not None else "(D,)"
        raise DataError(
            f"{name} has shape {tuple(x.shape)}; a mean vector must have shape {expected}."
        )
    if not np.isfinite(x).all():
        raise DataError(f"{name} holds NaN or infinite values; recompute it from finite features.")
    return x


def _check_psd(eigvals: np.ndarray, name: str) -> None:
    """Raise unless the eigenvalues are those of a covariance, up to round-off."""
    scale = max(float(np.abs(eigvals).max()), np.finfo(np.float64).tiny)
    if eigvals.min() < -1e-8 * scale:
        raise DataError(
            f"{name} has a negative eigenvalue ({eigvals.min():.3g}), so it is not a covariance "
            "matrix; compute it with np.cov(features, rowvar=False)."
        )


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d² = ||mu1 - mu2||² + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))  (Dowson & Landau
    1982; used by Heusel et al. 2017 for FID).

    The trace of the matrix square root is computed as the sum of square roots of the
    eigenvalues of the symmetric matrix sigma1^(1/2) sigma2 sigma1^(1/2), which has the same
    eigenvalues as sigma1 sigma2. pytorch-fid instead takes `scipy.linalg.sqrtm` of the
    non-symmetric product, drops its imaginary part, and retries with 1e-6 added to both
    diagonals when the product is singular; torchmetrics takes the complex eigenvalues of the
    product. The symmetric form has real eigenvalues by construction and is exact for singular
    (rank-deficient) covariances, so no diagonal offset is added: eigenvalues that round-off
    makes slightly negative are set to 0, and so is a result of round-off size below 0.

    Args:
        mu1, mu2: means (D,).
        sigma1, sigma2: covariances (D, D), symmetric positive semi-definite.

    Returns:
        The squared Fréchet distance, a float ≥ 0.

    Raises:
        DataError: shapes that do not match, non-finite entries, or a matrix with a clearly
            negative eigenvalue.
    """
    mu1 = _as_vector(mu1, "mu1")
    dims = mu1.shape[0]
    mu2 = _as_vector(mu2, "mu2", dims)
    covariances = []
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.detach().cpu().to(torch.float64).numpy()
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != (dims, dims):
            raise DataError(
                f"{name} has shape {tuple(sigma.shape)} but the means have {dims} dimensions; "
                f"pass a ({dims}, {dims}) covariance for each mean."
            )
        if not np.isfinite(sigma).all():
            raise DataError(
                f"{name} holds NaN or infinite values; recompute it from finite features."
            )
        covariances.append((sigma + sigma.T) / 2)
    sigma1, sigma2 = covariances

    eigvals1, eigvecs1 = np.linalg.eigh(sigma1)
    _check_psd(eigvals1, "sigma1")
    _check_psd(np.linalg.eigvalsh(sigma2), "sigma2")
    # round-off can leave eigenvalues of a singular covariance slightly below 0
    sqrt_sigma1 = (eigvecs1 * np.sqrt(np.clip(eigvals1, 0.0, None))) @ eigvecs1.T
    middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())

    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(distance, 0.0)


def fid(features_real: ArrayLike, features_fake: ArrayLike) -> float:
    """Fréchet Inception Distance between two feature sets (Heusel et al. 2017).

    Fits a Gaussian to each set (mean and unbiased covariance, as pytorch-fid and torchmetrics
    do) and returns `frechet_distance` between them. FID is biased upward at small N; compare
    values only at the same N and with the same feature network.

    Args:
        features_real: features of real samples (N, D).
        features_fake: features of generated samples (M, D).

    Returns:
        FID, a float ≥ 0.

    Raises:
        DataError: bad features (see `as_feature_matrix`), mismatched D, or a set with no more
            samples than feature dimensions, whose covariance is singular.
    """
    real = as_feature_matrix(features_real, "features_real")
    fake = as_feature_matrix(features_fake, "features_fake")
    check_same_dims(real, fake, ("features_real", "features_fake"))
    dims = real.shape[1]
    for name, x in (("features_real", real), ("features_fake", fake)):
        if x.shape[0] <= dims:
            raise DataError(
                f"{name} has {x.shape[0]} samples of {dims} features, so its covariance has "
                f"rank at most {x.shape[0] - 1} < {dims} and is singular, which makes FID "
                f"meaningless; use more than {dims} samples (FID is usually reported on "
                "10,000-50,000) or a feature layer with fewer dimensions."
            )
    return frechet_distance(
        real.mean(axis=0), np.cov(real, rowvar=False), fake.mean(axis=0), np.cov(fake, rowvar=False)
    )


def _unbiased_mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from kernel matrices (Gretton et al. 2012, eq. 3): diagonals excluded."""
    n, m = k_xx.shape[0], k_yy.shape[0]
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def kid(
    features_real: ArrayLike,
    features_fake: ArrayLike,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with a polynomial kernel (Bińkowski et al. 2018).

    k(x, y) = (gamma x·y + coef)^degree, by default (x·y / D + 1)³. Each of `num_subsets`
    rounds draws `subset_size` rows of each set without replacement and computes the unbiased
    MMD²; the rounds' mean and (population) standard deviation are returned, as in the paper's
    code and torchmetrics. Unlike FID, KID is unbiased, so values at different N compare, and
    it can be slightly negative when the sets match.

    Args:
        features_real: features of real samples (N, D).
        features_fake: features of generated samples (M, D).
        num_subsets: number of random subsets averaged.
        subset_size: rows per subset; when either set is smaller, it is lowered to the smaller
            set's size with a warning (each subset is then a permutation of that set).
        degree, gamma, coef: the kernel; gamma None means 1 / D.
        seed: seeds the subset draws.

    Returns:
        (mean, std) of MMD² over the subsets.

    Raises:
        DataError: bad features, mismatched D, or a set with fewer than 2 samples.
        ConfigError: a non-positive count, degree or gamma, or a negative coef.
    """
    real = as_feature_matrix(features_real, "features_real")
    fake = as_feature_matrix(features_fake, "features_fake")
    check_same_dims(real, fake, ("features_real", "features_fake"))
    num_subsets = _check_int(num_subsets, "num_subsets", 1)
    subset_size = _check_int(subset_size, "subset_size", 2)
    degree = _check_int(degree, "degree", 1)
    if gamma is not None and not gamma > 0:
        raise ConfigError(f"gamma must be positive or None (meaning 1 / D), got {gamma!r}.")
    if not coef >= 0:
        raise ConfigError(f"coef must be ≥ 0, got {coef!r}.")
    smallest = min(real.shape[0], fake.shape[0])
    if smallest < 2:
        raise DataError(
            f"KID needs at least 2 samples in each set, got {real.shape[0]} real and "
            f"{fake.shape[0]} generated; pass more samples."
        )
    if subset_size > smallest:
        warnings.warn(
            f"KID subset_size={subset_size} exceeds the smaller set ({smallest} samples); using "
            f"subsets of {smallest}. Pass more samples or a smaller subset_size to silence this.",
            stacklevel=2,
        )
        subset_size = smallest
    gamma = 1.0 / real.shape[1] if gamma is None else float(gamma)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (gamma * (a @ b.T) + coef) ** degree

    rng = np.random.default_rng(seed)
    scores = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real[rng.choice(real.shape[0], subset_size, replace=False)]
        y = fake[rng.choice(fake.shape[0], subset_size, replace=False)]
        scores[i] = _unbiased_mmd2(kernel(x, x), kernel(y, y), kernel(x, y))
    return float(scores.mean()), float(scores.std())


def _log_probabilities(values: np.ndarray, from_logits: bool | None) -> np.ndarray:
    """log p(y|x) (N, C) from probabilities or logits; log 0 stays -inf."""
    is_probability = bool(
        (values >= 0).all() and np.allclose(values.sum(axis=1), 1.0, rtol=0.0, atol=1e-6)
    )
    if from_logits is None:
        from_logits = not is_probability
    if from_logits:
        shifted = values - values.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    if not is_probability:
        raise DataError(
            "probs_or_logits was given as probabilities (from_logits=False) but its rows are "
            "not non-negative with sum 1; pass softmax outputs, or pass logits with "
            "from_logits=True."
        )
    with np.errstate(divide="ignore"):
        return np.log(values / values.sum(axis=1, keepdims=True))


def inception_score(
    probs_or_logits: ArrayLike, *, splits: int = 10, from_logits: bool | None = None
) -> tuple[float, float]:
    """Inception Score exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016).

    The samples are cut into `splits` consecutive parts as in the paper's code (rows
    [i N / splits, (i + 1) N / splits)); p(y) is each part's mean prediction. Shuffle the rows
    first if they are ordered (by class, say). IS ranges from 1 (every prediction the same) to
    C (confident predictions spread evenly over all C classes).

    Args:
        probs_or_logits: class predictions (N, C) of a classifier on generated samples.
        splits: number of parts the score is computed on.
        from_logits: True for logits, False for probabilities; None decides from the values:
            rows that are non-negative and sum to 1 (within 1e-6) are probabilities.

    Returns:
        (mean, std) of the score over the parts (population standard deviation, as in the
        paper's code).

    Raises:
        DataError: bad predictions, probabilities that do not sum to 1, or fewer rows than
            splits.
        ConfigError: splits < 1.
    """
    values = as_feature_matrix(probs_or_logits, "probs_or_logits")
    splits = _check_int(splits, "splits", 1)
    num_samples = values.shape[0]
    if num_samples < splits:
        raise DataError(
            f"inception_score got {num_samples} predictions for {splits} splits; pass at least "
            "one prediction per split or lower splits."
        )
    log_p = _log_probabilities(values, from_logits)
    p = np.exp(log_p)
    scores = np.empty(splits)
    for i in range(splits):
        part = slice(i * num_samples // splits, (i + 1) * num_samples // splits)
        p_part, log_p_part = p[part], log_p[part]
        # 0 · log 0 = 0: classes a sample gives no probability add nothing to its KL.
        with np.errstate(divide="ignore", invalid="ignore"):
            log_marginal = np.log(p_part.mean(axis=0, keepdims=True))
            terms = np.where(p_part > 0, p_part * (log_p_part - log_marginal), 0.0)
        scores[i] = math.exp(terms.sum(axis=1).mean())
    return float(scores.mean()), float(scores.std())


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(squared, 0.0)


def mmd_rbf(x: ArrayLike, y: ArrayLike, *, bandwidth: float | None = None) -> float:
    """Unbiased MMD² with a Gaussian kernel (Gretton et al. 2012, eq. 3).

    k(a, b) = exp(-||a - b||² / (2 bandwidth²)). Without a bandwidth, the median heuristic
    (Gretton et al. 2012, Sec. 8) sets it to the median Euclidean distance between distinct
    points of the pooled sample. The estimate is unbiased, so it can be slightly negative when
    both sets come from one distribution. Memory is O((N + M)²): subsample very large sets.

    Args:
        x: samples or features (N, D), N ≥ 2.
        y: samples or features (M, D), M ≥ 2.
        bandwidth: kernel width in the units of the data; None for the median heuristic.

    Returns:
        MMD², a float.

    Raises:
        DataError: bad inputs, mismatched D, fewer than 2 samples in a set, or a median distance
            of 0 (most points coincide) when no bandwidth is given.
        ConfigError: a bandwidth that is not positive.
    """
    x = as_feature_matrix(x, "x")
    y = as_feature_matrix(y, "y")
    check_same_dims(x, y, ("x", "y"))
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise DataError(
            f"mmd_rbf needs at least 2 samples in each set for the unbiased estimate, got "
            f"{x.shape[0]} and {y.shape[0]}; pass more samples."
        )
    n = x.shape[0]
    pooled = np.concatenate([x, y])
    squared = _squared_distances(pooled, pooled)
    if bandwidth is None:
        upper = np.triu_indices(pooled.shape[0], k=1)
        bandwidth = float(np.sqrt(np.median(squared[upper])))
        if bandwidth == 0.0:
            raise DataError(
                "the median distance between samples is 0 (most samples coincide), so the "
                "median heuristic gives no kernel width; pass bandwidth= explicitly."
            )
    elif not bandwidth > 0:
        raise ConfigError(
            f"bandwidth must be positive or None (median heuristic), got {bandwidth!r}."
        )
    kernel = np.exp(-squared / (2.0 * float(bandwidth) ** 2))
    return _unbiased_mmd2(kernel[:n, :n], kernel[n:, n:], kernel[:n, n:])


def classifier_two_sample_test(
    real: ArrayLike, fake: ArrayLike, *, test_fraction: float = 0.5, seed: int = 0
) -> dict[str, float]:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): can a classifier tell the sets apart?

    The larger set is subsampled (seeded) to the size of the smaller, so chance accuracy is
    exactly 1/2. A stratified `test_fraction` of the pooled rows is held out; scikit-learn's
    `HistGradientBoostingClassifier` (non-linear, scale-free, fast) is fitted on the rest and
    scored on the held-out rows. Under the null hypothesis that both sets come from one
    distribution, the held-out accuracy is approximately N(1/2, 1 / (4 n_test)) (paper, Sec.
    3), which gives the one-sided p-value.

    Args:
        real: real samples or features (N, D).
        fake: generated samples or features (M, D).
        test_fraction: share of the pooled rows held out for scoring, in (0, 1).
        seed: seeds the subsampling, the split and the classifier.

    Returns:
        {"accuracy": held-out accuracy (0.5 = indistinguishable, 1 = fully separable),
         "n": number of held-out rows, "n_train": number of training rows,
         "p_value": one-sided p-value of accuracy > 1/2 under the null}.

    Raises:
        DataError: bad inputs, mismatched D, or too few samples for a split (at least 2 held-out
            and 2 training rows of each set).
        ConfigError: test_fraction outside (0, 1).
    """
    real = as_feature_matrix(real, "real")
    fake = as_feature_matrix(fake, "fake")
    check_same_dims(real, fake, ("real", "fake"))
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    per_set = min(real.shape[0], fake.shape[0])
    held_out = per_set * test_fraction
    if held_out < 2 or per_set - held_out < 2:
        raise DataError(
            f"the classifier two-sample test got {real.shape[0]} real and {fake.shape[0]} "
            f"generated samples, too few to hold out {test_fraction:.0%} of each with at least 2 "
            "rows on both sides; pass more samples (hundreds give a useful test)."
        )
    rng = np.random.default_rng(seed)
    if real.shape[0] > per_set:
        real = real[np.sort(rng.choice(real.shape[0], per_set, replace=False))]
    if fake.shape[0] > per_set:
        fake = fake[np.sort(rng.choice(fake.shape[0], per_set, replace=False))]
    x = np.concatenate([real, fake])
    labels = np.concatenate([np.zeros(per_set, dtype=np.int64), np.ones(per_set, dtype=np.int64)])
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    classifier = HistGradientBoostingClassifier(early_stopping=False, random_state=seed)
    # One OpenMP thread: at the sizes this test sees (thousands of rows), threads gain little and,
    # on a busy machine, their spin-waiting slows the fit by 10-40x.
    with threadpool_limits(limits=1, user_api="openmp"):
        classifier.fit(x_train, y_train)
        accuracy = float((classifier.predict(x_test) == y_test).mean())
    n_test = int(y_test.shape[0])
    z = (accuracy - 0.5) * math.sqrt(4.0 * n_test)
    return {
        "accuracy": accuracy,
        "n": n_test,
        "n_train": int(y_train.shape[0]),
        "p_value": 0.5 * math.erfc(z / math.sqrt(2.0)),
    }
