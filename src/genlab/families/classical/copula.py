"""Gaussian copula for tables and points: per-column marginals joined by one correlation matrix.

Sklar's theorem (Sklar 1959; Nelsen 2006, "An Introduction to Copulas") writes any joint
distribution as its marginals F_j joined by a copula. The Gaussian copula takes that copula from a
multivariate normal: each column is mapped to a normal score z_j = Phi^-1(F_j(x_j)), the scores
are N(0, R) with R a correlation matrix, and

    log p(x) = log c_R(z) + sum_j log f_j(x_j),   log c_R(z) = -1/2 log|R| - 1/2 z^T (R^-1 - I) z.

Sampling draws z ~ N(0, R) and maps each z_j back through F_j^-1.

Marginals of numeric columns (numeric and datetime columns of tables, every dimension of points):
    empirical   a histogram-smoothed empirical CDF, piecewise linear and so with a piecewise
                constant density that is exactly its derivative (sampling and likelihood are of
                one and the same distribution). The distinct values are grouped into at most
                about `max_bins` bins (default: Rice's rule, 2 n^(1/3)): a value with at least
                n / max_bins rows is a bin of its own, runs of rarer values fill bins of about
                n / max_bins rows (a tied value is never split). A bin holding one distinct
                value v spreads its count over [v - 1/2, v + 1/2] for integer columns and
                whole-day dates, so rounding gives v back (the "smoothing of ties"), else over
                the half-gaps to its neighbours; bins of several values span the half-gaps to
                their neighbours. Each gap between two such one-value bins of an
                integer column, and each of two exponential tails beyond the data (scale: the
                width of the end bin), holds the mass of half an observation, so every value
                has a finite density.
    parametric  a scipy.stats family fitted by maximum likelihood: gaussian (norm), beta and
                truncnorm on the observed range widened by (max - min) / n on each side, gamma
                from min - (max - min) / n upwards. "best" keeps the family with the lowest AIC
                (or KS statistic, `family_selection="ks"`); the bounded families give density 0
                (log-likelihood -inf) outside their support. A column with fewer than two
                distinct values uses the empirical marginal whatever the setting.

Categorical and boolean columns (the approach of SDV's GaussianCopula, Patki, Wedge &
Veeramachaneni 2016): the categories, in schema order, take contiguous intervals of [0, 1] as long
as their frequencies ((count + pseudocount) / total): category c holds [F(c-), F(c)]. Fitting draws
each row's u uniformly in its category's interval (so the correlation sees a continuous score),
sampling returns the category whose interval holds Phi(z), and the likelihood scores a category by
log P(c) with the normal score of its interval's midpoint in c_R. A column with one category is
constant: it always samples that category and adds log P = 0.

Missing cells:
    categorical and boolean  "<missing>" is one more category, so missingness keeps its
                dependence on the other columns.
    numeric and datetime     an independent Bernoulli with the stored rate (missing + pseudocount)
                / (rows + 2 pseudocount); the marginal and the correlations use the observed cells
                (pairwise-complete correlations), and a row's likelihood uses the copula of its
                observed columns (a sub-matrix of R) plus log rate or log (1 - rate).

The correlation of the normal scores is shrunk towards I by `shrinkage` and, if still not
positive definite, its eigenvalues are floored and its diagonal reset to 1.

The likelihood is a density with respect to Lebesgue measure on the numeric columns times the
counting measure on the categorical ones. Without categorical columns it is the exact, normalized
density of the model that `sample` draws from (kind "exact"). With categorical columns the
midpoint score is a plug-in for the probability that a category's latent interval holds the
normal score (a multivariate normal box probability), so the figure is not normalized and the kind
is "estimate".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from scipy import optimize, special, stats
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.data.tables import TableCodec, codec_from_spec
from genlab.families.classical.inputs import as_float64, reject_options

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

Marginals = Literal["empirical", "parametric"]
ParametricFamily = Literal["gaussian", "beta", "gamma", "truncnorm", "best"]
FamilySelection = Literal["aic", "ks"]
CategoricalMethod = Literal["frequency"]

# Every marginal kind, by the integer code stored in the state.
MARGINAL_KINDS = ("empirical", "gaussian", "beta", "gamma", "truncnorm", "categorical")
PARAMETRIC_FAMILIES = ("gaussian", "beta", "gamma", "truncnorm")
# Mass, in observations, of each gap between one-value bins and of each exponential tail.
SMOOTHING_COUNT = 0.5
# Smallest eigenvalue kept in the correlation matrix.
MIN_EIGENVALUE = 1e-6
_EPOCH = pd.Timestamp("1970-01-01")
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class CopulaConfig:
    """The `model:` section for `copula`.

    Args:
        marginals: "empirical" (histogram-smoothed empirical CDFs) or "parametric" (scipy.stats
            families) for numeric columns.
        parametric_family: the family of parametric marginals, or "best" to choose per column.
        family_selection: how "best" chooses: lowest "aic" or lowest "ks" statistic.
        categorical: how categories map to [0, 1]; "frequency" (contiguous intervals as long as
            the frequencies) is the one method.
        max_bins: the most bins of an empirical marginal; None: Rice's rule, ceil(2 n^(1/3))
            for n observed values (14 for 300 rows, 60 for 26,000).
        pseudocount: added to every category's count and to both sides of a numeric column's
            missing/present count (0.5 is the Krichevsky-Trofimov estimate); with 0, a category
            unseen in training has probability 0.
        shrinkage: weight of I in the correlation estimate (1 - shrinkage) R + shrinkage I.
    """

    marginals: Marginals = "empirical"
    parametric_family: ParametricFamily = "best"
    family_selection: FamilySelection = "aic"
    categorical: CategoricalMethod = "frequency"
    max_bins: int | None = None
    pseudocount: float = 0.5
    shrinkage: float = 1e-3

    def __post_init__(self) -> None:
        choices = {
            "marginals": Marginals,
            "parametric_family": ParametricFamily,
            "family_selection": FamilySelection,
            "categorical": CategoricalMethod,
        }
        for name, literal in choices.items():
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model copula.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(map(repr, allowed))}"
                )
        if self.max_bins is not None and (
            isinstance(self.max_bins, bool)
            or not isinstance(self.max_bins, int)
            or self.max_bins < 1
        ):
            raise ConfigError(
                f"model copula.max_bins must be None or an integer of at least 1, got "
                f"{self.max_bins!r}"
            )
        if not _is_number(self.pseudocount) or not self.pseudocount >= 0:
            raise ConfigError(
                f"model copula.pseudocount must be a number of 0 or more, got {self.pseudocount!r}"
            )
        if not _is_number(self.shrinkage) or not 0 <= self.shrinkage < 1:
            raise ConfigError(
                f"model copula.shrinkage must be a number in [0, 1), got {self.shrinkage!r}"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Marginals: each maps values to normal scores, normal scores to values, and gives log f.


def _score_from_log_cdf(log_cdf: np.ndarray, log_sf: np.ndarray) -> np.ndarray:
    """z = Phi^-1(F), from log F below the median and from log (1 - F) above it (no underflow)."""
    lower = log_cdf < np.log(0.5)
    z = np.empty_like(log_cdf)
    z[lower] = special.ndtri_exp(log_cdf[lower])
    z[~lower] = -special.ndtri_exp(log_sf[~lower])
    return z


@dataclass(frozen=True)
class EmpiricalMarginal:
    """A piecewise-linear CDF through `knots` with exponential tails beyond the end knots.

    Args:
        knots: (L + 1,) increasing values t_0 < ... < t_L.
        cdf: (L + 1,) increasing F(t_i); F(t_0) is the left tail's mass.
        tails: (4,) left tail mass, left tail scale, right tail mass, right tail scale.
    """

    knots: np.ndarray
    cdf: np.ndarray
    tails: np.ndarray

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        (mass_l, scale_l, mass_r, scale_r), t = self.tails, self.knots
        density = np.diff(self.cdf) / np.diff(t)  # (L,)
        segment = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(density) - 1)
        out = np.log(density[segment])
        left, right = x < t[0], x > t[-1]
        out[left] = np.log(mass_l / scale_l) + (x[left] - t[0]) / scale_l
        out[right] = np.log(mass_r / scale_r) - (x[right] - t[-1]) / scale_r
        return out

    def normal_score(self, x: np.ndarray) -> np.ndarray:
        (mass_l, scale_l, mass_r, scale_r), t = self.tails, self.knots
        with np.errstate(divide="ignore"):
            inner = np.interp(x, t, self.cdf)
            log_cdf, log_sf = np.log(inner), np.log1p(-inner)
        left, right = x < t[0], x > t[-1]
        log_cdf[left] = np.log(mass_l) + (x[left] - t[0]) / scale_l
        log_sf[left] = np.log1p(-np.exp(log_cdf[left]))
        log_sf[right] = np.log(mass_r) - (x[right] - t[-1]) / scale_r
        log_cdf[right] = np.log1p(-np.exp(log_sf[right]))
        return _score_from_log_cdf(log_cdf, log_sf)

    def value_of_score(self, z: np.ndarray) -> np.ndarray:
        (mass_l, scale_l, mass_r, scale_r), t = self.tails, self.knots
        log_cdf, log_sf = special.log_ndtr(z), special.log_ndtr(-z)
        x = np.interp(np.exp(log_cdf), self.cdf, t)
        left, right = log_cdf < np.log(mass_l), log_sf < np.log(mass_r)
        x[left] = t[0] + scale_l * (log_cdf[left] - np.log(mass_l))
        x[right] = t[-1] - scale_r * (log_sf[right] - np.log(mass_r))
        return x

    def state(self) -> dict[str, np.ndarray]:
        return {"knots": self.knots, "cdf": self.cdf, "tails": self.tails}


@dataclass(frozen=True)
class ParametricMarginal:
    """A fitted scipy.stats family; `params` are its shape parameters, then loc and scale."""

    family: str
    params: np.ndarray

    @property
    def dist(self) -> Any:
        p = self.params
        if self.family == "gaussian":
            return stats.norm(loc=p[0], scale=p[1])
        if self.family == "gamma":
            return stats.gamma(p[0], loc=p[1], scale=p[2])
        law = stats.beta if self.family == "beta" else stats.truncnorm
        return law(p[0], p[1], loc=p[2], scale=p[3])

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        return self.dist.logpdf(x)

    def normal_score(self, x: np.ndarray) -> np.ndarray:
        if self.family == "gaussian":
            return (x - self.params[0]) / self.params[1]
        dist = self.dist
        with np.errstate(divide="ignore"):
            return _score_from_log_cdf(dist.logcdf(x), dist.logsf(x))

    def value_of_score(self, z: np.ndarray) -> np.ndarray:
        if self.family == "gaussian":
            return self.params[0] + self.params[1] * z
        dist, lower = self.dist, z < 0
        x = np.empty_like(z)
        x[lower] = dist.ppf(special.ndtr(z[lower]))
        x[~lower] = dist.isf(special.ndtr(-z[~lower]))
        return x

    def state(self) -> dict[str, np.ndarray]:
        return {"params": self.params}


@dataclass(frozen=True)
class CategoricalMarginal:
    """Category probabilities (C,) in schema order; category c holds [F(c-), F(c)] of [0, 1]."""

    probabilities: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        """(C + 1,) interval edges 0 = F(c_0-) <= ... <= F(c_last) = 1."""
        edges = np.concatenate([[0.0], np.cumsum(self.probabilities)])
        edges[-1] = 1.0
        return edges

    def log_pmf(self, codes: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities)[codes]

    def midpoint_score(self, codes: np.ndarray) -> np.ndarray:
        edges = self.edges
        return special.ndtri((edges[codes] + edges[codes + 1]) / 2)

    def code_of_score(self, z: np.ndarray) -> np.ndarray:
        # Compare in normal-score space: no loss of small intervals near u = 0 or 1.
        thresholds = special.ndtri(self.edges[1:-1])  # (C - 1,)
        return np.searchsorted(thresholds, z, side="right")

    def state(self) -> dict[str, np.ndarray]:
        return {"probabilities": self.probabilities}


Marginal = EmpiricalMarginal | ParametricMarginal | CategoricalMarginal


def _fit_empirical(
    values: np.ndarray, quantum: float | None, max_bins: int | None, rng: np.random.Generator
) -> tuple[EmpiricalMarginal, np.ndarray]:
    """The empirical marginal of the observed `values` (n,) and their normal scores (n,).

    Values alone in their bin get a randomized probability integral transform: u uniform on
    the bin's CDF interval, so tied values spread as the model spreads them when sampling.
    """
    n = len(values)
    max_bins = max_bins or int(np.ceil(2 * n ** (1 / 3)))
    uniques, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    m = len(uniques)
    if m == 1:
        half = quantum / 2 if quantum else 1e-3 * max(1.0, abs(float(uniques[0])))
        lo, hi = np.array([uniques[0] - half]), np.array([uniques[0] + half])
        bin_counts, single, gaps = counts.astype(float), np.array([True]), np.zeros(0)
        bin_of_unique = np.zeros(1, dtype=np.int64)
    else:
        bin_of_unique = _group_values(counts, n / max_bins)
        num_bins = int(bin_of_unique[-1]) + 1
        first = np.searchsorted(bin_of_unique, np.arange(num_bins), side="left")
        last = np.searchsorted(bin_of_unique, np.arange(num_bins), side="right") - 1
        single = first == last
        bin_counts = np.bincount(bin_of_unique, weights=counts, minlength=num_bins)
        lo, hi = np.empty(num_bins), np.empty(num_bins)
        gaps = np.zeros(num_bins - 1)  # gap widths between bins b and b + 1
        for b in range(num_bins - 1):
            left, right = uniques[last[b]], uniques[first[b + 1]]
            mid = (left + right) / 2
            hi[b], lo[b + 1] = mid, mid
            if quantum:
                if single[b]:
                    hi[b] = min(mid, left + quantum / 2)
                if single[b + 1]:
                    lo[b + 1] = max(mid, right - quantum / 2)
                    if not single[b]:
                        hi[b] = lo[b + 1]
                elif single[b]:
                    lo[b + 1] = hi[b]
                gaps[b] = lo[b + 1] - hi[b]
        first_gap, last_gap = uniques[1] - uniques[0], uniques[-1] - uniques[-2]
        lo[0] = uniques[0] - (min(quantum, first_gap) if quantum and single[0] else first_gap) / 2
        hi[-1] = uniques[-1] + (min(quantum, last_gap) if quantum and single[-1] else last_gap) / 2

    # Knots in order: lo_0, hi_0, (lo_1 when a gap precedes it), hi_1, ...
    total = n + SMOOTHING_COUNT * (2 + int((gaps > 0).sum()))
    knots, masses = [lo[0]], []
    for b in range(len(lo)):
        if b > 0 and gaps[b - 1] > 0:
            knots.append(lo[b])
            masses.append(SMOOTHING_COUNT)
        knots.append(hi[b])
        masses.append(bin_counts[b])
    knots = np.asarray(knots)
    tail_mass = SMOOTHING_COUNT / total
    cdf = tail_mass + np.concatenate([[0.0], np.cumsum(masses)]) / total
    cdf[-1] = 1.0 - tail_mass
    tails = np.array([tail_mass, hi[0] - lo[0], tail_mass, hi[-1] - lo[-1]])
    marginal = EmpiricalMarginal(knots=knots, cdf=cdf, tails=tails)

    z = marginal.normal_score(values)
    alone = single[bin_of_unique[inverse]]  # (n,) rows whose bin holds only their value
    if alone.any():
        b = bin_of_unique[inverse[alone]]
        u_lo, u_hi = np.interp(lo[b], knots, cdf), np.interp(hi[b], knots, cdf)
        z[alone] = special.ndtri(u_lo + (u_hi - u_lo) * _open_uniform(rng, int(alone.sum())))
    return marginal, z


def _group_values(counts: np.ndarray, bin_count: float) -> np.ndarray:
    """The bin of each distinct value (m,), in order: a value counted at least `bin_count`
    times is a bin of its own; runs of rarer values fill bins of about `bin_count` rows."""
    bins = np.empty(len(counts), dtype=np.int64)
    current, filled = 0, 0.0
    for i, count in enumerate(counts):
        if count >= bin_count and filled > 0:  # close the run of rare values before it
            current, filled = current + 1, 0.0
        bins[i] = current
        filled += count
        if filled >= bin_count:
            current, filled = current + 1, 0.0
    return bins


def _open_uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uniform draws in the open interval (0, 1)."""
    return (rng.integers(0, 2**53 - 1, size=size) + 0.5) / (2**53 - 1)


def _fit_family(family: str, x: np.ndarray) -> ParametricMarginal | None:
    """Maximum-likelihood fit of one scipy.stats family to the observed values `x`.

    Returns None when scipy's solver fails to converge.
    """
    low, high = float(x.min()), float(x.max())
    pad = (high - low) / len(x)
    low, high = low - pad, high + pad
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if family == "gaussian":
            params = [x.mean(), x.std()]
        elif family in ("beta", "gamma"):
            try:
                if family == "beta":
                    a, b, _, _ = stats.beta.fit(x, floc=low, fscale=high - low)
                    params = [a, b, low, high - low]
                else:
                    a, _, scale = stats.gamma.fit(x, floc=low)
                    params = [a, low, scale]
            except (RuntimeError, ValueError):  # scipy's FitError: no convergence
                return None
        else:  # truncnorm on [low, high], MLE of its location and log scale
            # Near-uniform data push the scale to infinity; 10 ranges is already flat, and
            # keeps scipy's truncnorm away from the degenerate a = b = 0.
            log_scales = (np.log(1e-6 * (high - low)), np.log(10 * (high - low)))

            def nll(theta: np.ndarray) -> float:
                loc, scale = theta[0], np.exp(np.clip(theta[1], *log_scales))
                a, b = (low - loc) / scale, (high - loc) / scale
                value = -stats.truncnorm.logpdf(x, a, b, loc=loc, scale=scale).sum()
                return float(value) if np.isfinite(value) else 1e300

            start = np.array([x.mean(), np.log(x.std())])
            loc, log_scale = optimize.minimize(nll, start, method="Nelder-Mead").x
            scale = np.exp(np.clip(log_scale, *log_scales))
            params = [(low - loc) / scale, (high - loc) / scale, loc, scale]
    return ParametricMarginal(family=family, params=np.asarray(params, dtype=np.float64))


def _fit_parametric(
    values: np.ndarray, family: str, selection: str
) -> tuple[ParametricMarginal, np.ndarray]:
    """The parametric marginal (the best family by AIC or KS when `family` is "best")."""
    candidates = PARAMETRIC_FAMILIES if family == "best" else (family,)
    best, best_score = None, np.inf
    for name in candidates:
        marginal = _fit_family(name, values)
        if marginal is None or not np.all(np.isfinite(marginal.params)):
            continue
        if selection == "ks":
            score = stats.kstest(values, marginal.dist.cdf).statistic
        else:
            loglik = marginal.log_pdf(values).sum()
            num_params = {"gaussian": 2, "gamma": 3, "beta": 4, "truncnorm": 4}[name]
            score = 2 * num_params - 2 * loglik if np.isfinite(loglik) else np.inf
        if best is None or score < best_score:
            best, best_score = marginal, score
    if best is None:
        raise DataError(
            f"copula: no {family} marginal could be fitted to a column with values in "
            f"[{values.min():g}, {values.max():g}]: use marginals='empirical'"
        )
    return best, best.normal_score(values)


def _fit_categorical(
    codes: np.ndarray, num_slots: int, pseudocount: float, rng: np.random.Generator
) -> tuple[CategoricalMarginal, np.ndarray]:
    """Frequencies of the category codes (n,) and a normal score drawn in each row's interval."""
    counts = np.bincount(codes, minlength=num_slots).astype(np.float64) + pseudocount
    marginal = CategoricalMarginal(probabilities=counts / counts.sum())
    edges = marginal.edges
    u = edges[codes] + (edges[codes + 1] - edges[codes]) * _open_uniform(rng, len(codes))
    return marginal, special.ndtri(u)


def _correlation(z: np.ndarray, shrinkage: float) -> np.ndarray:
    """Pairwise-complete correlation of the normal scores (n, d) (NaN = missing), made PD."""
    d = z.shape[1]
    r = pd.DataFrame(z).corr().to_numpy() if d > 1 else np.ones((1, 1))
    r = np.where(np.isfinite(r), r, 0.0)
    np.fill_diagonal(r, 1.0)
    r = (1 - shrinkage) * r + shrinkage * np.eye(d)
    eigenvalues, vectors = np.linalg.eigh(r)
    if eigenvalues.min() < MIN_EIGENVALUE:
        r = (vectors * np.maximum(eigenvalues, MIN_EIGENVALUE)) @ vectors.T
        scale = 1 / np.sqrt(np.diag(r))
        r = r * scale[:, None] * scale[None, :]
    return (r + r.T) / 2


# ---------------------------------------------------------------------------------------------
# Columns: what the copula models, from a table's schema or a points spec


@dataclass(frozen=True)
class CopulaColumn:
    """One modelled column.

    Args:
        name: the column's name ("x0", "x1", ... for points).
        type: "numeric", "datetime", "boolean" or "categorical".
        has_missing: whether x has a slot for its missing cells.
        num_slots: categories (+ "<missing>" when `has_missing`) for discrete columns, else 0.
        quantum: 1 for integer columns and whole-day dates (ties spread over +-1/2), else None.
    """

    name: str
    type: str
    has_missing: bool = False
    num_slots: int = 0
    quantum: float | None = None

    @property
    def discrete(self) -> bool:
        return self.type in ("boolean", "categorical")


def copula_columns(spec: DataSpec) -> list[CopulaColumn]:
    """The modelled columns of a data spec: a table's non-id columns, or one per dimension."""
    if spec.modality != "tabular":
        return [CopulaColumn(name=f"x{i}", type="numeric") for i in range(spec.num_dims)]
    columns = []
    for c in codec_from_spec(spec).columns:
        kind, missing = c["type"], bool(c["has_missing"])
        if kind == "id":
            continue
        if kind == "categorical":
            slots = len(c["categories"]) + missing
            columns.append(CopulaColumn(c["name"], kind, missing, num_slots=slots))
        elif kind == "boolean":
            columns.append(CopulaColumn(c["name"], kind, missing, num_slots=2 + missing))
        else:
            whole = c.get("integer", False) or c.get("resolution") == "day"
            quantum = 1.0 if whole else None
            columns.append(CopulaColumn(c["name"], kind, missing, quantum=quantum))
    return columns


def _frame_values(columns: list[CopulaColumn], frame: pd.DataFrame) -> list[np.ndarray]:
    """Per column: float64 values (NaN missing) or int64 category codes ("<missing>" last)."""
    out = []
    for column in columns:
        series = frame[column.name]
        if column.type == "categorical":
            codes = series.cat.codes.to_numpy().astype(np.int64)
            out.append(np.where(codes < 0, column.num_slots - 1, codes))
        elif column.type == "boolean":
            flags = series.astype("boolean")
            codes = flags.astype("Int64").to_numpy(dtype=np.int64, na_value=2)
            out.append(codes)
        elif column.type == "datetime":
            days = (series - _EPOCH) / pd.Timedelta(days=1)
            out.append(days.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            out.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return out


# ---------------------------------------------------------------------------------------------
# The model


@register("copula", CopulaConfig, "Gaussian copula (empirical/parametric marginals), tables")
class GaussianCopula(ClassicalModel):
    """Gaussian copula (Sklar 1959; SDV's GaussianCopula, Patki et al. 2016) for tables and points.

    scikit-learn conventions: `fit` returns self; the fitted state is `marginals_` (one per
    modelled column: `EmpiricalMarginal`, `ParametricMarginal` or `CategoricalMarginal`),
    `missing_rates_` ({column: rate} for numeric columns with missing cells), `correlation_`
    (d, d) float64 and `columns_` (the `CopulaColumn`s). Tables are modelled on their decoded,
    typed rows; points (any non-table modality) are flattened to D numeric columns.

    Args:
        config: the `CopulaConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: CopulaConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> GaussianCopula:
        """Fit every marginal, then the correlation of the normal scores.

        Args:
            data: a genlab `Dataset` (a table: its typed rows `info["dataframe"]`, else x
                decoded; other modalities: x flattened to (N, D)), or a raw (N, D) tensor or
                array of points.
            train: only its `seed` is used (the uniform draws inside tied values' and
                categories' intervals); 0 when None.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, fitted.
        """
        if fit_options:
            raise ConfigError(
                f"copula.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; copula.fit takes only data and train"
            )
        spec, values = self._fit_data(data)
        columns = copula_columns(spec)
        num_rows = len(values[0])
        if num_rows < 2:
            raise DataError(
                f"data has {num_rows} row{'s' if num_rows != 1 else ''}: the copula needs at "
                "least 2 to estimate correlations; give more rows"
            )
        rng = np.random.default_rng(0 if train is None else int(train.seed))
        cfg = self.config
        marginals, missing_rates = [], {}
        z = np.full((num_rows, len(columns)), np.nan)  # (N, d) normal scores, NaN where missing
        for j, (column, v) in enumerate(zip(columns, values)):
            if column.discrete:
                marginal, z[:, j] = _fit_categorical(v, column.num_slots, cfg.pseudocount, rng)
            else:
                observed = ~np.isnan(v)
                if not observed.any():
                    raise DataError(
                        f"column {column.name!r} has no observed values in the training rows: "
                        "drop it (drop_columns=[...]) or give rows where it is present"
                    )
                if column.has_missing:
                    num_missing = float((~observed).sum())
                    missing_rates[column.name] = (num_missing + cfg.pseudocount) / (
                        num_rows + 2 * cfg.pseudocount
                    )
                x = v[observed]
                if cfg.marginals == "parametric" and len(np.unique(x)) > 1:
                    marginal, z[observed, j] = _fit_parametric(
                        x, cfg.parametric_family, cfg.family_selection
                    )
                else:
                    marginal, z[observed, j] = _fit_empirical(x, column.quantum, cfg.max_bins, rng)
            marginals.append(marginal)

        self.spec = spec
        self.columns_ = columns
        self.marginals_ = marginals
        self.missing_rates_ = missing_rates
        self.correlation_ = _correlation(z, cfg.shrinkage)
        return self

    def _fit_data(self, data: Dataset | Tensor | np.ndarray) -> tuple[DataSpec, list[np.ndarray]]:
        """The data's spec and its per-column values (see `_frame_values`)."""
        if isinstance(data, Dataset):
            spec = data.spec
            if spec.modality in ("text", "sequence"):
                raise DataError(
                    f"copula models tables and continuous vectors, but data {spec.name!r} holds "
                    f"{spec.modality} token ids: use an autoregressive model (e.g. ngram, gpt)"
                )
            if spec.modality == "tabular":
                frame = data.info.get("dataframe")
                if not isinstance(frame, pd.DataFrame) or len(frame) != len(data):
                    frame = codec_from_spec(spec).decode(data.x)
                return spec, self._table_values(spec, frame)
            x = data.x.reshape(len(data), -1)
        else:
            x = data
            if np.ndim(x) != 2:
                raise DataError(
                    f"copula.fit expects a Dataset or an (N, D) array of points, got shape "
                    f"{tuple(np.shape(x))}: wrap other shapes in a genlab Dataset"
                )
            spec = None
        x = as_float64(x)
        if self.spec is not None and self.spec.num_dims != x.shape[1]:
            raise DataError(
                f"this copula is for samples of shape {self.spec.shape}, but the data has "
                f"{x.shape[1]} values per sample: create a new model"
            )
        spec = spec or self.spec or DataSpec(modality="points", shape=(x.shape[1],))
        _check_finite(x, "data")
        return spec, list(x.T)

    def _table_values(self, spec: DataSpec, frame: pd.DataFrame) -> list[np.ndarray]:
        typed = codec_from_spec(spec).parse(frame)
        return _frame_values(copula_columns(spec), typed)

    # -- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw z ~ N(0, R) and map each column back through its marginal.

        Args:
            num_samples: N, the number of samples.
            generator: the torch generator (CPU) for the normal scores and missing-cell draws.
            cond: must be None (the copula is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, *spec.shape): points as they are, table rows encoded by the table's
            codec (integers rounded and clipped to their range, categories one-hot).
        """
        reject_options("copula", "sample", options, cond)
        self._fitted()
        values = self._sample_values(num_samples, generator)
        if self.spec.modality != "tabular":
            x = np.stack(values, axis=1) if values else np.zeros((num_samples, 0))
            return torch.from_numpy(x).to(torch.float32).reshape(num_samples, *self.spec.shape)
        codec = codec_from_spec(self.spec)
        return codec.encode(self._decode(codec, values, num_samples))

    def sample_frame(
        self, num_samples: int, *, generator: torch.Generator | None = None
    ) -> pd.DataFrame:
        """Draw N table rows as a typed DataFrame (the table's columns, dtypes and categories).

        Args:
            num_samples: N, the number of rows.
            generator: the torch generator; the same seed gives the rows `sample` encodes.

        Returns:
            DataFrame with the model columns of the table (id columns left out).
        """
        self._fitted()
        if self.spec.modality != "tabular":
            raise DataError(
                f"copula.sample_frame draws table rows, but this copula was fitted on "
                f"{self.spec.modality} data: use sample()"
            )
        values = self._sample_values(num_samples, generator)
        return self._decode(codec_from_spec(self.spec), values, num_samples)

    def _sample_values(self, num_samples: int, generator: torch.Generator | None) -> list:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"copula.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        d = len(self.columns_)
        chol = torch.linalg.cholesky(torch.from_numpy(self.correlation_))  # (d, d)
        eps = torch.randn(num_samples, d, generator=generator, dtype=torch.float64)  # (N, d)
        z = (eps @ chol.T).numpy()  # (N, d) ~ N(0, R)
        missing_u = torch.rand(
            num_samples, len(self.missing_rates_), generator=generator, dtype=torch.float64
        ).numpy()  # (N, columns with missing cells)
        values, k = [], 0
        for j, (column, marginal) in enumerate(zip(self.columns_, self.marginals_)):
            if column.discrete:
                values.append(marginal.code_of_score(z[:, j]))
                continue
            v = marginal.value_of_score(z[:, j])
            if column.name in self.missing_rates_:
                v = np.where(missing_u[:, k] < self.missing_rates_[column.name], np.nan, v)
                k += 1
            values.append(v)
        return values

    def _decode(self, codec: TableCodec, values: list, num_samples: int) -> pd.DataFrame:
        """Typed rows from per-column values, through the codec's x layout."""
        x = np.zeros((num_samples, codec.num_features))
        by_name = dict(zip([c.name for c in self.columns_], values))
        for entry in codec.columns:
            if entry["type"] == "id":
                continue
            v, offset = by_name[entry["name"]], entry["offset"]
            if entry["type"] == "categorical":
                x[np.arange(num_samples), offset + v] = 1.0
                continue
            if entry["type"] == "boolean":
                missing = v == 2
                x[:, offset] = np.where(missing, entry["fill"], v)
            else:
                missing = np.isnan(v)
                x[:, offset] = np.where(missing, entry["fill"], v)
            if entry["has_missing"]:
                x[:, offset + 1] = missing
        return codec.decode(x)

    # -- likelihood --------------------------------------------------------------------------

    def log_likelihood(
        self,
        x: Tensor | np.ndarray | pd.DataFrame,
        *,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> LogLikelihood:
        """log c_R(z_observed) + sum of log f_j (numeric) + log P(category), per row, in nats.

        Args:
            x: (B, *spec.shape) or (B, D) rows in the data's space (tables: encoded rows), or,
                for tables, a DataFrame of rows (typed or as read).
            cond: must be None (the copula is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood, nats float64 (B,): kind "exact" without categorical columns (a
            normalized density), "estimate" with them (see the module docstring).
        """
        reject_options("copula", "log_likelihood", options, cond)
        self._fitted()
        values = self._score_values(x)
        num_rows = len(values[0]) if values else 0
        d = len(self.columns_)
        kind = "estimate" if any(c.discrete for c in self.columns_) else "exact"
        details = {"measure": "Lebesgue x counting", "categorical_score": "interval midpoint"}
        nats = np.zeros(num_rows)
        z = np.full((num_rows, d), np.nan)
        for j, (column, marginal, v) in enumerate(zip(self.columns_, self.marginals_, values)):
            if column.discrete:
                nats += marginal.log_pmf(v)
                z[:, j] = marginal.midpoint_score(v)
                continue
            observed = ~np.isnan(v)
            with np.errstate(divide="ignore", invalid="ignore"):
                nats[observed] += marginal.log_pdf(v[observed])
                z[observed, j] = marginal.normal_score(v[observed])
            if column.name in self.missing_rates_:
                rate = self.missing_rates_[column.name]
                nats += np.where(observed, np.log1p(-rate), np.log(rate))
            elif not observed.all():
                nats[~observed] = -np.inf
        nats += self._log_copula_density(z)
        return LogLikelihood(torch.from_numpy(nats), kind=kind, details=details)

    def _log_copula_density(self, z: np.ndarray) -> np.ndarray:
        """log c_R on each row's observed scores (NaN = missing); -inf where a score is infinite."""
        out = np.zeros(len(z))
        finite = ~np.isinf(z).any(axis=1)
        out[~finite] = -np.inf
        observed = ~np.isnan(z)
        patterns, which = np.unique(observed, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            rows = (which.reshape(-1) == p) & finite
            if not pattern.any() or not rows.any():
                continue
            r = self.correlation_[np.ix_(pattern, pattern)]
            zp = z[np.ix_(rows, pattern)]  # (B_p, d_p)
            chol = np.linalg.cholesky(r)
            white = np.linalg.solve(chol, zp.T).T  # L^-1 z, so |white|^2 = z^T R^-1 z
            log_det = 2 * np.log(np.diag(chol)).sum()
            out[rows] = -0.5 * log_det - 0.5 * ((white**2).sum(1) - (zp**2).sum(1))
        return out

    def _score_values(self, x: Tensor | np.ndarray | pd.DataFrame) -> list[np.ndarray]:
        """Per-column values of the rows to score."""
        if self.spec.modality == "tabular":
            codec = codec_from_spec(self.spec)
            if isinstance(x, pd.DataFrame):
                frame = x
            else:
                flat = as_float64(x)
                if flat.ndim != 2 or flat.shape[1] != self.spec.num_dims:
                    raise DataError(
                        f"copula.log_likelihood: x has shape {tuple(flat.shape)}, expected "
                        f"(B, {self.spec.num_dims}) encoded table rows, or a DataFrame of rows"
                    )
                _check_finite(flat, "x")
                frame = codec.decode(flat)
            return self._table_values(self.spec, frame)
        if isinstance(x, pd.DataFrame):
            raise DataError("copula.log_likelihood takes a DataFrame only for tables")
        flat = as_float64(x)
        if flat.ndim == 0 or math.prod(flat.shape[1:]) != self.spec.num_dims:
            raise DataError(
                f"copula.log_likelihood: x has shape {tuple(flat.shape)}, expected (B, "
                f"{', '.join(map(str, self.spec.shape))}) or (B, {self.spec.num_dims})"
            )
        flat = flat.reshape(len(flat), self.spec.num_dims)
        _check_finite(flat, "x")
        return list(flat.T)

    def _fitted(self) -> None:
        if getattr(self, "correlation_", None) is None:
            raise GenlabError(
                "this copula is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """Fitted state as float64 tensors; marginal j of the d modelled columns (in order).

        Returns:
            correlation (d, d); missing_rates (d,) (0 where a column has no missing slot or is
            categorical); marginal.{j}.kind int64 (index into MARGINAL_KINDS); and per kind
            marginal.{j}.knots (L + 1,), .cdf (L + 1,), .tails (4,) (empirical), .params (2 to
            4,) (parametric), .probabilities (C,) (categorical).
        """
        self._fitted()
        state = {
            "correlation": torch.from_numpy(self.correlation_.copy()),
            "missing_rates": torch.tensor(
                [self.missing_rates_.get(c.name, 0.0) for c in self.columns_], dtype=torch.float64
            ),
        }
        for j, marginal in enumerate(self.marginals_):
            kind = _kind_of(marginal)
            state[f"marginal.{j}.kind"] = torch.tensor(MARGINAL_KINDS.index(kind))
            for key, array in marginal.state().items():
                state[f"marginal.{j}.{key}"] = torch.from_numpy(np.array(array, dtype=np.float64))
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore the state written by `export_state` (the spec gives the columns)."""
        if self.spec is None:
            raise CheckpointError(
                "copula.import_state needs the data spec: create the model with spec="
            )
        columns = copula_columns(self.spec)
        d = len(columns)
        arrays = {k: v.detach().cpu().to(torch.float64).numpy().copy() for k, v in tensors.items()}
        expected = {"correlation", "missing_rates"}
        marginals = []
        for j, column in enumerate(columns):
            key = f"marginal.{j}.kind"
            if key not in arrays:
                raise CheckpointError(
                    f"copula state lacks {key}: it was saved for other data (this spec has {d} "
                    "modelled columns); load it with the data spec it was saved with"
                )
            code = int(arrays[key])
            kind = MARGINAL_KINDS[code] if 0 <= code < len(MARGINAL_KINDS) else "?"
            if kind == "?" or (kind == "categorical") != column.discrete:
                raise CheckpointError(
                    f"copula state marginal {j} ({kind}) does not fit column {column.name!r} "
                    f"({column.type}): load it with the data spec it was saved with"
                )
            fields = {
                "empirical": ("knots", "cdf", "tails"),
                "categorical": ("probabilities",),
            }.get(kind, ("params",))
            keys = [f"marginal.{j}.{f}" for f in fields]
            missing = [k for k in keys if k not in arrays]
            if missing:
                raise CheckpointError(f"copula state lacks {', '.join(missing)}: save it again")
            expected.update([key, *keys])
            parts = {f: arrays[k] for f, k in zip(fields, keys)}
            if kind == "empirical":
                marginals.append(EmpiricalMarginal(**parts))
            elif kind == "categorical":
                if parts["probabilities"].shape != (column.num_slots,):
                    raise CheckpointError(
                        f"copula state marginal {j} has {parts['probabilities'].shape[0]} "
                        f"categories, column {column.name!r} has {column.num_slots}"
                    )
                marginals.append(CategoricalMarginal(**parts))
            else:
                marginals.append(ParametricMarginal(family=kind, params=parts["params"]))
        unknown = set(arrays) - expected
        if unknown or "correlation" not in arrays or "missing_rates" not in arrays:
            raise CheckpointError(
                f"weights do not fit a 'copula' model with {d} columns (unexpected or missing "
                f"entries: {', '.join(sorted(unknown)) or 'correlation/missing_rates'})"
            )
        if arrays["correlation"].shape != (d, d) or arrays["missing_rates"].shape != (d,):
            raise CheckpointError(
                f"copula state correlation has shape {arrays['correlation'].shape}, expected "
                f"({d}, {d}): load it with the data spec it was saved with"
            )
        self.columns_ = columns
        self.marginals_ = marginals
        self.missing_rates_ = {
            c.name: float(r)
            for c, r in zip(columns, arrays["missing_rates"])
            if c.has_missing and not c.discrete
        }
        self.correlation_ = arrays["correlation"]


def _kind_of(marginal: Marginal) -> str:
    if isinstance(marginal, EmpiricalMarginal):
        return "empirical"
    if isinstance(marginal, CategoricalMarginal):
        return "categorical"
    return marginal.family


def _check_finite(x: np.ndarray, what: str) -> None:
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise DataError(f"{what} has {bad} non-finite values: drop or impute them first")
