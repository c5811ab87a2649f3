"""Gaussian mixture model fitted by EM, with exact likelihood and torch-seeded sampling.

The density is p(x) = sum_k w_k N(x; mu_k, Sigma_k). Fitting is scikit-learn's
`GaussianMixture` (expectation-maximisation, Dempster, Laird & Rubin 1977); the number of
components can be chosen by BIC (Schwarz 1978) or AIC (Akaike 1974). Sampling is done here in
torch, so a `torch.Generator` alone decides the draw (scikit-learn's `sample` uses global numpy
state and returns `(X, labels)`).

Conditioning on some dimensions, p(x_r | x_g = v), is again a Gaussian mixture (Bishop 2006,
"Pattern Recognition and Machine Learning", 2.3.1 and 9.2): each component's weight becomes
w_k N(v; mu_kg, S_kgg) / sum_j w_j N(v; mu_jg, S_jgg), its mean mu_kr + S_krg S_kgg^-1 (v - mu_kg)
and its covariance the Schur complement S_krr - S_krg S_kgg^-1 S_kgr. `conditional` returns it and
`sample(..., given={dim: value})` draws full rows from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.classical.inputs import as_float64, reject_options, vectors_for_fit

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

CovarianceType = Literal["full", "diag", "tied", "spherical"]
Selection = Literal["none", "bic", "aic"]
InitParams = Literal["kmeans", "k-means++", "random", "random_from_data"]


@dataclass(frozen=True)
class GMMConfig:
    """The `model:` section for `gmm`.

    Args:
        n_components: number of mixture components K (ignored when `select_components` is set).
        covariance_type: "full" (one (D, D) matrix per component), "diag" (one (D,) variance
            vector per component), "tied" (one (D, D) matrix shared by all) or "spherical" (one
            variance per component).
        select_components: "none" fits `n_components`; "bic" or "aic" fits every K in
            1..`max_components` and keeps the one with the lowest criterion.
        max_components: the largest K tried by `select_components`.
        max_iter: EM iterations per initialisation.
        tol: EM stops when the per-sample lower bound improves by less than this.
        reg_covar: added to covariance diagonals so they stay positive definite.
        n_init: EM runs from different initialisations; the best (highest likelihood) is kept.
        init_params: how responsibilities are initialised (scikit-learn's options).
    """

    n_components: int = 8
    covariance_type: CovarianceType = "full"
    select_components: Selection = "none"
    max_components: int = 10
    max_iter: int = 200
    tol: float = 1e-3
    reg_covar: float = 1e-6
    n_init: int = 1
    init_params: InitParams = "kmeans"

    def __post_init__(self) -> None:
        for name in ("n_components", "max_components", "max_iter", "n_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"model gmm.{name} must be an integer of at least 1, got {value!r}"
                )
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"model gmm.{name} must be a number of 0 or more, got {value!r}")
        choices = {
            "covariance_type": CovarianceType,
            "select_components": Selection,
            "init_params": InitParams,
        }
        for name, literal in choices.items():
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model gmm.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(map(repr, allowed))}"
                )


@dataclass(frozen=True)
class ConditionalMixture:
    """The Gaussian mixture p(x_rest | x_given = values), in float64.

    Args:
        given_dims: (G,) int64 the conditioned dimensions (of the flattened sample), ascending.
        given_values: (G,) their values.
        rest_dims: (R,) int64 the other dimensions, ascending.
        weights: (K,) posterior component weights given the values.
        means: (K, R) conditional means.
        covariances: (K, R, R) conditional covariances (Schur complements).
    """

    given_dims: Tensor
    given_values: Tensor
    rest_dims: Tensor
    weights: Tensor
    means: Tensor
    covariances: Tensor


@register("gmm", GMMConfig, "Gaussian mixture (scikit-learn EM), exact likelihood")
class GMM(ClassicalModel):
    """Gaussian mixture model: EM fit (Dempster et al. 1977), optional BIC/AIC choice of K.

    Follows scikit-learn's conventions: the constructor stores its arguments, `fit` returns
    self, and fitted state ends in `_` (`mixture_`, `n_components_`, `selection_scores_`).
    Data of any sample shape is flattened to D = spec.num_dims values per sample.

    Args:
        config: the `GMMConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: GMMConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> GMM:
        """Fit the mixture by EM; with `select_components`, choose K by BIC or AIC.

        Args:
            data: a genlab `Dataset` (x of shape (N, *spec.shape)), or a raw (N, D) tensor or
                array of points.
            train: only its `seed` is used (seeds the EM initialisation); 0 when None.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, with `mixture_` (the fitted `GaussianMixture`), `n_components_` (the K kept)
            and `selection_scores_` ({K: criterion} when selecting, else None).
        """
        if fit_options:
            raise ConfigError(
                f"gmm.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; gmm.fit takes only data and train"
            )
        x, spec = vectors_for_fit(self, data, "gmm")  # (N, D) float64
        seed = 0 if train is None else int(train.seed)
        cfg = self.config
        if cfg.select_components == "none":
            candidates = [cfg.n_components]
        else:
            candidates = list(range(1, cfg.max_components + 1))
        if x.shape[0] < max(candidates):
            knob = "max_components" if cfg.select_components != "none" else "n_components"
            raise DataError(
                f"data has {x.shape[0]} rows but gmm needs at least {max(candidates)} "
                f"(one per component): lower model gmm.{knob} or give more data"
            )

        best, scores = None, {}
        for k in candidates:
            mixture = self._new_mixture(k, seed).fit(x)
            if cfg.select_components == "none":
                best = mixture
                break
            score = float(mixture.bic(x) if cfg.select_components == "bic" else mixture.aic(x))
            scores[k] = score
            if best is None or score < scores[best.n_components]:
                best = mixture

        self.spec = spec
        self.mixture_ = best
        self.n_components_ = int(best.n_components)
        self.selection_scores_ = scores or None
        return self

    def _new_mixture(self, k: int, seed: int) -> GaussianMixture:
        cfg = self.config
        return GaussianMixture(
            n_components=k,
            covariance_type=cfg.covariance_type,
            tol=cfg.tol,
            reg_covar=cfg.reg_covar,
            max_iter=cfg.max_iter,
            n_init=cfg.n_init,
            init_params=cfg.init_params,
            random_state=seed,
        )

    # -- sampling and likelihood -------------------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        given: dict[int, float] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw samples: a component k ~ Categorical(w), then x = mu_k + L_k z, z ~ N(0, I).

        L_k is the Cholesky factor of Sigma_k (a diagonal of standard deviations for "diag"
        and "spherical", one shared factor for "tied"). Every draw comes from `generator`.

        Args:
            num_samples: N, the number of samples.
            generator: the torch generator (CPU) for the component and noise draws.
            cond: must be None (gmm is not class-conditional).
            given: {dimension: value} to condition on, dimensions indexing the flattened sample
                (0 .. D-1): the rows hold these values and the other dimensions are drawn from
                p(x_rest | x_given) (see `conditional`). None or {} draws from p(x).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, *spec.shape).
        """
        reject_options(
            "gmm",
            "sample",
            options,
            cond,
            cond_hint="to fix some dimensions, sample with given={dimension: value}",
        )
        mixture = self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"gmm.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        if given:
            return self._sample_given(num_samples, given, generator)
        weights = torch.from_numpy(mixture.weights_)  # (K,)
        means = torch.from_numpy(mixture.means_)  # (K, D)
        cov = torch.from_numpy(mixture.covariances_)
        num_dims = means.shape[1]
        if num_samples == 0:
            return torch.empty((0, *self.spec.shape), dtype=torch.float32)

        k = torch.multinomial(weights, num_samples, replacement=True, generator=generator)  # (N,)
        z = torch.randn(num_samples, num_dims, generator=generator, dtype=torch.float64)  # (N, D)
        kind = self.config.covariance_type
        if kind == "full":
            chol = torch.linalg.cholesky(cov)  # (K, D, D)
            noise = (chol[k] @ z.unsqueeze(-1)).squeeze(-1)  # (N, D)
        elif kind == "tied":
            chol = torch.linalg.cholesky(cov)  # (D, D)
            noise = z @ chol.T  # (N, D)
        elif kind == "diag":
            noise = z * cov.sqrt()[k]  # (K, D) -> (N, D)
        else:  # spherical
            noise = z * cov.sqrt()[k].unsqueeze(-1)  # (K,) -> (N, 1)
        x = means[k] + noise  # (N, D)
        return x.to(torch.float32).reshape(num_samples, *self.spec.shape)

    def conditional(self, given: dict[int, float]) -> ConditionalMixture:
        """The mixture p(x_rest | x_given = values) in closed form (Bishop 2006, 2.3.1).

        Args:
            given: {dimension: value}, dimensions indexing the flattened sample (0 .. D-1).

        Returns:
            `ConditionalMixture`: weights w_k N(v; mu_kg, S_kgg) normalized, means
            mu_kr + S_krg S_kgg^-1 (v - mu_kg), covariances S_krr - S_krg S_kgg^-1 S_kgr.
        """
        mixture = self._fitted()
        dims, values = self._check_given(given)
        covs = self._full_covariances()  # (K, D, D)
        rest = np.setdiff1d(np.arange(covs.shape[1]), dims)
        mu_g, mu_r = mixture.means_[:, dims], mixture.means_[:, rest]  # (K, G), (K, R)
        s_gg = covs[:, dims][:, :, dims]  # (K, G, G)
        s_gr = covs[:, dims][:, :, rest]  # (K, G, R)
        s_rr = covs[:, rest][:, :, rest]  # (K, R, R)
        chol = np.linalg.cholesky(s_gg)  # (K, G, G)
        diff = values[None, :] - mu_g  # (K, G)
        white = np.linalg.solve(chol, diff[:, :, None])[:, :, 0]  # (K, G): L^-1 (v - mu)
        log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)  # (K,)
        log_marginal = -0.5 * (len(dims) * np.log(2 * np.pi) + log_det + (white**2).sum(axis=1))
        log_w = np.log(mixture.weights_) + log_marginal  # (K,)
        weights = np.exp(log_w - log_w.max())
        gain = np.linalg.solve(s_gg, s_gr).transpose(0, 2, 1)  # (K, R, G): S_rg S_gg^-1
        means = mu_r + (gain @ diff[:, :, None])[:, :, 0]  # (K, R)
        cond_covs = s_rr - gain @ s_gr  # (K, R, R)
        cond_covs = (cond_covs + cond_covs.transpose(0, 2, 1)) / 2
        return ConditionalMixture(
            given_dims=torch.from_numpy(dims),
            given_values=torch.from_numpy(values),
            rest_dims=torch.from_numpy(rest),
            weights=torch.from_numpy(weights / weights.sum()),
            means=torch.from_numpy(means),
            covariances=torch.from_numpy(cond_covs),
        )

    def _sample_given(
        self, num_samples: int, given: dict[int, float], generator: torch.Generator | None
    ) -> Tensor:
        """Full rows with the given dimensions fixed and the rest from p(x_rest | x_given)."""
        mix = self.conditional(given)
        num_dims, num_rest = self.spec.num_dims, len(mix.rest_dims)
        x = torch.empty(num_samples, num_dims, dtype=torch.float64)  # (N, D)
        x[:, mix.given_dims] = mix.given_values
        if num_rest and num_samples:
            k = torch.multinomial(mix.weights, num_samples, replacement=True, generator=generator)
            z = torch.randn(num_samples, num_rest, generator=generator, dtype=torch.float64)
            chol = torch.linalg.cholesky(mix.covariances)  # (K, R, R)
            rest = mix.means[k] + (chol[k] @ z.unsqueeze(-1)).squeeze(-1)  # (N, R)
            x[:, mix.rest_dims] = rest
        return x.to(torch.float32).reshape(num_samples, *self.spec.shape)

    def _check_given(self, given: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        """(dims (G,) int64 ascending, values (G,) float64) of a valid `given` mapping."""
        num_dims = self.spec.num_dims
        if not isinstance(given, dict) or not given:
            raise ConfigError(
                f"gmm: given must be a non-empty mapping {{dimension: value}}, got {given!r}"
            )
        for dim, value in given.items():
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
                raise ConfigError(f"gmm: given's keys are dimension indices, got {dim!r}")
            if not 0 <= dim < num_dims:
                raise ConfigError(
                    f"gmm: given names dimension {dim}, but samples have dimensions 0 to "
                    f"{num_dims - 1} (indices of the flattened sample)"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ConfigError(f"gmm: given[{dim}] must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ConfigError(f"gmm: given[{dim}] must be finite, got {value!r}")
        dims = np.array(sorted(int(d) for d in given), dtype=np.int64)
        values = np.array([float(given[int(d)]) for d in dims], dtype=np.float64)
        return dims, values

    def _full_covariances(self) -> np.ndarray:
        """Every component's covariance as a (K, D, D) matrix, whatever the covariance type."""
        mixture = self._fitted()
        k, d = mixture.means_.shape
        cov = mixture.covariances_
        kind = self.config.covariance_type
        if kind == "full":
            return cov
        if kind == "tied":
            return np.broadcast_to(cov, (k, d, d)).copy()
        if kind == "diag":
            return cov[:, :, None] * np.eye(d)[None]
        return cov[:, None, None] * np.eye(d)[None]

    def log_likelihood(
        self, x: Tensor | np.ndarray, *, cond: dict[str, Tensor] | None = None, **options: Any
    ) -> LogLikelihood:
        """Exact log-density log sum_k w_k N(x; mu_k, Sigma_k) per sample, in nats.

        Args:
            x: (B, *spec.shape) or (B, D).
            cond: must be None (gmm is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood with nats float64 (B,) and kind "exact".
        """
        reject_options("gmm", "log_likelihood", options, cond)
        mixture = self._fitted()
        x_np = as_float64(x)
        if x_np.ndim == 0 or math.prod(x_np.shape[1:]) != self.spec.num_dims:
            raise DataError(
                f"gmm.log_likelihood: x has shape {tuple(x_np.shape)}, expected (B, "
                f"{', '.join(map(str, self.spec.shape))}) or (B, {self.spec.num_dims})"
            )
        x_np = x_np.reshape(x_np.shape[0], self.spec.num_dims)  # (B, D)
        bad = int((~np.isfinite(x_np)).sum())
        if bad:
            raise DataError(f"x has {bad} non-finite values: drop or impute them first")
        if x_np.shape[0] == 0:
            return LogLikelihood(torch.empty(0, dtype=torch.float64), kind="exact")
        nats = torch.from_numpy(mixture.score_samples(x_np))  # (B,)
        return LogLikelihood(nats.to(torch.float64), kind="exact")

    def _fitted(self) -> GaussianMixture:
        mixture = getattr(self, "mixture_", None)
        if mixture is None:
            raise GenlabError(
                "this gmm is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )
        return mixture

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """Fitted parameters as float64 tensors (K components, D dimensions).

        Returns:
            weights (K,), means (K, D), covariances and precisions_cholesky (shape per
            covariance type: full (K, D, D), tied (D, D), diag (K, D), spherical (K,)),
            n_components int64 scalar, and selection_scores (max_components,) (entry i is the
            criterion for K = i + 1) when K was selected.
        """
        mixture = self._fitted()
        state = {
            "weights": torch.from_numpy(mixture.weights_.copy()),
            "means": torch.from_numpy(mixture.means_.copy()),
            "covariances": torch.from_numpy(mixture.covariances_.copy()),
            "precisions_cholesky": torch.from_numpy(mixture.precisions_cholesky_.copy()),
            "n_components": torch.tensor(self.n_components_, dtype=torch.int64),
        }
        if self.selection_scores_ is not None:
            ks = sorted(self.selection_scores_)
            state["selection_scores"] = torch.tensor(
                [self.selection_scores_[k] for k in ks], dtype=torch.float64
            )
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the fitted `GaussianMixture` from `export_state`'s tensors."""
        if self.spec is None:
            raise CheckpointError(
                "gmm.import_state needs the data spec: create the model with spec="
            )
        required = {"weights", "means", "covariances", "precisions_cholesky", "n_components"}
        allowed = required | {"selection_scores"}
        missing, unknown = required - set(tensors), set(tensors) - allowed
        if missing or unknown:
            raise CheckpointError(
                f"weights do not fit a 'gmm' model (missing: {', '.join(sorted(missing)) or '-'}; "
                f"unexpected: {', '.join(sorted(unknown)) or '-'}): load a checkpoint saved by gmm"
            )
        k = int(tensors["n_components"])
        num_dims = self.spec.num_dims
        arrays = {
            name: tensors[name].detach().cpu().to(torch.float64).numpy().copy()
            for name in ("weights", "means", "covariances", "precisions_cholesky")
        }
        kind = self.config.covariance_type
        cov_shape = {
            "full": (k, num_dims, num_dims),
            "tied": (num_dims, num_dims),
            "diag": (k, num_dims),
            "spherical": (k,),
        }[kind]
        expected = {
            "weights": (k,),
            "means": (k, num_dims),
            "covariances": cov_shape,
            "precisions_cholesky": cov_shape,
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise CheckpointError(
                    f"gmm state {name} has shape {arrays[name].shape}, expected {shape} for "
                    f"K={k}, D={num_dims}, covariance_type={kind!r}: load it with the config "
                    "it was saved with"
                )
        if self.config.select_components == "none" and k != self.config.n_components:
            raise CheckpointError(
                f"gmm state has {k} components but the config says n_components="
                f"{self.config.n_components}: load it with the config it was saved with"
            )

        mixture = self._new_mixture(k, seed=0)
        mixture.weights_ = arrays["weights"]
        mixture.means_ = arrays["means"]
        mixture.covariances_ = arrays["covariances"]
        mixture.precisions_cholesky_ = arrays["precisions_cholesky"]
        prec_chol = arrays["precisions_cholesky"]
        if kind == "full":
            mixture.precisions_ = prec_chol @ prec_chol.transpose(0, 2, 1)
        elif kind == "tied":
            mixture.precisions_ = prec_chol @ prec_chol.T
        else:
            mixture.precisions_ = prec_chol**2
        mixture.n_features_in_ = num_dims
        self.mixture_ = mixture
        self.n_components_ = k
        if "selection_scores" in tensors:
            scores = tensors["selection_scores"].to(torch.float64).tolist()
            self.selection_scores_ = {i + 1: float(s) for i, s in enumerate(scores)}
        else:
            self.selection_scores_ = None
