"""(S)ARIMA time-series model through statsmodels' state-space ARIMA, behind genlab's contract.

An ARIMA(p, d, q) model (Box & Jenkins 1970, "Time Series Analysis: Forecasting and Control")
says the d-times differenced series w_t = (1 - B)^d y_t follows an ARMA(p, q) process,

    w_t - mu = phi_1 (w_{t-1} - mu) + ... + phi_p (w_{t-p} - mu)
               + e_t + theta_1 e_{t-1} + ... + theta_q e_{t-q},   e_t ~ N(0, sigma^2),

and a seasonal order (P, D, Q, s) multiplies in the same polynomials of B^s. statsmodels'
`statsmodels.tsa.arima.model.ARIMA` writes it as a linear Gaussian state-space model (Harvey
1989; Durbin & Koopman 2012, "Time Series Analysis by State Space Methods") and fits it by exact
maximum likelihood through the Kalman filter. `trend` "c" is a constant mean (d + D = 0 only);
"t" a drift (a linear trend, d + D = 1 only: a constant slope of the differenced series).

Data: univariate only. The `timeseries` and `statsmodels` sources give float32 windows
(N, T, C) plus the split's whole series `info["series"]` (L, C); `fit` uses that series, so
every time step counts once (overlapping windows would count it up to T times). A data set with
C > 1 channels raises a `DataError` saying to pick one with columns=... . A raw series (L,) or
(L, 1) is also accepted.

Contract:
- `sample(N, generator=, horizon=)`: N simulated future paths continuing the training series,
  float32 (N, horizon, 1), horizon = spec.shape[0] (the data's window) by default. The state
  at the end of the series is drawn from its Kalman-filter predictive distribution N(a, P),
  then the state equation is run forward with Gaussian shocks; every draw comes from the torch
  `generator`, so a seed fixes the paths.
- `log_likelihood(x)`: per window x (B, T, 1), log p(x) in nats under the fitted parameters,
  from statsmodels' Kalman filter applied to that window as a series of its own (kind
  "exact"). For d = D = 0 it is the exact Gaussian density of the window (stationary initial
  state). With differencing the levels have no density: the first d + s D values are
  conditioned on, not scored, and the integrated states start from statsmodels' approximate
  diffuse prior (variance 1e6), so the figure is the conditional density of the rest up to
  that approximation; `details["values_scored"]` says how many values were scored.
- `forecast(steps, history=, alpha=)`: the point forecast and (1 - alpha) prediction
  intervals, after the training series or after a given window.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.classical.inputs import as_float64, reject_options

if TYPE_CHECKING:
    from statsmodels.tsa.arima.model import ARIMA as StatsmodelsARIMA

    from genlab.train.config import TrainConfig

Trend = Literal["auto", "n", "c", "t"]
Method = Literal["statespace", "innovations_mle"]


@dataclass(frozen=True)
class ARIMAConfig:
    """The `model:` section for `arima`.

    Args:
        order: (p, d, q): autoregressive order, differencing order, moving-average order.
        seasonal_order: (P, D, Q, s): the seasonal orders and the period s (s >= 2 when any of
            P, D, Q is non-zero); (0, 0, 0, 0) for none.
        trend: "auto" (a constant mean without differencing, none with it), "n" none, "c" a
            constant mean (needs d + D = 0), "t" a drift (needs d + D = 1).
        enforce_stationarity: keep the AR part stationary during fitting.
        enforce_invertibility: keep the MA part invertible during fitting.
        method: "statespace" (exact MLE by the Kalman filter, any order) or "innovations_mle"
            (MLE started from the innovations algorithm; non-seasonal or seasonal AR/MA).
        max_iter: optimizer iterations for "statespace".
    """

    order: tuple[int, int, int] = (1, 0, 0)
    seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0)
    trend: Trend = "auto"
    enforce_stationarity: bool = True
    enforce_invertibility: bool = True
    method: Method = "statespace"
    max_iter: int = 500

    def __post_init__(self) -> None:
        for name, size in (("order", 3), ("seasonal_order", 4)):
            value = getattr(self, name)
            if (
                not isinstance(value, (tuple, list))
                or len(value) != size
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)
            ):
                example = "[2, 0, 1]" if size == 3 else "[1, 0, 0, 12]"
                raise ConfigError(
                    f"model arima.{name} must be {size} integers of 0 or more (e.g. {example}), "
                    f"got {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        big_p, big_d, big_q, s = self.seasonal_order
        if (big_p or big_d or big_q) and s < 2:
            raise ConfigError(
                f"model arima.seasonal_order={list(self.seasonal_order)}: the period s (the "
                "fourth value) must be 2 or more when P, D or Q is set, e.g. [1, 0, 0, 12]"
            )
        if self.trend not in get_args(Trend):
            raise ConfigError(
                f"model arima.trend: {self.trend!r} is not one of "
                f"{', '.join(map(repr, get_args(Trend)))}"
            )
        integration = self.order[1] + big_d
        if self.trend == "c" and integration > 0:
            raise ConfigError(
                f"model arima.trend='c' needs d + D = 0 (differencing removes a constant; "
                f"here d + D = {integration}): use trend 't' for a drift with d + D = 1, or 'n'"
            )
        if self.trend == "t" and integration != 1:
            raise ConfigError(
                f"model arima.trend='t' (a drift) needs d + D = 1, got {integration}: use "
                "order [p, 1, q], or trend 'c' / 'n'"
            )
        if self.method not in get_args(Method):
            raise ConfigError(
                f"model arima.method: {self.method!r} is not one of "
                f"{', '.join(map(repr, get_args(Method)))}"
            )
        for name in ("enforce_stationarity", "enforce_invertibility"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model arima.{name} must be true or false")
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, int)
            or self.max_iter < 1
        ):
            raise ConfigError(
                f"model arima.max_iter must be an integer >= 1, got {self.max_iter!r}"
            )

    @property
    def statsmodels_trend(self) -> str:
        if self.trend != "auto":
            return self.trend
        return "c" if self.order[1] + self.seasonal_order[1] == 0 else "n"

    @property
    def burn(self) -> int:
        """Values at the start of a series conditioned on, not scored: d + s D."""
        return self.order[1] + self.seasonal_order[3] * self.seasonal_order[1]


@register(
    "arima",
    ARIMAConfig,
    "(seasonal) ARIMA time-series model via statsmodels: simulated futures, exact likelihood",
)
class ARIMA(ClassicalModel):
    """ARIMA(p, d, q)(P, D, Q, s) (Box & Jenkins 1970) fitted by exact MLE in statsmodels.

    scikit-learn conventions: the constructor stores its arguments, `fit` returns self, and
    fitted state ends in `_` (`results_` statsmodels' results, `params_`, `series_`,
    `converged_`).

    Args:
        config: the `ARIMAConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: ARIMAConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def _statsmodels(self, series: np.ndarray) -> StatsmodelsARIMA:
        from statsmodels.tsa.arima.model import ARIMA as StatsmodelsARIMA

        cfg = self.config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no date index: statsmodels warns, harmlessly
            return StatsmodelsARIMA(
                series,
                order=cfg.order,
                seasonal_order=cfg.seasonal_order,
                trend=cfg.statsmodels_trend,
                enforce_stationarity=cfg.enforce_stationarity,
                enforce_invertibility=cfg.enforce_invertibility,
            )

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> ARIMA:
        """Fit the parameters by exact maximum likelihood (statsmodels).

        Args:
            data: a `sequence` Dataset with one channel (its `info["series"]`, else its one
                window), or a raw series (L,) / (L, 1).
            train: unused (MLE has no randomness); accepted for the common interface.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, with `params_` float64 (k,), `param_names_`, `series_` float64 (L,),
            `converged_` and `results_` (statsmodels' ARIMAResults).
        """
        if fit_options:
            raise ConfigError(
                f"arima.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; arima.fit takes only data and train"
            )
        series, spec = self._fit_series(data)
        model = self._statsmodels(series)
        cfg = self.config
        kwargs: dict[str, Any] = {"method": cfg.method}
        if cfg.method == "statespace":
            kwargs["method_kwargs"] = {"maxiter": cfg.max_iter}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                results = model.fit(**kwargs)
            except (ValueError, np.linalg.LinAlgError) as e:
                raise DataError(
                    f"arima{cfg.order} could not be fitted to this series ({e}); try a lower "
                    "order or method 'statespace'"
                ) from None
        retvals = getattr(results, "mle_retvals", None) or {}
        self.converged_ = bool(retvals.get("converged", True)) and not any(
            "converge" in str(w.message).lower() for w in caught
        )
        self.spec = spec
        self.series_ = series
        self._set_params(np.asarray(results.params, dtype=np.float64), results)
        return self

    def _set_params(self, params: np.ndarray, results: Any | None = None) -> None:
        if results is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = self._statsmodels(self.series_).filter(params)
        self.params_ = params
        self.param_names_ = list(results.model.param_names)
        self.results_ = results

    def _fit_series(self, data: Any) -> tuple[np.ndarray, DataSpec]:
        """The training series, float64 (L,), and the spec."""
        if isinstance(data, Dataset):
            spec = data.spec
            if spec.modality != "sequence":
                raise DataError(
                    f"arima models a real-valued time series, but data {spec.name!r} is "
                    f"{spec.modality}: load a series, e.g. genlab.data.load('statsmodels', "
                    "dataset='nile') or load('timeseries', path='series.csv', columns='y')"
                )
            self._check_channels(spec.shape[-1], spec)
            series = data.info.get("series")
            if series is None:
                if len(data.x) != 1:
                    raise DataError(
                        f"arima fits one series, but {spec.name!r} gives {len(data.x)} windows "
                        "and no info['series']: pass the series itself, (L,) or (L, 1)"
                    )
                series = data.x[0]
            values = as_float64(series).reshape(-1)
        else:
            values = as_float64(data)
            if values.ndim == 3 and values.shape[0] == 1:
                values = values[0]
            if values.ndim == 2:
                self._check_channels(values.shape[1], None)
                values = values[:, 0]
            if values.ndim != 1:
                raise DataError(
                    f"arima.fit takes one series (L,) or (L, 1) or a sequence Dataset, got "
                    f"shape {tuple(values.shape)}; for many windows fit the series they were "
                    "cut from"
                )
            spec = self.spec or DataSpec(
                modality="sequence", shape=(len(values), 1), columns=({"name": "y"},)
            )
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise DataError(f"the series has {bad} non-finite values: fill or drop them first")
        cfg = self.config
        p, d, q = cfg.order
        big_p, big_d, big_q, s = cfg.seasonal_order
        needed = cfg.burn + max(p + s * big_p, q + s * big_q) + 2
        if len(values) < needed:
            raise DataError(
                f"the series has {len(values)} values, too few for arima order {list(cfg.order)} "
                f"seasonal {list(cfg.seasonal_order)} (at least {needed}); use a longer series or "
                "lower orders"
            )
        if np.ptp(values) == 0:
            raise DataError("the series is constant: there is nothing for arima to model")
        return values.copy(), spec

    @staticmethod
    def _check_channels(channels: int, spec: DataSpec | None) -> None:
        if channels != 1:
            names = ""
            if spec is not None and spec.columns:
                names = f" ({', '.join(str(c.get('name')) for c in spec.columns)})"
            raise DataError(
                f"arima is univariate, but the data has {channels} channels{names}: load one "
                "channel with columns='<name>' (e.g. genlab.data.load('statsmodels', "
                "dataset='macrodata', columns='realgdp'))"
            )

    def _fitted(self) -> None:
        if getattr(self, "params_", None) is None:
            raise GenlabError(
                "this arima is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )

    # -- likelihood --------------------------------------------------------------------------

    def _windows(self, x: Tensor | np.ndarray, what: str) -> np.ndarray:
        values = as_float64(x)
        if values.ndim == 3:
            self._check_channels(values.shape[2], self.spec)
            values = values[:, :, 0]
        if values.ndim != 2:
            raise DataError(
                f"arima.{what} takes windows (B, T, 1) or (B, T), got shape {tuple(values.shape)}"
            )
        if not np.isfinite(values).all():
            raise DataError(f"arima.{what}: x has non-finite values; drop or fill them first")
        return values

    def log_likelihood(
        self, x: Tensor | np.ndarray, *, cond: dict[str, Tensor] | None = None, **options: Any
    ) -> LogLikelihood:
        """log p(window) in nats under the fitted parameters, per window (statsmodels' filter).

        Args:
            x: windows (B, T, 1) or (B, T); each is scored as a series of its own.
            cond: must be None (arima is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood with nats float64 (B,), kind "exact" and details["values_scored"]
            = T - (d + s D) (see the module docstring).
        """
        reject_options("arima", "log_likelihood", options, cond)
        self._fitted()
        windows = self._windows(x, "log_likelihood")
        burn = self.config.burn
        if windows.shape[1] <= burn:
            raise DataError(
                f"arima.log_likelihood: windows of {windows.shape[1]} values have none to score "
                f"(the first d + s D = {burn} are conditioned on); give longer windows"
            )
        nats = np.empty(len(windows))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, window in enumerate(windows):
                nats[i] = self._statsmodels(window).loglike(self.params_)
        return LogLikelihood(
            torch.from_numpy(nats),
            kind="exact",
            details={"values_scored": windows.shape[1] - burn},
        )

    # -- sampling and forecasting ------------------------------------------------------------

    def _future_intercept(self, horizon: int) -> np.ndarray:
        """The observation intercept of the next `horizon` steps (the trend term), (horizon,)."""
        trend = self.config.statsmodels_trend
        if trend == "n":
            return np.zeros(horizon)
        coefficient = float(self.params_[0])  # trend terms come first in statsmodels' params
        if trend == "c":
            return np.full(horizon, coefficient)
        # "t": statsmodels' time index is 1 at the first value (trend_offset=1)
        return coefficient * (len(self.series_) + 1 + np.arange(horizon))

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        horizon: int | None = None,
        **options: Any,
    ) -> Tensor:
        """Simulated future paths continuing the training series.

        alpha_1 ~ N(a, P) (the predictive state after the series), then for each step
        y_t = intercept_t + Z alpha_t + eps_t, alpha_{t+1} = c + T alpha_t + R eta_t with
        eps_t ~ N(0, H), eta_t ~ N(0, Q) (the state-space form of Durbin & Koopman 2012).

        Args:
            num_samples: N.
            generator: the torch generator for every draw.
            cond: must be None.
            horizon: steps per path; spec.shape[0] (the data's window) by default.
            options: none others are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, horizon, 1).
        """
        reject_options("arima", "sample", options, cond, takes="horizon")
        self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"arima.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        horizon = self.spec.shape[0] if horizon is None else horizon
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"arima.sample: horizon must be an integer >= 1, got {horizon!r}")
        ssm = self.results_.model.ssm
        design = torch.from_numpy(np.asarray(ssm["design"], dtype=np.float64).reshape(1, -1))
        transition = torch.from_numpy(np.asarray(ssm["transition"], dtype=np.float64))
        selection = torch.from_numpy(np.asarray(ssm["selection"], dtype=np.float64))
        state_intercept = torch.from_numpy(np.asarray(ssm["state_intercept"], dtype=np.float64))
        state_cov = np.asarray(ssm["state_cov"], dtype=np.float64)
        obs_cov = float(np.asarray(ssm["obs_cov"]).reshape(-1)[0])
        k, r = selection.shape
        a = torch.from_numpy(np.asarray(self.results_.predicted_state[:, -1], dtype=np.float64))
        p_cov = np.asarray(self.results_.predicted_state_cov[:, :, -1], dtype=np.float64)
        n = num_samples

        p_root = _matrix_root(p_cov)  # (k, k)
        q_root = _matrix_root(state_cov)  # (r, r)
        z0 = torch.randn(n, k, generator=generator, dtype=torch.float64)
        eta = torch.randn(n, horizon, r, generator=generator, dtype=torch.float64)
        eps = torch.randn(n, horizon, generator=generator, dtype=torch.float64)

        intercept = torch.from_numpy(self._future_intercept(horizon))  # (H,)
        state = a + z0 @ p_root.T  # (N, k)
        y = torch.empty(n, horizon, dtype=torch.float64)
        for t in range(horizon):
            y[:, t] = intercept[t] + state @ design[0] + math.sqrt(obs_cov) * eps[:, t]
            state = state_intercept + state @ transition.T + (eta[:, t] @ q_root.T) @ selection.T
        return y.to(torch.float32).unsqueeze(-1)  # (N, H, 1)

    def forecast(
        self,
        steps: int,
        *,
        history: Tensor | np.ndarray | None = None,
        alpha: float = 0.05,
    ) -> dict[str, Tensor]:
        """Point forecasts and (1 - alpha) prediction intervals (statsmodels' get_forecast).

        Args:
            steps: how many steps ahead.
            history: a window (T,) or (T, 1) to forecast from, with the fitted parameters;
                None forecasts after the training series.
            alpha: 0.05 gives 95% intervals.

        Returns:
            {"mean", "std", "lower", "upper"}: float64 (steps,) each.
        """
        self._fitted()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"arima.forecast: steps must be an integer >= 1, got {steps!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ConfigError(f"arima.forecast: alpha must be in (0, 1), got {alpha!r}")
        results = self.results_
        if history is not None:
            window = self._windows(as_float64(history).reshape(1, -1), "forecast")[0]
            if len(window) <= self.config.burn:
                raise DataError(
                    f"arima.forecast: a history of {len(window)} values is too short for "
                    f"d + s D = {self.config.burn}"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = self._statsmodels(window).filter(self.params_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = results.get_forecast(steps)
            mean = np.asarray(fc.predicted_mean, dtype=np.float64)
            interval = np.asarray(fc.conf_int(alpha=alpha), dtype=np.float64)
            std = np.sqrt(np.asarray(fc.var_pred_mean, dtype=np.float64))
        return {
            "mean": torch.from_numpy(mean),
            "std": torch.from_numpy(std),
            "lower": torch.from_numpy(interval[:, 0].copy()),
            "upper": torch.from_numpy(interval[:, 1].copy()),
        }

    def coefficients(self) -> dict[str, float]:
        """The fitted parameters by statsmodels' names (const, ar.L1, ma.L1, sigma2, ...)."""
        self._fitted()
        return dict(zip(self.param_names_, map(float, self.params_), strict=True))

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """params float64 (k,), the training series float64 (L,) (the filter needs it to
        restart future paths from its end), and converged (int64 scalar)."""
        self._fitted()
        return {
            "params": torch.from_numpy(self.params_.copy()),
            "series": torch.from_numpy(self.series_.copy()),
            "converged": torch.tensor(int(self.converged_), dtype=torch.int64),
        }

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the fitted model: the series filtered with the saved parameters."""
        expected = {"params", "series", "converged"}
        if set(tensors) != expected:
            raise CheckpointError(
                f"weights do not fit an 'arima' model (got {', '.join(sorted(tensors))}; "
                f"expected {', '.join(sorted(expected))})"
            )
        self.series_ = tensors["series"].to(torch.float64).numpy().copy()
        params = tensors["params"].to(torch.float64).numpy().copy()
        expected_k = len(self._statsmodels(self.series_).param_names)
        if params.shape != (expected_k,):
            raise CheckpointError(
                f"arima state has {params.shape[0]} parameters, but order "
                f"{list(self.config.order)} seasonal {list(self.config.seasonal_order)} has "
                f"{expected_k}: load it with the config it was saved with"
            )
        self.converged_ = bool(int(tensors["converged"]))
        self._set_params(params)


def _matrix_root(cov: np.ndarray) -> Tensor:
    """L with L L^T = cov for a covariance that may be singular (eigen-decomposition, not
    Cholesky: the predictive state covariance is rank-deficient when the data fix some states)."""
    eigval, eigvec = np.linalg.eigh((cov + cov.T) / 2)
    return torch.from_numpy(eigvec * np.sqrt(np.clip(eigval, 0, None)))
