"""Factor analysis and probabilistic PCA: a linear-Gaussian latent model with exact likelihood.

The model is z ~ N(0, I_k), x = mu + W z + eps, eps ~ N(0, Psi), so x ~ N(mu, W W^T + Psi):
    fa    Psi = diag(psi_1, ..., psi_D), fitted by scikit-learn's `FactorAnalysis` (the SVD-based
          maximum-likelihood algorithm of Barber 2012, "Bayesian Reasoning and Machine Learning",
          21.2.2); a varimax (Kaiser 1958) or quartimax rotation of W changes the loadings, not
          the density.
    ppca  Psi = sigma^2 I, in closed form from scikit-learn's `PCA` (Tipping & Bishop 1999):
          sigma^2 is the mean of the discarded eigenvalues of the sample covariance and
          W = U_k (Lambda_k - sigma^2 I)^(1/2). scikit-learn uses the (n - 1)-normalized
          covariance, and so does this model, so its likelihood equals `PCA.score_samples`.
The likelihood is computed here from (mu, W, Psi) through a Cholesky factor of W W^T + Psi, and
sampling draws z and eps from a torch generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from sklearn.decomposition import PCA, FactorAnalysis
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.classical.inputs import as_float64, reject_options, vectors_for_fit

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

Method = Literal["fa", "ppca"]
Rotation = Literal[None, "varimax", "quartimax"]
SvdMethod = Literal["lapack", "randomized"]


@dataclass(frozen=True)
class FactorAnalysisConfig:
    """The `model:` section for `factor_analysis`.

    Args:
        n_components: k, the number of latent factors (at most D for fa, below D for ppca).
        method: "fa" (diagonal noise Psi) or "ppca" (isotropic noise sigma^2 I).
        rotation: None, "varimax" or "quartimax" rotation of the fa loadings (fa only).
        tol: fa stops when the log-likelihood improves by less than this.
        max_iter: the most fa iterations.
        svd_method: "lapack" (exact) or "randomized" (faster for large D) SVD inside fa.
        iterated_power: power iterations of the randomized SVD.
    """

    n_components: int = 2
    method: Method = "fa"
    rotation: Rotation = None
    tol: float = 1e-2
    max_iter: int = 1000
    svd_method: SvdMethod = "randomized"
    iterated_power: int = 3

    def __post_init__(self) -> None:
        for name in ("n_components", "max_iter", "iterated_power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"model factor_analysis.{name} must be an integer of at least 1, got {value!r}"
                )
        if isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or self.tol <= 0:
            raise ConfigError(
                f"model factor_analysis.tol must be a positive number, got {self.tol!r}"
            )
        for name, literal in (
            ("method", Method),
            ("rotation", Rotation),
            ("svd_method", SvdMethod),
        ):
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model factor_analysis.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(map(repr, allowed))}"
                )
        if self.method == "ppca" and self.rotation is not None:
            raise ConfigError(
                "model factor_analysis.rotation applies to method 'fa' only: PPCA's loadings are "
                "the principal axes; set rotation: null or method: fa"
            )


@register(
    "factor_analysis",
    FactorAnalysisConfig,
    "Factor analysis / probabilistic PCA (scikit-learn), exact Gaussian likelihood",
)
class FactorAnalysisModel(ClassicalModel):
    """Factor analysis (Barber 2012, 21.2) or probabilistic PCA (Tipping & Bishop 1999).

    scikit-learn conventions: `fit` returns self; fitted state: `mean_` (D,), `loadings_` W
    (D, k), `noise_variance_` (D,) (the diagonal of Psi; constant for ppca) and, for fa,
    `n_iter_`. Data of any sample shape are flattened to D = spec.num_dims values.

    Args:
        config: the `FactorAnalysisConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: FactorAnalysisConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> FactorAnalysisModel:
        """Fit (mu, W, Psi) by scikit-learn's FactorAnalysis or PCA.

        Args:
            data: a genlab `Dataset` (x flattened to (N, D)) or a raw (N, D) tensor or array.
            train: only its `seed` is used (fa's randomized SVD); 0 when None.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, fitted.
        """
        if fit_options:
            raise ConfigError(
                f"factor_analysis.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; factor_analysis.fit takes only data and train"
            )
        x, spec = vectors_for_fit(self, data, "factor_analysis")  # (N, D) float64
        cfg = self.config
        num_rows, num_dims = x.shape
        k = cfg.n_components
        if num_rows < 2:
            raise DataError(
                f"data has {num_rows} row: factor_analysis needs at least 2 rows to estimate a "
                "covariance; give more rows"
            )
        if k > num_dims or (cfg.method == "ppca" and k >= num_dims):
            bound = "at most" if cfg.method == "fa" else "below"
            raise DataError(
                f"model factor_analysis.n_components={k} is larger than the data allow: "
                f"{cfg.method} needs n_components {bound} the data's {num_dims} dimensions; "
                "lower n_components"
            )
        if cfg.method == "ppca" and k >= num_rows:
            raise DataError(
                f"model factor_analysis.n_components={k} needs more than {k} rows for ppca, "
                f"the data have {num_rows}: lower n_components or give more rows"
            )
        seed = 0 if train is None else int(train.seed)
        if cfg.method == "fa":
            fa = FactorAnalysis(
                n_components=k,
                tol=cfg.tol,
                max_iter=cfg.max_iter,
                svd_method=cfg.svd_method,
                iterated_power=cfg.iterated_power,
                rotation=cfg.rotation,
                random_state=seed,
            ).fit(x)
            mean, loadings, noise = fa.mean_, fa.components_.T, fa.noise_variance_
            self.n_iter_ = int(fa.n_iter_)
        else:
            pca = PCA(n_components=k, svd_solver="full").fit(x)
            sigma2 = float(pca.noise_variance_)
            if not sigma2 > 0:
                raise DataError(
                    f"the data lie in a {k}-dimensional subspace (ppca noise variance "
                    f"{sigma2:g}): the density is singular; lower n_components"
                )
            strength = np.sqrt(np.maximum(pca.explained_variance_ - sigma2, 0.0))  # (k,)
            mean, loadings = pca.mean_, pca.components_.T * strength
            noise = np.full(num_dims, sigma2)
            self.n_iter_ = None
        self.spec = spec
        self.mean_ = np.array(mean, dtype=np.float64)
        self.loadings_ = np.array(loadings, dtype=np.float64)
        self.noise_variance_ = np.array(noise, dtype=np.float64)
        return self

    # -- sampling and likelihood -------------------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw x = mu + W z + Psi^(1/2) eps with z ~ N(0, I_k), eps ~ N(0, I_D).

        Args:
            num_samples: N, the number of samples.
            generator: the torch generator (CPU) for z and eps.
            cond: must be None (the model is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, *spec.shape).
        """
        reject_options("factor_analysis", "sample", options, cond)
        self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"factor_analysis.sample: num_samples must be an integer of 0 or more, got "
                f"{num_samples!r}"
            )
        loadings = torch.from_numpy(self.loadings_)  # (D, k)
        num_dims, k = loadings.shape
        z = torch.randn(num_samples, k, generator=generator, dtype=torch.float64)  # (N, k)
        eps = torch.randn(num_samples, num_dims, generator=generator, dtype=torch.float64)
        noise_std = torch.from_numpy(self.noise_variance_).sqrt()  # (D,)
        x = torch.from_numpy(self.mean_) + z @ loadings.T + eps * noise_std  # (N, D)
        return x.to(torch.float32).reshape(num_samples, *self.spec.shape)

    def covariance(self) -> np.ndarray:
        """The model covariance W W^T + Psi, (D, D) float64."""
        self._fitted()
        return self.loadings_ @ self.loadings_.T + np.diag(self.noise_variance_)

    def log_likelihood(
        self, x: Tensor | np.ndarray, *, cond: dict[str, Tensor] | None = None, **options: Any
    ) -> LogLikelihood:
        """Exact log N(x; mu, W W^T + Psi) per sample, in nats.

        Args:
            x: (B, *spec.shape) or (B, D).
            cond: must be None (the model is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood with nats float64 (B,) and kind "exact".
        """
        reject_options("factor_analysis", "log_likelihood", options, cond)
        self._fitted()
        flat = as_float64(x)
        if flat.ndim == 0 or math.prod(flat.shape[1:]) != self.spec.num_dims:
            raise DataError(
                f"factor_analysis.log_likelihood: x has shape {tuple(flat.shape)}, expected (B, "
                f"{', '.join(map(str, self.spec.shape))}) or (B, {self.spec.num_dims})"
            )
        flat = flat.reshape(flat.shape[0], self.spec.num_dims)  # (B, D)
        bad = int((~np.isfinite(flat)).sum())
        if bad:
            raise DataError(f"x has {bad} non-finite values (NaN or inf): drop or impute them")
        chol = np.linalg.cholesky(self.covariance())  # (D, D)
        white = np.linalg.solve(chol, (flat - self.mean_).T)  # (D, B), |white|^2 = Mahalanobis
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        num_dims = flat.shape[1]
        nats = -0.5 * (num_dims * math.log(2 * math.pi) + log_det + (white**2).sum(axis=0))
        return LogLikelihood(torch.from_numpy(nats).to(torch.float64), kind="exact")

    def _fitted(self) -> None:
        if getattr(self, "loadings_", None) is None:
            raise GenlabError(
                "this factor_analysis is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """mean (D,), loadings (D, k) and noise_variance (D,) as float64 tensors."""
        self._fitted()
        return {
            "mean": torch.from_numpy(self.mean_.copy()),
            "loadings": torch.from_numpy(self.loadings_.copy()),
            "noise_variance": torch.from_numpy(self.noise_variance_.copy()),
        }

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore the state written by `export_state`."""
        if self.spec is None:
            raise CheckpointError(
                "factor_analysis.import_state needs the data spec: create the model with spec="
            )
        names = {"mean", "loadings", "noise_variance"}
        if set(tensors) != names:
            raise CheckpointError(
                f"weights do not fit a 'factor_analysis' model: expected {sorted(names)}, got "
                f"{sorted(tensors)}; load a checkpoint saved by factor_analysis"
            )
        arrays = {k: v.detach().cpu().to(torch.float64).numpy().copy() for k, v in tensors.items()}
        d, k = self.spec.num_dims, self.config.n_components
        expected = {"mean": (d,), "loadings": (d, k), "noise_variance": (d,)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise CheckpointError(
                    f"factor_analysis state {name} has shape {arrays[name].shape}, expected "
                    f"{shape} for D={d}, n_components={k}: load it with the config it was "
                    "saved with"
                )
        self.mean_ = arrays["mean"]
        self.loadings_ = arrays["loadings"]
        self.noise_variance_ = arrays["noise_variance"]
        self.n_iter_ = None
