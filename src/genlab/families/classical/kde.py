"""Kernel density estimation for points and vectors, with exact likelihood and torch sampling.

The density is p(x) = 1/N sum_i K_h(x - x_i) (Rosenblatt 1956; Parzen 1962) with one of
scikit-learn's radially symmetric kernels of bandwidth h; fitting and scoring are scikit-learn's
`KernelDensity`. With `standardize` the data are first scaled to zero mean and unit variance per
dimension (x' = (x - m) / s, a dimension with s = 0 keeps s = 1), the bandwidth is in those
units, and the likelihood carries the Jacobian: log p(x) = log p'(x') - sum_d log s_d.

Bandwidth: a number, or the rules of thumb "scott" (n^(-1/(D+4)), Scott 1992) and "silverman"
((n (D+2) / 4)^(-1/(D+4)), Silverman 1986), which assume unit-variance data (hence `standardize`).
With `select_bandwidth`, `GridSearchCV` picks h by k-fold held-out log-likelihood over
`num_bandwidths` log-spaced multiples (`bandwidth_range`) of the rule's (or the given) h.

Sampling is done here in torch for every kernel (scikit-learn samples only the gaussian and tophat
kernels, from global numpy state): pick a training point uniformly, add h r u with u uniform on
the unit sphere and r from the kernel's radial law: gaussian noise directly; tophat r = U^(1/D);
exponential r ~ Gamma(D, 1) as a sum of D standard exponentials; epanechnikov, linear and cosine
by rejection from the tophat radius with acceptance k(r) / k(0).

scikit-learn's normalizing constant of the cosine kernel, a series from integrating by parts, is
right in odd dimensions only: in 2-D its density integrates to 0.363, and from 4-D on the series
is negative and the scores NaN. In even dimensions this model scores the cosine kernel itself (the
tree's radius query finds the points within h), with the constant S_(D-1) * integral of
r^(D-1) cos(pi r / 2) on [0, 1] (numerical quadrature).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from scipy import integrate
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.classical.inputs import as_float64, reject_options, vectors_for_fit

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

Kernel = Literal["gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"]
BandwidthRule = Literal["scott", "silverman"]


@dataclass(frozen=True)
class KDEConfig:
    """The `model:` section for `kde`.

    Args:
        bandwidth: h as a number (in standardized units when `standardize`), or "scott" or
            "silverman".
        kernel: scikit-learn's kernel name; every kernel samples and scores.
        select_bandwidth: choose h by cross-validated log-likelihood (`GridSearchCV`).
        num_bandwidths: the grid size for `select_bandwidth`.
        bandwidth_range: the grid's (lowest, highest) multiple of the rule's or given h.
        cv_folds: k of the k-fold cross-validation (shuffled with the train seed).
        standardize: scale each dimension to zero mean and unit variance before the KDE.
        leaf_size: leaf size of scikit-learn's tree.
    """

    bandwidth: float | BandwidthRule = "scott"
    kernel: Kernel = "gaussian"
    select_bandwidth: bool = False
    num_bandwidths: int = 20
    bandwidth_range: tuple[float, float] = (0.02, 2.0)
    cv_folds: int = 5
    standardize: bool = True
    leaf_size: int = 40

    def __post_init__(self) -> None:
        h = self.bandwidth
        if isinstance(h, str):
            if h not in get_args(BandwidthRule):
                raise ConfigError(
                    f"model kde.bandwidth: {h!r} is not a number or one of 'scott', 'silverman'"
                )
        elif isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0:
            raise ConfigError(f"model kde.bandwidth must be a positive number, got {h!r}")
        if self.kernel not in get_args(Kernel):
            raise ConfigError(
                f"model kde.kernel: {self.kernel!r} is not one of "
                f"{', '.join(map(repr, get_args(Kernel)))}"
            )
        for name, low in (("num_bandwidths", 1), ("cv_folds", 2), ("leaf_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"model kde.{name} must be an integer of at least {low}, got {value!r}"
                )
        low, high = self.bandwidth_range
        if not 0 < low <= high:
            raise ConfigError(
                f"model kde.bandwidth_range must be (low, high) with 0 < low <= high, got "
                f"{self.bandwidth_range!r}"
            )
        for name in ("select_bandwidth", "standardize"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model kde.{name} must be true or false")


@register(
    "kde", KDEConfig, "Kernel density estimate (scikit-learn KernelDensity), exact likelihood"
)
class KDE(ClassicalModel):
    """Kernel density estimate (Rosenblatt 1956; Parzen 1962) for points and flattened vectors.

    scikit-learn conventions: `fit` returns self; fitted state ends in `_`: `kde_` (the fitted
    `KernelDensity`), `points_` (N, D) the (standardized) training points, `mean_` and `scale_`
    (D,) the standardization (0 and 1 without it), `bandwidth_` the h used, and with
    `select_bandwidth` `cv_bandwidths_` and `cv_scores_` (the grid and mean held-out
    log-likelihoods), else None.

    Args:
        config: the `KDEConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: KDEConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> KDE:
        """Store the (standardized) points, set h, and build scikit-learn's tree.

        Args:
            data: a genlab `Dataset` (x flattened to (N, D)) or a raw (N, D) tensor or array.
            train: only its `seed` is used (the cross-validation folds); 0 when None.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, fitted.
        """
        if fit_options:
            raise ConfigError(
                f"kde.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; kde.fit takes only data and train"
            )
        x, spec = vectors_for_fit(self, data, "kde")  # (N, D) float64
        cfg = self.config
        if x.shape[0] < 2:
            raise DataError(
                f"data has {x.shape[0]} row: kde needs at least 2 rows (for the bandwidth "
                "rule and the standardization); give more rows"
            )
        if cfg.select_bandwidth and x.shape[0] < cfg.cv_folds:
            raise DataError(
                f"data has {x.shape[0]} rows, fewer than model kde.cv_folds={cfg.cv_folds}: "
                "lower cv_folds or give more rows"
            )
        num_rows, num_dims = x.shape
        if cfg.standardize:
            mean, scale = x.mean(axis=0), x.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            points = (x - mean) / scale
        else:
            # x is already a private float64 copy: no second copy of the data.
            mean, scale = np.zeros(num_dims), np.ones(num_dims)
            points = x
        if cfg.bandwidth == "scott":
            h = num_rows ** (-1.0 / (num_dims + 4))
        elif cfg.bandwidth == "silverman":
            h = (num_rows * (num_dims + 2) / 4.0) ** (-1.0 / (num_dims + 4))
        else:
            h = float(cfg.bandwidth)

        grid, scores = None, None
        if cfg.select_bandwidth:
            low, high = cfg.bandwidth_range
            grid = h * np.geomspace(low, high, cfg.num_bandwidths)
            seed = 0 if train is None else int(train.seed)
            with warnings.catch_warnings():  # compact kernels score -inf on some folds
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                search = GridSearchCV(
                    self._new_kde(1.0),
                    {"bandwidth": grid},
                    scoring=_held_out_log_likelihood,
                    cv=KFold(cfg.cv_folds, shuffle=True, random_state=seed),
                ).fit(points)
            scores = np.asarray(search.cv_results_["mean_test_score"], dtype=np.float64)
            if not np.isfinite(scores).any():
                raise DataError(
                    f"kde.select_bandwidth: with the {cfg.kernel} kernel every bandwidth in the "
                    "grid leaves some held-out point with zero density: raise the top of "
                    "bandwidth_range, or use a kernel without compact support (gaussian)"
                )
            h = float(grid[int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))])

        self.spec = spec
        self._set_state(points, mean, scale, h)
        self.cv_bandwidths_ = grid
        self.cv_scores_ = scores
        return self

    def _new_kde(self, bandwidth: float) -> KernelDensity:
        return KernelDensity(
            bandwidth=bandwidth, kernel=self.config.kernel, leaf_size=self.config.leaf_size
        )

    def _set_state(self, points: np.ndarray, mean: np.ndarray, scale: np.ndarray, h: float):
        self.points_ = points
        self.mean_ = mean
        self.scale_ = scale
        self.bandwidth_ = float(h)
        self.kde_ = self._new_kde(self.bandwidth_).fit(points)

    # -- sampling and likelihood -------------------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw x = m + s (x'_i + h r u): a training point i ~ Uniform, kernel noise h r u.

        Args:
            num_samples: N, the number of samples.
            generator: the torch generator (CPU) for every draw.
            cond: must be None (kde is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, *spec.shape).
        """
        reject_options("kde", "sample", options, cond)
        self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"kde.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        points = torch.from_numpy(self.points_)  # (N_train, D)
        index = torch.randint(len(points), (num_samples,), generator=generator)  # (N,)
        noise = _kernel_noise(self.config.kernel, num_samples, points.shape[1], generator)
        x = points.index_select(0, index) + self.bandwidth_ * noise  # (N, D) standardized
        x = torch.from_numpy(self.mean_) + torch.from_numpy(self.scale_) * x
        return x.to(torch.float32).reshape(num_samples, *self.spec.shape)

    def log_likelihood(
        self, x: Tensor | np.ndarray, *, cond: dict[str, Tensor] | None = None, **options: Any
    ) -> LogLikelihood:
        """Exact log-density log p'((x - m) / s) - sum_d log s_d, in nats.

        Args:
            x: (B, *spec.shape) or (B, D).
            cond: must be None (kde is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood with nats float64 (B,) and kind "exact" (-inf where a compact
            kernel puts no mass).
        """
        reject_options("kde", "log_likelihood", options, cond)
        self._fitted()
        flat = _score_data(self, x, "kde")  # (B, D)
        if len(flat) == 0:
            return LogLikelihood(torch.empty(0, dtype=torch.float64), kind="exact")
        nats = _score_samples(self.kde_, (flat - self.mean_) / self.scale_)
        nats = nats - np.log(self.scale_).sum()
        return LogLikelihood(torch.from_numpy(nats).to(torch.float64), kind="exact")

    def _fitted(self) -> None:
        if getattr(self, "kde_", None) is None:
            raise GenlabError(
                "this kde is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """The fitted state as float64 tensors.

        Returns:
            points (N, D) (standardized training points), mean (D,), scale (D,), bandwidth
            scalar, and with `select_bandwidth` cv_bandwidths and cv_scores (num_bandwidths,).
        """
        self._fitted()
        state = {
            "points": torch.from_numpy(self.points_.copy()),
            "mean": torch.from_numpy(self.mean_.copy()),
            "scale": torch.from_numpy(self.scale_.copy()),
            "bandwidth": torch.tensor(self.bandwidth_, dtype=torch.float64),
        }
        if self.cv_scores_ is not None:
            state["cv_bandwidths"] = torch.from_numpy(self.cv_bandwidths_.copy())
            state["cv_scores"] = torch.from_numpy(self.cv_scores_.copy())
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore `export_state`'s tensors and rebuild scikit-learn's tree."""
        if self.spec is None:
            raise CheckpointError("kde.import_state needs the data spec: create it with spec=")
        required = {"points", "mean", "scale", "bandwidth"}
        _check_keys("kde", tensors, required, required | {"cv_bandwidths", "cv_scores"})
        arrays = {k: v.detach().cpu().to(torch.float64).numpy().copy() for k, v in tensors.items()}
        num_dims = self.spec.num_dims
        points = arrays["points"]
        if points.ndim != 2 or points.shape[1] != num_dims or arrays["mean"].shape != (num_dims,):
            raise CheckpointError(
                f"kde state points have shape {points.shape}, expected (N, {num_dims}): load "
                "it with the data spec it was saved with"
            )
        self._set_state(points, arrays["mean"], arrays["scale"], float(arrays["bandwidth"]))
        self.cv_bandwidths_ = arrays.get("cv_bandwidths")
        self.cv_scores_ = arrays.get("cv_scores")


def _score_samples(kde: KernelDensity, queries: np.ndarray) -> np.ndarray:
    """Normalized log-density (B,) of a fitted `KernelDensity`, cosine in even D fixed."""
    if kde.kernel == "cosine" and queries.shape[1] % 2 == 0:
        return _cosine_log_density(kde, queries)
    return kde.score_samples(queries)


def _held_out_log_likelihood(kde: KernelDensity, x: np.ndarray, y: Any = None) -> float:
    """`GridSearchCV`'s score: total log-likelihood of held-out rows (as `KernelDensity.score`)."""
    return float(_score_samples(kde, x).sum())


def _cosine_log_density(kde: KernelDensity, queries: np.ndarray) -> np.ndarray:
    """Normalized log-density (B,) of a fitted cosine-kernel `KernelDensity` at `queries`.

    The kernel has compact support, so the tree's radius query gives every point that counts.
    """
    points, h = np.asarray(kde.tree_.data), kde.bandwidth_
    num_dims = points.shape[1]
    radial, _ = integrate.quad(
        lambda r: r ** (num_dims - 1) * math.cos(math.pi * r / 2), 0.0, 1.0, epsrel=1e-13
    )
    log_sphere = math.log(2.0) + num_dims / 2 * math.log(math.pi) - math.lgamma(num_dims / 2)
    log_norm = log_sphere + math.log(radial) + num_dims * math.log(h) + math.log(len(points))
    _, distances = kde.tree_.query_radius(queries, r=h, return_distance=True)
    counts = np.array([len(d) for d in distances])
    rows = np.repeat(np.arange(len(queries)), counts)
    flat = np.concatenate(distances) if len(distances) else np.zeros(0)
    total = np.bincount(rows, weights=np.cos(np.pi * flat / (2 * h)), minlength=len(queries))
    with np.errstate(divide="ignore"):
        return np.log(total) - log_norm


def _kernel_noise(
    kernel: str, num_samples: int, num_dims: int, generator: torch.Generator | None
) -> Tensor:
    """(N, D) float64 draws from the unit-bandwidth kernel, as scikit-learn defines it."""
    if kernel == "gaussian":
        return torch.randn(num_samples, num_dims, generator=generator, dtype=torch.float64)
    direction = torch.randn(num_samples, num_dims, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
    if kernel == "exponential":
        # radial density r^(D-1) e^-r: Gamma(D, 1), a sum of D standard exponentials
        u = torch.rand(num_samples, num_dims, generator=generator, dtype=torch.float64)
        radius = -torch.log1p(-u).sum(dim=1)
    elif kernel == "tophat":
        radius = _uniform_ball_radius(num_samples, num_dims, generator)
    else:
        radius = _rejection_radius(kernel, num_samples, num_dims, generator)
    return direction * radius.unsqueeze(1)


def _uniform_ball_radius(n: int, num_dims: int, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return u ** (1.0 / num_dims)


def _rejection_radius(
    kernel: str, num_samples: int, num_dims: int, generator: torch.Generator | None
) -> Tensor:
    """Radii with density r^(D-1) k(r) on [0, 1]: tophat proposals accepted w.p. k(r) / k(0)."""
    profile = {
        "epanechnikov": lambda r: 1 - r**2,
        "linear": lambda r: 1 - r,
        "cosine": lambda r: torch.cos(math.pi * r / 2),
    }[kernel]
    accepted, need = [], num_samples
    while need > 0:
        # The acceptance rate is about 2 / (D + 2) or more for these kernels.
        proposals = max(need * (num_dims + 2), 64)
        r = _uniform_ball_radius(proposals, num_dims, generator)
        keep = torch.rand(proposals, generator=generator, dtype=torch.float64) < profile(r)
        accepted.append(r[keep][:need])
        need -= len(accepted[-1])
    return torch.cat(accepted) if accepted else torch.zeros(0, dtype=torch.float64)


# -- data checks ---------------------------------------------------------------------------------


def _score_data(model: Any, x: Tensor | np.ndarray, name: str) -> np.ndarray:
    flat = as_float64(x)
    if flat.ndim == 0 or math.prod(flat.shape[1:]) != model.spec.num_dims:
        raise DataError(
            f"{name}.log_likelihood: x has shape {tuple(flat.shape)}, expected (B, "
            f"{', '.join(map(str, model.spec.shape))}) or (B, {model.spec.num_dims})"
        )
    flat = flat.reshape(flat.shape[0], model.spec.num_dims)
    bad = int((~np.isfinite(flat)).sum())
    if bad:
        raise DataError(f"x has {bad} non-finite values (NaN or inf): drop or impute them")
    return flat


def _check_keys(name: str, tensors: dict[str, Tensor], required: set, allowed: set) -> None:
    missing, unknown = required - set(tensors), set(tensors) - allowed
    if missing or unknown:
        raise CheckpointError(
            f"weights do not fit a '{name}' model (missing: {', '.join(sorted(missing)) or '-'}; "
            f"unexpected: {', '.join(sorted(unknown)) or '-'}): load a checkpoint saved by {name}"
        )
