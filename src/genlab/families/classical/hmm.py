"""Hidden Markov model fitted by Baum-Welch EM, with exact likelihood and Viterbi decoding.

A hidden state chain z_1 -> z_2 -> ... with start probabilities pi and transition matrix A
emits one observation per step: p(x_{1:T}) = sum_z pi_{z_1} b_{z_1}(x_1) prod_t A_{z_{t-1} z_t}
b_{z_t}(x_t) (Rabiner 1989, "A tutorial on hidden Markov models"). The emission b_k is a
Gaussian ("gaussian"), a mixture of Gaussians ("gmm") or a table over symbols ("categorical").
Fitting is hmmlearn's Baum-Welch EM (Baum et al. 1970), the likelihood its forward algorithm
and `decode` its Viterbi algorithm (Viterbi 1967); the number of states can be chosen by BIC
(Schwarz 1978) or AIC (Akaike 1974). Sampling is done here in torch from the fitted
parameters, so a `torch.Generator` alone decides the draw (hmmlearn's `sample` uses numpy state).

Data: a genlab Dataset of modality "sequence" (float32 (B, T, C) windows; each window is one
sequence) or "text" (int64 (B, T) token blocks; each block is one sequence, so likelihoods are
per block like the data's rows; to fit one long stream, pass `[data.info["tokens"]]` to a model
created with spec=data.spec, which keeps the block length and vocabulary), a batch tensor or
array ((B, T, C) or (B, T)), or a list of sequences of varying lengths ((T_i, C) or (T_i,)
arrays). Categorical emissions need integer symbols; Gaussian and GMM emissions take real
values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from hmmlearn.hmm import GMMHMM, CategoricalHMM, GaussianHMM
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.classical.inputs import reject_options

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

Emission = Literal["gaussian", "gmm", "categorical"]
CovarianceType = Literal["full", "diag", "spherical", "tied"]
Selection = Literal["none", "bic", "aic"]
InitTransitions = Literal["uniform", "sticky", "random"]
SequenceData = Dataset | Tensor | np.ndarray | Sequence[Tensor | np.ndarray]
HiddenMarkovModel = GaussianHMM | GMMHMM | CategoricalHMM


@dataclass(frozen=True)
class HMMConfig:
    """The `model:` section for `hmm`.

    Args:
        n_states: number of hidden states K (ignored when `select_states` is set).
        emission: "gaussian" (one Gaussian per state), "gmm" (a mixture of `n_mix` Gaussians
            per state) or "categorical" (a probability table over integer symbols per state).
        covariance_type: for gaussian and gmm emissions: "full" (one (C, C) matrix per state or
            mixture component), "diag" (one (C,) variance vector), "spherical" (one variance)
            or "tied" (one (C, C) matrix shared by all states; for gmm, shared by the
            components of each state).
        n_mix: mixture components per state, for gmm emissions.
        select_states: "none" fits `n_states`; "bic" or "aic" fits every K in 1..`max_states`
            and keeps the one with the lowest criterion (scores in `selection_scores_`).
        max_states: the largest K tried by `select_states`.
        n_iter: Baum-Welch iterations at most.
        tol: EM stops when the log-likelihood improves by less than this.
        n_init: EM runs from different seeds (train.seed, train.seed + 1, ...); the run with
            the highest training log-likelihood is kept.
        init_transitions: how EM starts pi and A: "uniform" (every start and transition equally
            likely; the emissions, initialised by k-means for Gaussians and at random for
            symbols, break the symmetry), "sticky" (pi uniform, A = I / 2 + 1 / (2K): states
            tend to persist, which suits regime-like series) or "random" (hmmlearn's default,
            Dirichlet(1/K) draws, nearly one-hot, which can trap EM in a poor optimum).
            Categorical HMMs have many local optima whatever the start: use n_init > 1.
        min_covar: added to the covariance diagonal of the initial Gaussians (hmmlearn).
        emission_pseudocount: for categorical emissions, added to every state's expected
            symbol counts (a Dirichlet prior), so symbols unseen in training keep a nonzero
            probability; 0 is maximum likelihood.
    """

    n_states: int = 4
    emission: Emission = "gaussian"
    covariance_type: CovarianceType = "diag"
    n_mix: int = 2
    select_states: Selection = "none"
    max_states: int = 8
    n_iter: int = 100
    tol: float = 1e-3
    n_init: int = 1
    init_transitions: InitTransitions = "uniform"
    min_covar: float = 1e-3
    emission_pseudocount: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_states", "n_mix", "max_states", "n_iter", "n_init"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"model hmm.{name} must be an integer of at least 1, got {value!r}"
                )
        for name in ("tol", "emission_pseudocount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"model hmm.{name} must be a number of 0 or more, got {value!r}")
        value = self.min_covar
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"model hmm.min_covar must be a positive number, got {value!r}")
        choices = {
            "emission": Emission,
            "covariance_type": CovarianceType,
            "select_states": Selection,
            "init_transitions": InitTransitions,
        }
        for name, literal in choices.items():
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model hmm.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(map(repr, allowed))}"
                )


@register(
    "hmm", HMMConfig, "hidden Markov model (hmmlearn): Gaussian, GMM or categorical emissions"
)
class HMM(ClassicalModel):
    """Hidden Markov model: Baum-Welch fit, forward likelihood, Viterbi decoding (Rabiner 1989).

    Follows scikit-learn's conventions: the constructor stores its arguments, `fit` returns
    self, and fitted state ends in `_` (`hmm_`, the fitted hmmlearn model; `n_states_`;
    `n_features_`, C channels or the symbol count V; `selection_scores_`).

    Args:
        config: the `HMMConfig`.
        spec: the data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: HMMConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    @property
    def _categorical(self) -> bool:
        return self.config.emission == "categorical"

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, data: SequenceData, train: TrainConfig | None = None, **fit_options: Any) -> HMM:
        """Fit by Baum-Welch EM; with `select_states`, choose K by BIC or AIC.

        Args:
            data: a `Dataset` of modality "sequence" (float32 (B, T, C)) or "text" (int64
                (B, T)); a batch tensor or array (B, T, C) or (B, T); or a list of sequences of
                varying lengths, (T_i, C) or (T_i,) each. Every row or item is one sequence.
            train: only its `seed` is used (seeds hmmlearn's initialisation); 0 when None.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, with `hmm_`, `n_states_`, `n_features_` and `selection_scores_` ({K:
            criterion} when selecting, else None). The spec is the Dataset's; for other data
            it is built with T = the longest sequence (the default length of `sample`).
        """
        if fit_options:
            raise ConfigError(
                f"hmm.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; hmm.fit takes only data and train"
            )
        seqs, spec = self._fit_data(data)
        x, lengths = np.concatenate(seqs), np.array([len(s) for s in seqs])
        n_features = self._n_features(seqs, spec)
        seed = 0 if train is None else int(train.seed)
        cfg = self.config
        if cfg.select_states == "none":
            candidates = [cfg.n_states]
        else:
            candidates = list(range(1, cfg.max_states + 1))
        # k-means places one initial mean per state (per mixture component for gmm).
        needed = max(candidates) * (cfg.n_mix if cfg.emission == "gmm" else 1)
        if len(x) < needed:
            knob = "max_states" if cfg.select_states != "none" else "n_states"
            raise DataError(
                f"data has {len(x)} observations (time steps over all sequences), but an HMM "
                f"with {max(candidates)} states needs at least {needed}: it cannot have more "
                f"states than observations; lower model hmm.{knob} or give more data"
            )

        best, scores = None, {}
        for k in candidates:
            model = self._fit_states(k, x, lengths, seed, n_features)
            if cfg.select_states == "none":
                best = model
                break
            if model is None:
                scores[k] = float("inf")
                continue
            score = model.bic(x, lengths) if cfg.select_states == "bic" else model.aic(x, lengths)
            scores[k] = float(score)
            if best is None or scores[k] < scores[best.n_components]:
                best = model
        if best is None:
            raise DataError(
                f"EM left a state with no data in every run (K={max(candidates)}): the data "
                f"cannot support that many states; lower model hmm.n_states or hmm.max_states"
            )

        self.spec = spec
        self.hmm_ = best
        self.n_states_ = int(best.n_components)
        self.n_features_ = n_features
        self.selection_scores_ = scores or None
        return self

    def _fit_states(
        self, k: int, x: np.ndarray, lengths: np.ndarray, seed: int, n_features: int
    ) -> HiddenMarkovModel | None:
        """The best of `n_init` EM runs with K states, or None when every run degenerated."""
        best, best_ll = None, -np.inf
        for i in range(self.config.n_init):
            model = self._new_hmm(k, seed + i, n_features).fit(x, lengths)
            if not _finish_fit(model):
                continue
            if self.config.n_init == 1:
                return model
            ll = model.score(x, lengths)
            if ll > best_ll:
                best, best_ll = model, ll
        return best

    def _new_hmm(self, k: int, seed: int, n_features: int) -> HiddenMarkovModel:
        """An unfitted hmmlearn model with K states, seeded, started as the config says."""
        cfg = self.config
        common = {"n_components": k, "n_iter": cfg.n_iter, "tol": cfg.tol, "random_state": seed}
        if cfg.emission == "gaussian":
            model = GaussianHMM(
                covariance_type=cfg.covariance_type, min_covar=cfg.min_covar, **common
            )
        elif cfg.emission == "gmm":
            model = GMMHMM(
                n_mix=cfg.n_mix,
                covariance_type=cfg.covariance_type,
                min_covar=cfg.min_covar,
                **common,
            )
        else:
            model = CategoricalHMM(
                n_features=n_features, emissionprob_prior=1.0 + cfg.emission_pseudocount, **common
            )
        if cfg.init_transitions != "random":
            # hmmlearn initialises only the parameters named in init_params ('s' start, 't'
            # transitions); the ones set here are kept as EM's starting point.
            model.init_params = model.init_params.replace("s", "").replace("t", "")
            model.startprob_ = np.full(k, 1.0 / k)
            uniform = np.full((k, k), 1.0 / k)
            sticky = cfg.init_transitions == "sticky"
            model.transmat_ = 0.5 * np.eye(k) + 0.5 * uniform if sticky else uniform
        return model

    def _fit_data(self, data: SequenceData) -> tuple[list[np.ndarray], DataSpec]:
        """The sequences as (T_i, C) float64 or (T_i, 1) int64 arrays, and their spec."""
        if isinstance(data, Dataset):
            modality = data.spec.modality
            if modality not in ("sequence", "text"):
                raise DataError(
                    f"hmm models sequences, but data {data.spec.name!r} has modality "
                    f"{modality!r}: give a time series (modality 'sequence', e.g. "
                    "genlab.data.load('statsmodels')) or token ids (modality 'text')"
                )
            if modality == "text" and not self._categorical:
                raise DataError(
                    f"data {data.spec.name!r} holds token ids (modality 'text'); an HMM over "
                    "symbols needs model hmm.emission='categorical'"
                )
            seqs = self._sequences(data.x, "data")
            spec = data.spec
        else:
            seqs = self._sequences(data, "data")
            longest = max(len(s) for s in seqs)
            if self._categorical:
                built = DataSpec(modality="text", shape=(longest,))
            else:
                built = DataSpec(modality="sequence", shape=(longest, seqs[0].shape[1]))
            spec = self.spec or built
        known = self.spec
        if not self._categorical and known is not None and known.modality == "sequence":
            if seqs[0].shape[1] != known.shape[-1]:
                raise DataError(
                    f"this hmm is for series of {known.shape[-1]} channels, but the data has "
                    f"{seqs[0].shape[1]}: create a new model for this data"
                )
        return seqs, spec

    def _n_features(self, seqs: list[np.ndarray], spec: DataSpec) -> int:
        """C channels, or the symbol count V (the spec's vocabulary size, else max id + 1)."""
        if not self._categorical:
            return int(seqs[0].shape[1])
        largest = int(max(s.max() for s in seqs))
        levels = spec.discrete_levels
        if levels is None:
            return largest + 1
        if largest >= levels:
            raise DataError(
                f"data holds symbol {largest}, but its spec has a vocabulary of {levels} "
                f"symbols (0..{levels - 1}): re-encode the data with its tokenizer"
            )
        return int(levels)

    def _sequences(self, data: SequenceData, what: str) -> list[np.ndarray]:
        """Validate and convert a batch or a list into per-sequence 2-D numpy arrays."""
        if isinstance(data, (Tensor, np.ndarray)):
            if data.ndim not in (2, 3):
                raise DataError(
                    f"hmm: {what} has shape {tuple(data.shape)}; give a batch (B, T, C) or "
                    "(B, T), or a list of sequences (T_i, C) or (T_i,)"
                )
            items = list(data)
        elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            items = list(data)
        else:
            raise DataError(
                f"hmm: {what} is a {type(data).__name__}; give a genlab Dataset, a batch "
                "tensor (B, T, C) or (B, T), or a list of sequences (T_i, C) or (T_i,)"
            )
        if not items:
            raise DataError(f"hmm: {what} holds no sequences; give at least one")
        seqs = [self._one_sequence(item, i, what) for i, item in enumerate(items)]
        channels = {s.shape[1] for s in seqs}
        if len(channels) > 1:
            raise DataError(
                f"hmm: the sequences of {what} have different channel counts "
                f"({', '.join(map(str, sorted(channels)))}); every sequence needs the same C"
            )
        return seqs

    def _one_sequence(self, item: Any, index: int, what: str) -> np.ndarray:
        array = item.detach().cpu().numpy() if isinstance(item, Tensor) else np.asarray(item)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or (self._categorical and array.shape[1] != 1):
            shape = "(T_i,)" if self._categorical else "(T_i, C) or (T_i,)"
            raise DataError(
                f"hmm: sequence {index} of {what} has shape {array.shape}; each sequence must be "
                f"{shape}"
            )
        if array.shape[0] == 0:
            raise DataError(
                f"hmm: sequence {index} of {what} has length 0; every sequence needs at least "
                "one time step (drop the empty ones)"
            )
        if self._categorical:
            if not np.issubdtype(array.dtype, np.integer):
                raise DataError(
                    f"hmm: emission='categorical' needs integer symbols (token ids), but "
                    f"{what} holds {array.dtype} values; give int64 ids (e.g. a 'text' data "
                    "set or x.long()), or use emission='gaussian' for real values"
                )
            if array.min() < 0:
                raise DataError(
                    f"hmm: sequence {index} of {what} holds the negative symbol "
                    f"{int(array.min())}; symbols are ids 0..V-1"
                )
            return array.astype(np.int64)
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"hmm: {what} holds {array.dtype} values; give numbers")
        array = array.astype(np.float64)
        bad = int((~np.isfinite(array)).sum())
        if bad:
            raise DataError(
                f"hmm: sequence {index} of {what} has {bad} non-finite values (NaN or inf): "
                "drop or impute them first"
            )
        return array

    # -- sampling, likelihood and decoding ---------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        length: int | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw sequences: z_1 ~ pi, z_t ~ A[z_{t-1}], x_t ~ b_{z_t}, all from `generator`.

        States, mixture components and symbols are drawn by inverting the cumulative
        probabilities at uniform draws; Gaussian emissions are mu + L eps with L the Cholesky
        factor of the state's (or component's) covariance. The uniforms and normals are drawn
        in fixed shapes before any is used, so one generator seed gives one result.

        Args:
            num_samples: N, the number of sequences.
            generator: the torch generator (CPU) for every draw.
            cond: must be None (hmm is unconditional).
            length: T, time steps per sequence; None uses the training length (spec.shape[0]).
            options: none other are accepted; any raise `ConfigError`.

        Returns:
            float32 (N, T, C) for gaussian and gmm emissions, int64 (N, T) for categorical.
        """
        reject_options("hmm", "sample", options, cond, takes="only length")
        model = self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"hmm.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        length = self.spec.shape[0] if length is None else length
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ConfigError(f"hmm.sample: length must be an integer of 1 or more, got {length!r}")
        n, emission = num_samples, self.config.emission
        u_state = torch.rand(n, length, generator=generator, dtype=torch.float64)  # (N, T)
        # u_emit picks the symbol (categorical) or the mixture component (gmm)
        u_emit = torch.rand(n, length, generator=generator, dtype=torch.float64)  # (N, T)
        if emission != "categorical":
            z = torch.randn(n, length, self.n_features_, generator=generator, dtype=torch.float64)

        states = _markov_chain(model.startprob_, model.transmat_, u_state)  # (N, T)
        if emission == "categorical":
            emit_cdf = torch.from_numpy(model.emissionprob_).cumsum(-1)  # (K, V)
            return _inverse_cdf_per_state(emit_cdf, states, u_emit)  # (N, T) int64

        means = torch.from_numpy(np.asarray(model.means_))  # (K, C) or (K, M, C)
        chol = torch.linalg.cholesky(torch.from_numpy(_full_covariances(model)))
        if emission == "gaussian":
            return _gaussian_draws(means, chol, states, z).to(torch.float32)
        weight_cdf = torch.from_numpy(model.weights_).cumsum(-1)  # (K, M)
        mix = _inverse_cdf_per_state(weight_cdf, states, u_emit)  # (N, T)
        m = weight_cdf.shape[1]
        component = states * m + mix  # index into the K * M Gaussians
        c = self.n_features_
        x = _gaussian_draws(means.reshape(-1, c), chol.reshape(-1, c, c), component, z)
        return x.to(torch.float32)

    def log_likelihood(
        self,
        x: Tensor | np.ndarray | Sequence[Tensor | np.ndarray],
        *,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> LogLikelihood:
        """Exact log p(x_{1:T}) per sequence by the forward algorithm (hmmlearn's `score`).

        Args:
            x: a batch (B, T, C) or (B, T) (token ids for categorical; one channel for
                gaussian/gmm), or a list of B sequences of varying lengths.
            cond: must be None (hmm is unconditional).
            options: none are accepted; any raise `ConfigError`.

        Returns:
            LogLikelihood with nats float64 (B,) and kind "exact".
        """
        reject_options("hmm", "log_likelihood", options, cond)
        model = self._fitted()
        if isinstance(x, (Tensor, np.ndarray)) and x.ndim >= 1 and x.shape[0] == 0:
            return LogLikelihood(torch.empty(0, dtype=torch.float64), kind="exact")
        seqs = self._score_sequences(x)
        nats = torch.tensor([model.score(s) for s in seqs], dtype=torch.float64)  # (B,)
        return LogLikelihood(nats, kind="exact")

    def decode(
        self, x: Tensor | np.ndarray | Sequence[Tensor | np.ndarray]
    ) -> tuple[Tensor, Tensor | list[Tensor]]:
        """The most probable state path of each sequence (Viterbi 1967, hmmlearn's `decode`).

        Args:
            x: a batch (B, T, C) or (B, T), or a list of B sequences of varying lengths.

        Returns:
            (log_prob, states): log_prob float64 (B,), the log joint probability of each
            sequence with its best path; states int64 (B, T) for a batch, or a list of (T_i,)
            int64 tensors for a list.
        """
        model = self._fitted()
        if isinstance(x, (Tensor, np.ndarray)) and x.ndim >= 2 and x.shape[0] == 0:
            empty = torch.empty(0, dtype=torch.float64)
            return empty, torch.empty(0, x.shape[1], dtype=torch.int64)
        seqs = self._score_sequences(x)
        decoded = [model.decode(s, algorithm="viterbi") for s in seqs]
        log_prob = torch.tensor([lp for lp, _ in decoded], dtype=torch.float64)  # (B,)
        paths = [torch.from_numpy(np.asarray(p, dtype=np.int64)) for _, p in decoded]
        if isinstance(x, (Tensor, np.ndarray)):
            return log_prob, torch.stack(paths)  # (B, T)
        return log_prob, paths

    def _score_sequences(self, x: Any) -> list[np.ndarray]:
        """Sequences for scoring, checked against the fitted channel or symbol count."""
        if isinstance(x, (Tensor, np.ndarray)) and x.ndim == 2 and not self._categorical:
            if self.n_features_ != 1:
                raise DataError(
                    f"hmm: x has shape {tuple(x.shape)}, but this hmm has {self.n_features_} "
                    f"channels: give (B, T, {self.n_features_}) or a list of (T_i, "
                    f"{self.n_features_}) sequences"
                )
        seqs = self._sequences(x, "x")
        if self._categorical:
            largest = max(int(s.max()) for s in seqs)
            if largest >= self.n_features_:
                raise DataError(
                    f"hmm: x holds symbol {largest}, but this hmm emits symbols "
                    f"0..{self.n_features_ - 1}: encode x with the training data's tokenizer"
                )
        elif seqs[0].shape[1] != self.n_features_:
            raise DataError(
                f"hmm: x has {seqs[0].shape[1]} channels, but this hmm was fitted on "
                f"{self.n_features_}: give (B, T, {self.n_features_})"
            )
        return seqs

    def _fitted(self) -> HiddenMarkovModel:
        model = getattr(self, "hmm_", None)
        if model is None:
            raise GenlabError(
                "this hmm is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )
        return model

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """Fitted parameters as tensors (K states, C channels or V symbols, M components).

        Returns:
            startprob (K,), transmat (K, K), n_states and n_features int64 scalars; for
            gaussian means (K, C) and covars (full (K, C, C), diag (K, C), spherical (K,),
            tied (C, C)); for gmm weights (K, M), means (K, M, C) and covars (full
            (K, M, C, C), diag (K, M, C), spherical (K, M), tied (K, C, C)); for categorical
            emissionprob (K, V); selection_scores (max_states,) (entry i for K = i + 1) when
            K was selected.
        """
        model = self._fitted()
        arrays = {"startprob": model.startprob_, "transmat": model.transmat_}
        if self.config.emission == "gaussian":
            arrays.update(means=model.means_, covars=model._covars_)
        elif self.config.emission == "gmm":
            arrays.update(weights=model.weights_, means=model.means_, covars=model.covars_)
        else:
            arrays["emissionprob"] = model.emissionprob_
        state = {
            name: torch.from_numpy(np.array(a, dtype=np.float64)) for name, a in arrays.items()
        }
        state["n_states"] = torch.tensor(self.n_states_, dtype=torch.int64)
        state["n_features"] = torch.tensor(self.n_features_, dtype=torch.int64)
        if self.selection_scores_ is not None:
            ks = sorted(self.selection_scores_)
            state["selection_scores"] = torch.tensor(
                [self.selection_scores_[k] for k in ks], dtype=torch.float64
            )
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the fitted hmmlearn model from `export_state`'s tensors."""
        if self.spec is None:
            raise CheckpointError(
                "hmm.import_state needs the data spec: create the model with spec="
            )
        emission = self.config.emission
        emission_keys = {
            "gaussian": {"means", "covars"},
            "gmm": {"weights", "means", "covars"},
            "categorical": {"emissionprob"},
        }[emission]
        required = {"startprob", "transmat", "n_states", "n_features"} | emission_keys
        allowed = required | {"selection_scores"}
        missing, unknown = required - set(tensors), set(tensors) - allowed
        if missing or unknown:
            raise CheckpointError(
                f"weights do not fit an 'hmm' model with emission={emission!r} (missing: "
                f"{', '.join(sorted(missing)) or '-'}; unexpected: "
                f"{', '.join(sorted(unknown)) or '-'}): load it with the config it was saved with"
            )
        k, f = int(tensors["n_states"]), int(tensors["n_features"])
        if self.config.select_states == "none" and k != self.config.n_states:
            raise CheckpointError(
                f"hmm state has {k} states but the config says n_states={self.config.n_states}: "
                "load it with the config it was saved with"
            )
        arrays = {
            name: tensors[name].detach().cpu().to(torch.float64).numpy().copy()
            for name in required - {"n_states", "n_features"}
        }
        m, kind = self.config.n_mix, self.config.covariance_type
        expected = {"startprob": (k,), "transmat": (k, k)}
        if emission == "gaussian":
            expected["means"] = (k, f)
            expected["covars"] = {"full": (k, f, f), "diag": (k, f), "spherical": (k,)}.get(
                kind, (f, f)
            )
        elif emission == "gmm":
            expected.update(weights=(k, m), means=(k, m, f))
            expected["covars"] = {
                "full": (k, m, f, f),
                "diag": (k, m, f),
                "spherical": (k, m),
                "tied": (k, f, f),
            }[kind]
        else:
            expected["emissionprob"] = (k, f)
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise CheckpointError(
                    f"hmm state {name} has shape {arrays[name].shape}, expected {shape} for "
                    f"K={k}, {f} features, emission={emission!r}, covariance_type={kind!r}: "
                    "load it with the config it was saved with"
                )

        model = self._new_hmm(k, seed=0, n_features=f)
        model.startprob_ = arrays["startprob"]
        model.transmat_ = arrays["transmat"]
        if emission == "categorical":
            model.emissionprob_ = arrays["emissionprob"]
        else:
            model.n_features = f
            model.means_ = arrays["means"]
            model.covars_ = arrays["covars"]
            if emission == "gmm":
                model.weights_ = arrays["weights"]
        self.hmm_ = model
        self.n_states_ = k
        self.n_features_ = f
        if "selection_scores" in tensors:
            scores = tensors["selection_scores"].to(torch.float64).tolist()
            self.selection_scores_ = {i + 1: float(s) for i, s in enumerate(scores)}
        else:
            self.selection_scores_ = None


def _markov_chain(startprob: np.ndarray, transmat: np.ndarray, u: Tensor) -> Tensor:
    """State paths int64 (N, T) from startprob (K,), transmat (K, K) and uniforms u (N, T)."""
    start_cdf = torch.from_numpy(startprob).cumsum(-1)  # (K,)
    trans_cdf = torch.from_numpy(transmat).cumsum(-1)  # (K, K)
    states = torch.empty(u.shape, dtype=torch.int64)
    states[:, 0] = _inverse_cdf(start_cdf, u[:, 0])
    for t in range(1, u.shape[1]):
        states[:, t] = _inverse_cdf(trans_cdf[states[:, t - 1]], u[:, t])  # row of z_{t-1}
    return states


def _inverse_cdf(cdf: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draws i with cdf[i - 1] <= u < cdf[i]; cdf (K,) and any u, or (N, K), u (N,)."""
    if cdf.ndim == 1:
        index = torch.searchsorted(cdf, u.contiguous(), right=True)
    else:  # few states per row: counting is faster than torch's batched searchsorted
        index = (u.unsqueeze(-1) >= cdf).sum(-1)
    return index.clamp_(max=cdf.shape[-1] - 1)  # rounding can leave cdf[-1] a hair below 1


def _inverse_cdf_per_state(cdf: Tensor, states: Tensor, u: Tensor) -> Tensor:
    """Draws from row states[n, t] of cdf (K, V) at uniforms u (N, T): int64 (N, T)."""
    out = torch.zeros_like(states)
    for k in range(cdf.shape[0]):
        out = torch.where(states == k, _inverse_cdf(cdf[k], u), out)
    return out


def _gaussian_draws(means: Tensor, chol: Tensor, index: Tensor, z: Tensor) -> Tensor:
    """x = mu_j + L_j z at each step, j = index (N, T); means (J, C), chol (J, C, C), z (N, T, C)."""
    noise = torch.zeros_like(z)
    for j in range(means.shape[0]):
        noise = torch.where((index == j).unsqueeze(-1), z @ chol[j].T, noise)
    return means[index] + noise


def _full_covariances(model: GaussianHMM | GMMHMM) -> np.ndarray:
    """Covariances as full matrices: (K, C, C) for GaussianHMM, (K, M, C, C) for GMMHMM."""
    gaussian = isinstance(model, GaussianHMM)
    # GaussianHMM keeps its stored form in _covars_ (its covars_ property misreads spherical
    # variances for C > 1); GMMHMM stores covars_ as is.
    cov = np.asarray(model._covars_ if gaussian else model.covars_)
    lead, c = model.means_.shape[:-1], model.means_.shape[-1]  # (K,) or (K, M); C
    kind = model.covariance_type
    if kind == "full":
        return cov
    if kind == "diag":
        return cov[..., None] * np.eye(c)
    if kind == "spherical":
        return cov[..., None, None] * np.eye(c)
    # tied: one (C, C) for all states (gaussian), or one per state for all its components (gmm)
    return np.broadcast_to(cov if gaussian else cov[:, None], (*lead, c, c)).copy()


def _finish_fit(model: HiddenMarkovModel) -> bool:
    """Put EM's result in canonical form; False when a parameter is not finite.

    A transition or emission row is all zero when its state had no posterior weight in the
    training data (hmmlearn leaves such rows unnormalised and then refuses to score). Such a
    state is never reached, so its row does not change the likelihood; a uniform row keeps the
    model a valid HMM. Spherical Gaussian variances are stored as (K,): hmmlearn's M-step tiles
    them to (K, C) copies of one value. NaN means (a Gaussian state with no data) cannot be
    repaired.
    """
    names = ["transmat_"] + {
        GaussianHMM: [],
        GMMHMM: ["weights_"],
        CategoricalHMM: ["emissionprob_"],
    }[type(model)]
    for name in names:
        rows = getattr(model, name)
        empty = rows.sum(axis=-1) == 0
        rows[empty] = 1.0 / rows.shape[-1]
    if isinstance(model, GaussianHMM) and model.covariance_type == "spherical":
        model._covars_ = np.asarray(model._covars_).reshape(model.n_components, -1)[:, 0].copy()
    params = [model.startprob_, model.transmat_] + [getattr(model, name) for name in names]
    if not isinstance(model, CategoricalHMM):
        covars = model._covars_ if isinstance(model, GaussianHMM) else model.covars_
        params += [np.asarray(model.means_), np.asarray(covars)]
    return all(np.isfinite(p).all() for p in params)
