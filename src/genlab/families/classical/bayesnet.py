"""Discrete Bayesian network for tables: learned structure, exact inference (pgmpy inside).

The joint distribution of a table's columns factorises over a directed acyclic graph,
p(v_1, ..., v_V) = prod_j P(v_j | parents(v_j)), with one conditional probability table (CPD)
per column (Pearl 1988; Koller & Friedman 2009). Every column becomes a discrete variable:

    categorical  its categories are the states; boolean columns have the states False, True.
    numeric      quantile bins (`num_bins`): a value holding at least 1/num_bins of the rows gets a
                 bin of its own (capital gains of 0, say), the other values are cut at the
                 quantiles of the rest. Integer columns (and dates of day resolution) are cut
                 between whole numbers, so a bin is an integer range [a, b]; float columns are
                 cut into intervals [a, b). Datetime columns are binned in days since 1970-01-01.
    missing      a column with missing cells has one more state, "<missing>".
    constant     a column with a single value in the training rows (no missing cells) carries no
                 information: it is left out of the network with a warning and a note in
                 `notes_`, and sampled as that value.
    id           id-like columns (role "excluded" in the schema) are ignored.

Structure: hill climbing on the BIC or BDeu score with at most `max_indegree` parents (Koller &
Friedman 2009, sec. 18.4.3), or the Chow-Liu maximum mutual-information tree (Chow & Liu 1968),
the fast option. Parameters: Bayesian estimation with a BDeu, K2 or uniform Dirichlet prior, or
maximum likelihood. pgmpy does the learning (`HillClimbSearch`, `TreeSearch`,
`DiscreteBayesianEstimator`, `DiscreteMLE`), the forward sampling (`BayesianModelSampling`,
seeded with an integer drawn from the torch generator) and exact inference
(`VariableElimination`).

Back to values: a sampled numeric bin becomes a value drawn uniformly within the bin (a uniform
integer of [a, b] for integer columns, a uniform real of [a, b) for float columns, rounded to the
decimals the file uses), so the model of a numeric column is piecewise uniform. Samples are
encoded by the table's codec, so `sample` returns rows in the data set's space (float32 (N, D))
and `sample_frame` the same rows as a typed DataFrame.

Likelihoods, both exact:
    log_likelihood(x)                log P(discretized row) = sum_j log P(bin_j | parents), the
                                     probability of the row's states (details["discretized"]).
    log_likelihood(x, density=True) the piecewise-uniform model's density: the above plus
                                     -log(bin width) per numeric value (width in the column's
                                     units, days for dates; for integer columns the width is the
                                     number of integers in the bin, so the figure is a
                                     probability mass over whole numbers). Values outside the
                                     training range have density 0 (log -inf); "<missing>" and
                                     categorical states contribute their probability only.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.data.tables import MISSING_CATEGORY, TableCodec, codec_from_spec

if TYPE_CHECKING:
    from pgmpy.models import DiscreteBayesianNetwork

    from genlab.train.config import TrainConfig

Structure = Literal["hill_climb", "chow_liu"]
Score = Literal["bic", "bdeu"]
Prior = Literal["bdeu", "dirichlet", "k2", "mle"]
EvidenceMethod = Literal["rejection", "likelihood_weighting"]

STATE_FORMAT = 1
# Rejection sampling stops being practical when the evidence is rare: past this many expected
# forward draws the caller is asked to choose likelihood weighting.
MAX_REJECTION_DRAWS = 20_000_000
# Likelihood weighting draws this many weighted rows per requested row before resampling.
WEIGHTED_DRAWS_PER_SAMPLE = 10
_EPOCH = pd.Timestamp("1970-01-01")
_SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class BayesNetConfig:
    """The `model:` section for `bayesnet`.

    Args:
        structure: "hill_climb" (greedy search over DAGs on `score`) or "chow_liu" (the maximum
            mutual-information spanning tree: fast, one parent per column at most).
        score: hill climbing's score, "bic" (Schwarz 1978) or "bdeu" (Heckerman et al. 1995,
            with `equivalent_sample_size`).
        max_indegree: the most parents a column may have (hill climbing; 0 gives independent
            columns).
        num_bins: about how many quantile bins each numeric column is cut into.
        prior: parameter estimation: "bdeu" (Dirichlet with `equivalent_sample_size` spread
            evenly over each CPD), "k2" (one pseudo count per entry), "dirichlet" (`pseudo_count`
            per entry) or "mle" (maximum likelihood: unseen combinations get probability 0).
        equivalent_sample_size: the BDeu prior's (and BDeu score's) equivalent sample size.
        pseudo_count: the pseudo count per CPD entry of the "dirichlet" prior.
        max_iter: the most edge changes (add, remove, reverse) hill climbing makes.
    """

    structure: Structure = "hill_climb"
    score: Score = "bic"
    max_indegree: int = 3
    num_bins: int = 10
    prior: Prior = "bdeu"
    equivalent_sample_size: float = 10.0
    pseudo_count: float = 1.0
    max_iter: int = 1000

    def __post_init__(self) -> None:
        minimum = {"max_indegree": 0, "num_bins": 2, "max_iter": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"model bayesnet.{name} must be an integer of at least {low}, got {value!r}"
                )
        for name in ("equivalent_sample_size", "pseudo_count"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value < math.inf
            ):
                raise ConfigError(f"model bayesnet.{name} must be a positive number, got {value!r}")
        choices = {"structure": Structure, "score": Score, "prior": Prior}
        for name, literal in choices.items():
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"model bayesnet.{name}: {getattr(self, name)!r} is not one of "
                    f"{', '.join(map(repr, allowed))}"
                )


@register(
    "bayesnet",
    BayesNetConfig,
    "discrete Bayesian network (pgmpy): learned structure, exact inference",
)
class BayesNet(ClassicalModel):
    """Discrete Bayesian network over a table's columns (see the module docstring).

    Follows scikit-learn's conventions: the constructor stores its arguments, `fit` returns
    self, and fitted state ends in `_`: `network_` (the pgmpy `DiscreteBayesianNetwork`, whose
    states are the integers 0..K-1; `variables_` names them), `variables_` (per network column:
    type, states, labels, bin edges), `edges_` (the learned (parent, child) pairs),
    `constants_` ({column: value} left out of the network) and `notes_`.

    Args:
        config: the `BayesNetConfig`.
        spec: the table's data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: BayesNetConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | pd.DataFrame,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> BayesNet:
        """Discretize the table, learn the graph, then the CPDs.

        Args:
            data: a tabular genlab `Dataset` (the `table` or `adult` source: its typed rows in
                `info["dataframe"]`, else decoded from x) or a pandas DataFrame (types inferred
                as the `table` source does; missing cells are NaN or None).
            train: accepted for the contract; fitting draws no random numbers, so its seed
                changes nothing.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, fitted.
        """
        if fit_options:
            raise ConfigError(
                f"bayesnet.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; bayesnet.fit takes only data and train"
            )
        frame, spec = _table_of(data)
        columns = [c for c in codec_from_spec(spec).columns if c["type"] != "id"]
        if len(frame) < 2:
            raise DataError(
                f"bayesnet needs at least 2 rows to learn from, but the table has {len(frame)}: "
                "give more rows"
            )
        variables, constants, notes = [], {}, []
        for column in columns:
            series = frame[column["name"]]
            if series.nunique(dropna=False) == 1 and not series.isna().any():
                value = _json_value(column, series.iloc[0])
                constants[column["name"]] = value
                note = (
                    f"column {column['name']!r} holds a single value ({value!r}) in all "
                    f"{len(frame)} rows: it carries no information, so it is left out of the "
                    "network and sampled as that value"
                )
                notes.append(note)
                warnings.warn(f"bayesnet: {note}", UserWarning, stacklevel=2)
            else:
                variables.append(_make_variable(column, series, self.config.num_bins))
        if not variables:
            raise DataError(
                "bayesnet: every column of the table holds a single value, so there is nothing "
                "to model: give rows that vary"
            )
        codes = pd.DataFrame({v["name"]: _codes(v, frame[v["name"]]) for v in variables})
        edges = self._learn_structure(codes, variables)
        cpds = self._learn_parameters(codes, variables, edges)

        self.spec = spec
        self.variables_ = variables
        self.constants_ = constants
        self.notes_ = notes
        self.network_ = _build_network(variables, edges, cpds)
        self.edges_ = [tuple(e) for e in self.network_.edges()]
        return self

    def _learn_structure(
        self, codes: pd.DataFrame, variables: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """The learned DAG's edges (parent, child) on the discretized table."""
        cfg = self.config
        if len(variables) == 1:
            return []
        if cfg.structure == "chow_liu":
            with _pgmpy_quiet():
                from pgmpy.estimators import TreeSearch
            # One process: joblib workers cost seconds to start and the pairs take milliseconds.
            dag = TreeSearch(codes, n_jobs=1).estimate(
                estimator_type="chow-liu", show_progress=False
            )
        else:
            from pgmpy.causal_discovery import HillClimbSearch
            from pgmpy.structure_score import BIC, BDeu

            state_names = {v["name"]: list(range(len(v["labels"]))) for v in variables}
            if cfg.score == "bic":
                score = BIC(codes, state_names=state_names)
            else:
                score = BDeu(
                    codes,
                    equivalent_sample_size=cfg.equivalent_sample_size,
                    state_names=state_names,
                )
            search = HillClimbSearch(
                scoring_method=score,
                max_indegree=cfg.max_indegree,
                max_iter=cfg.max_iter,
                return_type="dag",
                show_progress=False,
            )
            dag = search.fit(codes).causal_graph_
        return [(str(u), str(v)) for u, v in dag.edges()]

    def _learn_parameters(
        self,
        codes: pd.DataFrame,
        variables: list[dict[str, Any]],
        edges: list[tuple[str, str]],
    ) -> dict[str, tuple[list[str], np.ndarray]]:
        """{column: (parents, CPD values (card, *parent_cards))} estimated on the codes."""
        from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE

        cfg = self.config
        state_names = {v["name"]: list(range(len(v["labels"]))) for v in variables}
        if cfg.prior == "mle":
            estimator = DiscreteMLE(state_names=state_names)
        else:
            estimator = DiscreteBayesianEstimator(
                state_names=state_names,
                prior_type={"bdeu": "BDeu", "k2": "K2", "dirichlet": "dirichlet"}[cfg.prior],
                equivalent_sample_size=cfg.equivalent_sample_size,
                pseudo_counts=cfg.pseudo_count if cfg.prior == "dirichlet" else None,
            )
        structure = _build_network(variables, edges, None)
        fitted = estimator.fit(structure, codes).parameters_
        return {
            str(cpd.variable): ([str(p) for p in cpd.variables[1:]], np.asarray(cpd.values))
            for cpd in fitted
        }

    # -- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> Tensor:
        """Draw rows by forward sampling, mapped back to values and encoded by the table codec.

        Args:
            num_samples: N, the number of rows.
            generator: the torch generator (CPU): it gives pgmpy's seed and the within-bin
                uniforms, so it alone decides the draw.
            cond: must be None; condition on column values with `evidence`.
            options: `evidence` and `evidence_method`, as for `sample_frame`; others raise.

        Returns:
            float32 (N, D), rows in the data set's space (`codec_from_spec(spec).decode` reads
            them back).
        """
        if cond is not None:
            raise ConfigError(
                "bayesnet.sample: cond is not used; condition on column values with "
                "evidence={'column': value}"
            )
        unknown = set(options) - {"evidence", "evidence_method"}
        if unknown:
            raise ConfigError(
                f"bayesnet.sample: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(sorted(unknown))}; allowed: evidence, evidence_method"
            )
        frame = self.sample_frame(num_samples, generator=generator, **options)
        return codec_from_spec(self.spec).encode(frame)

    def sample_frame(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        evidence: Mapping[str, Any] | None = None,
        evidence_method: EvidenceMethod = "rejection",
    ) -> pd.DataFrame:
        """Draw rows as a DataFrame with the table's columns, order and dtypes.

        Forward (ancestral) sampling in topological order draws every column's state given its
        parents'; numeric bins then become values drawn uniformly within the bin. The id
        (excluded) columns are not generated.

        Args:
            num_samples: N, the number of rows.
            generator: the torch generator (CPU) for pgmpy's seed and the within-bin uniforms.
            evidence: {column: value} to condition on, e.g. {"sex": "Female", "age": 30}. A
                category, True/False, None (or "<missing>") for a missing cell, a number (or
                date) for a numeric column, or a bin label of `query`'s output. A number is kept
                exactly in every row (its bin is the evidence); a bin label gives values drawn
                within that bin.
            evidence_method: "rejection" (exact: pgmpy's rejection sampling keeps the forward
                draws that match the evidence; it needs about N / P(evidence) draws, and past
                MAX_REJECTION_DRAWS it raises) or "likelihood_weighting" (approximate: pgmpy
                draws 10 N rows with the evidence clamped and weights them by its likelihood;
                N rows are resampled from them by weight, with replacement).

        Returns:
            DataFrame (N rows) of the model columns with the schema's dtypes.
        """
        self._fitted()
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(
                f"bayesnet.sample: num_samples must be an integer of 0 or more, got {num_samples!r}"
            )
        if evidence_method not in get_args(EvidenceMethod):
            raise ConfigError(
                f"bayesnet.sample: evidence_method {evidence_method!r} is not one of "
                f"{', '.join(map(repr, get_args(EvidenceMethod)))}"
            )
        states, exact = self._evidence_states(evidence or {}, where="sample")
        names = [v["name"] for v in self.variables_]
        if num_samples == 0:
            codes = pd.DataFrame({name: np.zeros(0, dtype=np.int64) for name in names})
        else:
            codes = self._draw_states(num_samples, states, evidence_method, generator)
        uniforms = torch.rand(
            (num_samples, len(names)), generator=generator, dtype=torch.float64
        ).numpy()  # (N, V)
        schema = {c["name"]: c for c in codec_from_spec(self.spec).columns}
        typed = {}
        for j, variable in enumerate(self.variables_):
            name = variable["name"]
            typed[name] = _values(
                variable,
                schema[name],
                codes[name].to_numpy(dtype=np.int64),
                uniforms[:, j],
                exact.get(name),
            )
        return self._frame(typed, num_samples)

    def _draw_states(
        self,
        num_samples: int,
        states: dict[str, int],
        method: EvidenceMethod,
        generator: torch.Generator | None,
    ) -> pd.DataFrame:
        """(N, V) integer states: ancestral sampling without evidence, else pgmpy's samplers.

        Without evidence the draw is `_forward_states` (the same ancestral sampling as pgmpy's
        `forward_sample`, vectorized over rows); with evidence pgmpy's rejection or likelihood
        weighting sampler runs, seeded with one draw of `generator`.
        """
        if not states:
            return _forward_states(self.network_, num_samples, generator)
        with _pgmpy_quiet():
            from pgmpy.sampling import BayesianModelSampling

        seed = int(torch.randint(0, 2**32 - 1, (1,), generator=generator))
        sampler = BayesianModelSampling(self.network_)
        probability = self._probability(states)
        if probability == 0.0:
            raise DataError(
                f"bayesnet: the evidence {self._describe(states)} has probability 0 under the "
                "model (prior='mle' gives unseen combinations probability 0): give other evidence"
            )
        evidence = list(states.items())
        if method == "rejection":
            expected = num_samples / probability
            if expected > MAX_REJECTION_DRAWS:
                raise ConfigError(
                    f"bayesnet: the evidence {self._describe(states)} has probability "
                    f"{probability:.3g}, so rejection sampling would need about "
                    f"{expected:,.0f} forward draws for {num_samples:,} rows: pass "
                    "evidence_method='likelihood_weighting', or ask for fewer rows"
                )
            with _pgmpy_quiet(), _numpy_global_state_kept():
                return sampler.rejection_sample(
                    evidence=evidence, size=num_samples, seed=seed, show_progress=False
                ).reset_index(drop=True)
        with _pgmpy_quiet(), _numpy_global_state_kept():
            weighted = sampler.likelihood_weighted_sample(
                evidence=evidence,
                size=WEIGHTED_DRAWS_PER_SAMPLE * num_samples,
                seed=seed,
                show_progress=False,
            )
        weights = torch.tensor(weighted.pop("_weight").to_numpy(dtype=np.float64))
        rows = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
        return weighted.iloc[rows.numpy()].reset_index(drop=True)

    def _frame(self, typed: dict[str, pd.Series], num_rows: int) -> pd.DataFrame:
        """The typed columns with the constants added, in the schema's order."""
        columns = [c for c in codec_from_spec(self.spec).columns if c["type"] != "id"]
        out = {}
        for column in columns:
            name = column["name"]
            if name in typed:
                out[name] = typed[name]
            else:
                out[name] = _constant_series(column, self.constants_[name], num_rows)
        return pd.DataFrame(out, index=pd.RangeIndex(num_rows))

    # -- likelihood and inference ------------------------------------------------------------

    def log_likelihood(
        self,
        x: Tensor | np.ndarray | pd.DataFrame,
        *,
        cond: dict[str, Tensor] | None = None,
        **options: Any,
    ) -> LogLikelihood:
        """Exact log-probability of each row's discretized states, or the piecewise density.

        Args:
            x: (B, D) rows in the data set's space (data.x or samples), or a DataFrame of the
                table's columns.
            cond: must be None.
            options: `density` (bool, default False): False gives log P(states) = sum_j
                log P(state_j | parents), the likelihood of the discretized row; True adds
                -log(bin width) for every numeric value, the density of the piecewise-uniform
                model (see the module docstring). Others raise `ConfigError`.

        Returns:
            LogLikelihood: nats float64 (B,), kind "exact", details {"discretized": not
            density, "density": density, "num_bins": num_bins}.
        """
        if cond is not None:
            raise ConfigError("bayesnet.log_likelihood: cond is not used; call it without cond")
        unknown = set(options) - {"density"}
        if unknown:
            raise ConfigError(
                f"bayesnet.log_likelihood: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(sorted(unknown))}; allowed: density"
            )
        density = options.get("density", False)
        if not isinstance(density, bool):
            raise ConfigError(
                f"bayesnet.log_likelihood: density must be True or False, got {density!r}"
            )
        network = self._fitted()
        codec = codec_from_spec(self.spec)
        if isinstance(x, pd.DataFrame):
            frame = codec.parse(x)
        else:
            values = x.detach().cpu() if isinstance(x, Tensor) else torch.as_tensor(x)
            if values.ndim != 2 or values.shape[1] != codec.num_features:
                raise DataError(
                    f"bayesnet.log_likelihood: x has shape {tuple(values.shape)}, expected "
                    f"(B, {codec.num_features}) rows of this table (or a DataFrame)"
                )
            if not torch.isfinite(values).all():
                raise DataError("x has non-finite values: give rows of the table (data.x)")
            frame = codec.decode(values)
        nats = np.zeros(len(frame), dtype=np.float64)
        with np.errstate(divide="ignore"):
            for name, value in self.constants_.items():
                column = next(c for c in codec.columns if c["name"] == name)
                matches = _json_series(column, frame[name]) == value
                nats += np.where(matches.to_numpy(dtype=bool, na_value=False), 0.0, -np.inf)
            codes = {}
            for variable in self.variables_:
                states = _codes(variable, frame[variable["name"]])
                nats += np.where(states < 0, -np.inf, 0.0)  # a missing cell the model never saw
                codes[variable["name"]] = np.maximum(states, 0)
                if density and variable["kind"] == "numeric":
                    nats += _log_inverse_width(variable, frame[variable["name"]])
            for cpd in network.get_cpds():
                index = tuple(codes[str(v)] for v in cpd.variables)
                nats += np.log(np.asarray(cpd.values)[index])
        details = {"discretized": not density, "density": density, "num_bins": self.config.num_bins}
        return LogLikelihood(torch.from_numpy(nats), kind="exact", details=details)

    def query(
        self, variables: str | Sequence[str], evidence: Mapping[str, Any] | None = None
    ) -> dict[str, dict[Any, float]]:
        """Exact marginal distributions by variable elimination (Zhang & Poole 1994).

        Args:
            variables: a column name or several; each gets its own marginal P(column | evidence).
            evidence: {column: value} as for `sample_frame` (a number means its bin).

        Returns:
            {column: {state: probability}}: states are the categories (True/False for
            boolean columns, "<missing>" for missing cells) or, for numeric columns, bin labels
            such as "[17, 21]" (integers a..b) or "[0.5, 1.25)" (reals).
        """
        with _pgmpy_quiet():
            from pgmpy.inference import VariableElimination

        network = self._fitted()
        names = [variables] if isinstance(variables, str) else list(variables)
        if not names:
            raise ConfigError("bayesnet.query: name at least one column to query")
        self._check_names(names, where="query")
        states, _ = self._evidence_states(evidence or {}, where="query")
        both = [n for n in names if n in (evidence or {})]
        if both:
            raise ConfigError(
                f"bayesnet.query: {both} are both queried and given as evidence: query other "
                "columns"
            )
        if states and self._probability(states) == 0.0:
            raise DataError(
                f"bayesnet.query: the evidence {self._describe(states)} has probability 0 under "
                "the model: give other evidence"
            )
        inference = VariableElimination(network)
        result: dict[str, dict[Any, float]] = {}
        for name in names:
            if name in self.constants_:
                value = self.constants_[name]
                if any(c["name"] == name and c["type"] == "datetime" for c in self.spec.columns):
                    value = _EPOCH + pd.Timedelta(days=value)
                result[name] = {value: 1.0}
                continue
            variable = self._variable(name)
            factor = inference.query([name], evidence=states or None, show_progress=False)
            order = list(factor.state_names[name])
            probabilities = np.asarray(factor.values, dtype=np.float64)
            result[name] = {
                _state_key(variable, k): float(probabilities[order.index(k)])
                for k in range(len(variable["labels"]))
            }
        return result

    def _probability(self, states: dict[str, int]) -> float:
        """P(evidence states) by variable elimination."""
        with _pgmpy_quiet():
            from pgmpy.inference import VariableElimination

        names = list(states)
        factor = VariableElimination(self.network_).query(names, joint=True, show_progress=False)
        index = tuple(list(factor.state_names[n]).index(states[n]) for n in factor.variables)
        return float(np.asarray(factor.values)[index])

    # -- evidence ----------------------------------------------------------------------------

    def _evidence_states(
        self, evidence: Mapping[str, Any], *, where: str
    ) -> tuple[dict[str, int], dict[str, float]]:
        """Evidence as network states, and the exact numeric values to keep in samples."""
        if not isinstance(evidence, Mapping):
            raise ConfigError(
                f"bayesnet.{where}: evidence must be a dict {{column: value}}, got {evidence!r}"
            )
        self._check_names(list(evidence), where=where)
        states, exact = {}, {}
        codec = codec_from_spec(self.spec)
        for name, value in evidence.items():
            if name in self.constants_:
                column = next(c for c in codec.columns if c["name"] == name)
                if _json_value(column, value) != self.constants_[name]:
                    raise DataError(
                        f"bayesnet.{where}: column {name!r} held only {self.constants_[name]!r} "
                        f"in the training rows, so evidence {value!r} is impossible"
                    )
                continue
            variable = self._variable(name)
            states[name], number = _evidence_state(variable, value, where)
            if number is not None:
                exact[name] = number
        return states, exact

    def _check_names(self, names: list[str], *, where: str) -> None:
        modelled = [v["name"] for v in self.variables_] + list(self.constants_)
        known = [c["name"] for c in codec_from_spec(self.spec).columns if c["name"] in modelled]
        for name in names:
            if name not in modelled:
                excluded = any(c["name"] == name for c in self.spec.columns)
                why = " (an id-like column, excluded from the model)" if excluded else ""
                raise DataError(
                    f"bayesnet.{where}: {name!r} is not a column of the model{why}; its columns: "
                    f"{', '.join(known)}"
                )

    def _variable(self, name: str) -> dict[str, Any]:
        return next(v for v in self.variables_ if v["name"] == name)

    def _describe(self, states: dict[str, int]) -> str:
        return (
            "{"
            + ", ".join(f"{n!r}: {self._variable(n)['labels'][k]!r}" for n, k in states.items())
            + "}"
        )

    # -- graph -------------------------------------------------------------------------------

    def plot_graph(self, path: str | Path) -> Path:
        """Draw the learned graph (columns as nodes, parent -> child arrows) into a PNG file.

        Args:
            path: the PNG file to write (folders are created).

        Returns:
            the path written.
        """
        import networkx as nx
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        network = self._fitted()
        graph = nx.DiGraph()
        graph.add_nodes_from(v["name"] for v in self.variables_)
        graph.add_edges_from(network.edges())
        size = min(16.0, 4.0 + 0.6 * graph.number_of_nodes())
        figure = Figure(figsize=(size, size))
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        positions = (
            nx.spring_layout(graph, seed=0)
            if graph.number_of_edges()
            else nx.circular_layout(graph)
        )
        nx.draw_networkx(
            graph,
            positions,
            ax=ax,
            node_color="#cfe2f3",
            node_size=1600,
            font_size=8,
            arrows=True,
            arrowsize=14,
        )
        ax.set_title(
            f"bayesnet ({self.config.structure}): {graph.number_of_nodes()} columns, "
            f"{graph.number_of_edges()} edges"
        )
        ax.set_axis_off()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=120, bbox_inches="tight")
        return path

    def _fitted(self) -> DiscreteBayesianNetwork:
        network = getattr(self, "network_", None)
        if network is None:
            raise GenlabError(
                "this bayesnet is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )
        return network

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """The fitted network as tensors: a JSON description and one CPD per column.

        Returns:
            "state_json": uint8 UTF-8 bytes of {"format", "variables" (per network column: name,
            type, kind, states' labels, categories or bin edges, integer, missing), "edges",
            "parents" (per column, the CPD's parent order), "constants", "notes"}, and
            "cpd.{i}": float64 (card_i, *parent_cards) for the i-th variable.
        """
        network = self._fitted()
        cpds = {str(cpd.variable): cpd for cpd in network.get_cpds()}
        description = {
            "format": STATE_FORMAT,
            "variables": self.variables_,
            "edges": [list(e) for e in self.edges_],
            "parents": {name: [str(p) for p in cpd.variables[1:]] for name, cpd in cpds.items()},
            "constants": self.constants_,
            "notes": self.notes_,
        }
        text = json.dumps(description)
        state = {"state_json": torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)}
        for i, variable in enumerate(self.variables_):
            values = np.asarray(cpds[variable["name"]].values, dtype=np.float64)
            state[f"cpd.{i}"] = torch.from_numpy(values.copy())
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the fitted network from `export_state`'s tensors."""
        if self.spec is None:
            raise CheckpointError(
                "bayesnet.import_state needs the data spec: create the model with spec="
            )
        if "state_json" not in tensors:
            raise CheckpointError(
                "weights do not fit a 'bayesnet' model (no state_json): load a checkpoint saved by "
                "bayesnet"
            )
        try:
            description = json.loads(
                tensors["state_json"].to(torch.uint8).numpy().tobytes().decode("utf-8")
            )
            variables = description["variables"]
            parents = description["parents"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"bayesnet state is corrupt ({e}): save the model again"
            ) from None
        if description.get("format") != STATE_FORMAT:
            raise CheckpointError(
                f"bayesnet state has format {description.get('format')!r}, this genlab reads "
                f"{STATE_FORMAT}: save the model again with this version"
            )
        expected = {"state_json"} | {f"cpd.{i}" for i in range(len(variables))}
        if set(tensors) != expected:
            raise CheckpointError(
                f"weights do not fit this 'bayesnet' state (tensors {sorted(tensors)}, expected "
                f"{sorted(expected)}): load a checkpoint saved by bayesnet"
            )
        schema = {c["name"] for c in self.spec.columns if c["type"] != "id"}
        stored = {v["name"] for v in variables} | set(description["constants"])
        if stored != schema:
            raise CheckpointError(
                f"bayesnet state models columns {sorted(stored)} but the data spec has "
                f"{sorted(schema)}: load it with the spec it was saved with"
            )
        cpds = {
            v["name"]: (parents[v["name"]], tensors[f"cpd.{i}"].to(torch.float64).numpy().copy())
            for i, v in enumerate(variables)
        }
        self.variables_ = variables
        self.constants_ = dict(description["constants"])
        self.notes_ = list(description["notes"])
        self.network_ = _build_network(variables, [tuple(e) for e in description["edges"]], cpds)
        self.edges_ = [tuple(e) for e in self.network_.edges()]


# ---------------------------------------------------------------------------------------------
# Tables in, discrete variables out


def _table_of(data: Any) -> tuple[pd.DataFrame, DataSpec]:
    """The typed rows and the tabular spec of `data` (a tabular Dataset or a DataFrame)."""
    if isinstance(data, pd.DataFrame):
        if data.shape[1] == 0:
            raise DataError("bayesnet.fit: the DataFrame has no columns")
        frame = data.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        codec = TableCodec.infer(frame)
        if codec.num_features == 0:
            raise DataError(
                "bayesnet.fit: every column of the DataFrame is id-like (unique per row), so "
                "there is nothing to model: give columns with repeated values"
            )
        spec = DataSpec(
            modality="tabular",
            shape=(codec.num_features,),
            name="dataframe",
            columns=codec.columns,
        )
        return codec.parse(frame), spec
    if isinstance(data, Dataset):
        if data.spec.modality != "tabular" or not data.spec.columns:
            raise DataError(
                f"bayesnet models tables, but data {data.spec.name!r} is {data.spec.modality}: "
                "load a table (genlab.data.load('data.csv') or 'adult'), or use a model for "
                f"{data.spec.modality} data"
            )
        codec = codec_from_spec(data.spec)
        frame = data.info.get("dataframe")
        if frame is None or len(frame) != len(data):
            frame = codec.decode(data.x)
        return codec.parse(frame), data.spec
    raise DataError(
        f"bayesnet models tables, but got {type(data).__name__}: give a tabular genlab Dataset "
        "(genlab.data.load('data.csv')) or a pandas DataFrame"
    )


def _numbers(column: dict[str, Any], series: pd.Series) -> np.ndarray:
    """Float64 values of a numeric or datetime column (days for dates), NaN where missing."""
    if column["type"] == "datetime":
        days = (series - _EPOCH) / pd.Timedelta(days=1)
        return days.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _make_variable(column: dict[str, Any], series: pd.Series, num_bins: int) -> dict[str, Any]:
    """The discrete variable of one column: its states, their labels and the bin edges."""
    variable: dict[str, Any] = {
        "name": column["name"],
        "type": column["type"],
        "missing": bool(column["has_missing"]),
    }
    if column["type"] in ("categorical", "boolean"):
        values = list(column["categories"]) if column["type"] == "categorical" else [False, True]
        variable.update(kind="categorical", values=values, labels=[str(v) for v in values])
    else:
        integer = bool(column.get("integer")) or (
            column["type"] == "datetime" and column["resolution"] == "day"
        )
        present = np.sort(_numbers(column, series)[~series.isna().to_numpy()])
        edges = _bin_edges(present, num_bins, integer)
        variable.update(
            kind="numeric",
            integer=integer,
            edges=[float(e) for e in edges],
            labels=_bin_labels(edges, integer, column["type"] == "datetime"),
        )
    if variable["missing"]:
        variable["labels"] = variable["labels"] + [MISSING_CATEGORY]
    return variable


def _bin_edges(values: np.ndarray, num_bins: int, integer: bool) -> np.ndarray:
    """Strictly increasing edges (K + 1,) of about `num_bins` quantile bins of sorted `values`.

    A value holding at least 1/num_bins of the rows gets a bin of its own; the remaining values
    are cut at their own quantiles into the other bins. Cuts that would leave a bin without
    training values are dropped. Integer data is cut between whole numbers (edges at
    half-integers), so a bin is the integer range [a, b] with width b - a + 1.
    """
    low, high = float(values[0]), float(values[-1])
    unique, counts = np.unique(values, return_counts=True)
    heavy = unique[counts * num_bins >= len(values)]
    cuts: list[float] = []
    for v in heavy:
        cuts.append(float(v))
        above = unique[unique > v]
        if integer:
            cuts.append(float(v) + 1.0)
        elif len(above):
            cuts.append(float(above[0]))
    rest = values[~np.isin(values, heavy)]
    num_rest_bins = num_bins - len(heavy)
    if len(rest) and num_rest_bins > 1:
        quantiles = np.quantile(rest, np.arange(1, num_rest_bins) / num_rest_bins)
        cuts.extend(np.ceil(quantiles) if integer else quantiles)
    cuts = sorted(set(cuts))
    # integer cut c means "c and up"; a float cut at the maximum would make a zero-width bin
    cuts = [c for c in cuts if low < c <= high] if integer else [c for c in cuts if low < c < high]
    kept, previous = [], -math.inf
    for cut in cuts:
        if np.searchsorted(values, cut, "left") > np.searchsorted(values, previous, "left"):
            kept.append(cut)
            previous = cut
    inner = np.asarray(kept, dtype=np.float64)
    if integer:
        return np.concatenate([[low - 0.5], inner - 0.5, [high + 0.5]])
    return np.concatenate([[low], inner, [high]])


def _bin_labels(edges: np.ndarray, integer: bool, is_date: bool) -> list[str]:
    def show(v: float) -> str:
        if is_date:
            moment = _EPOCH + pd.Timedelta(seconds=round(v * _SECONDS_PER_DAY))
            return moment.strftime("%Y-%m-%d" if integer else "%Y-%m-%d %H:%M:%S")
        return str(int(v)) if float(v).is_integer() else repr(float(v))

    labels = []
    for k in range(len(edges) - 1):
        if integer:
            a, b = edges[k] + 0.5, edges[k + 1] - 0.5
            labels.append(show(a) if a == b else f"[{show(a)}, {show(b)}]")
        else:
            close = "]" if k == len(edges) - 2 else ")"
            labels.append(f"[{show(edges[k])}, {show(edges[k + 1])}{close}")
    return labels


def _codes(variable: dict[str, Any], series: pd.Series) -> np.ndarray:
    """int64 (N,) state of every row: its category or bin; the last state when missing.

    Values beyond the training range fall into the end bins.
    """
    missing = series.isna().to_numpy()
    num_values = len(variable["labels"]) - int(variable["missing"])
    if variable["kind"] == "categorical":
        if variable["type"] == "boolean":
            codes = series.astype("boolean").fillna(False).to_numpy(dtype=np.int64)
        else:
            codes = series.cat.codes.to_numpy().astype(np.int64)
    else:
        numbers = _numbers(variable, series)
        inner = np.asarray(variable["edges"][1:-1], dtype=np.float64)
        codes = np.searchsorted(inner, np.where(missing, 0.0, numbers), side="right")
        codes = np.minimum(codes, num_values - 1).astype(np.int64)
    # a missing cell where the training rows had none has no state: it is flagged with -1
    return np.where(missing, num_values if variable["missing"] else -1, codes)


def _log_inverse_width(variable: dict[str, Any], series: pd.Series) -> np.ndarray:
    """-log(bin width) per row of a numeric column; -inf outside the support, 0 if missing."""
    edges = np.asarray(variable["edges"], dtype=np.float64)
    numbers = _numbers(variable, series)
    missing = np.isnan(numbers)
    safe = np.where(missing, edges[0], numbers)
    k = np.clip(np.searchsorted(edges[1:-1], safe, side="right"), 0, len(edges) - 2)
    width = edges[k + 1] - edges[k]
    # a float column with one value (and missing cells) has a zero-width bin: a point mass
    term = np.where(width > 0, -np.log(np.where(width > 0, width, 1.0)), 0.0)
    outside = (safe < edges[0]) | (safe > edges[-1])
    return np.where(missing, 0.0, np.where(outside, -np.inf, term))


def _forward_states(
    network: Any, num_samples: int, generator: torch.Generator | None
) -> pd.DataFrame:
    """Ancestral (forward) sampling of every variable's state index, vectorized over rows.

    Variables are drawn in topological order; each row's state comes from its CPD column for
    that row's parent states, by inverting the column's CDF at a uniform draw. This is the
    algorithm of pgmpy's `forward_sample` (Koller & Friedman, Algorithm 12.1) without its
    per-variable bookkeeping, which costs more than the draw itself on tables like Adult.

    Args:
        network: the fitted pgmpy network; its CPDs' state names are 0..card-1.
        num_samples: N, the number of rows.
        generator: the torch generator (CPU) for the (N, V) uniforms.

    Returns:
        DataFrame (N rows) of int64 state indices, one column per variable.
    """
    import networkx as nx

    order = list(nx.topological_sort(network))
    uniforms = torch.rand(
        (num_samples, len(order)), generator=generator, dtype=torch.float64
    ).numpy()  # (N, V)
    drawn: dict[str, np.ndarray] = {}
    for j, name in enumerate(order):
        cpd = network.get_cpds(name)
        parents = list(cpd.variables[1:])
        table = np.asarray(cpd.values, dtype=np.float64)  # (card, *parent cards)
        card = table.shape[0]
        cdf = np.cumsum(table.reshape(card, -1), axis=0)  # (card, K)
        cdf[-1] = 1.0  # rounding must not leave a sliver above the last state
        if parents:
            column = np.ravel_multi_index([drawn[p] for p in parents], table.shape[1:])  # (N,)
        else:
            column = np.zeros(num_samples, dtype=np.int64)
        # The state is the number of CDF entries at or below the uniform draw.
        state = (cdf[:, column] <= uniforms[None, :, j]).sum(axis=0)  # (N,)
        drawn[name] = np.minimum(state, card - 1).astype(np.int64)
    return pd.DataFrame({name: drawn[name] for name in network.nodes()})


def _values(
    variable: dict[str, Any],
    column: dict[str, Any],
    codes: np.ndarray,
    uniforms: np.ndarray,
    exact: float | None,
) -> pd.Series:
    """The typed column of sampled states: categories back, numeric bins to uniform values.

    Args:
        variable: the network variable; column: its schema entry.
        codes: int64 (N,) sampled states; uniforms: float64 (N,) in [0, 1).
        exact: a numeric evidence value every row takes, or None.
    """
    num_values = len(variable["labels"]) - int(variable["missing"])
    missing = codes >= num_values
    if variable["kind"] == "categorical":
        if variable["type"] == "boolean":
            flags = pd.array(codes == 1, dtype="boolean")
            flags[missing] = pd.NA
            return pd.Series(flags).astype(column["dtype"])
        categories = pd.CategoricalDtype(list(variable["values"]), ordered=False)
        return pd.Series(pd.Categorical.from_codes(np.where(missing, -1, codes), dtype=categories))
    edges = np.asarray(variable["edges"], dtype=np.float64)
    k = np.where(missing, 0, codes)
    if variable["integer"]:
        low, high = edges[k] + 0.5, edges[k + 1] - 0.5  # the bin's integers low..high
        numbers = np.minimum(low + np.floor(uniforms * (high - low + 1)), high)
    else:
        numbers = edges[k] + uniforms * (edges[k + 1] - edges[k])
    if exact is not None:
        numbers = np.full_like(numbers, exact)
    return _typed_numbers(column, np.where(missing, np.nan, numbers))


def _typed_numbers(column: dict[str, Any], values: np.ndarray) -> pd.Series:
    """Float64 values (NaN missing) of a numeric or datetime column in the schema's dtype.

    Integers and dates are rounded to the column's resolution, floats to the decimals the
    file uses, as the table codec decodes them.
    """
    if column["type"] == "datetime":
        if column["resolution"] == "day":
            seconds = np.round(values) * _SECONDS_PER_DAY
        else:
            seconds = np.round(values * _SECONDS_PER_DAY)
        return pd.to_datetime(pd.Series(seconds), unit="s").astype(column["dtype"])
    if column["integer"]:
        return pd.Series(np.round(values)).astype("Int64").astype(column["dtype"])
    if column.get("decimals") is not None:
        values = np.round(values, column["decimals"])
    return pd.Series(values, dtype="float64")


def _json_value(column: dict[str, Any], value: Any) -> Any:
    """A cell as a JSON scalar comparable across save and load (days for dates)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if column["type"] == "datetime":
        return float((pd.Timestamp(value) - _EPOCH) / pd.Timedelta(days=1))
    if column["type"] == "boolean":
        return bool(value)
    if column["type"] == "numeric":
        number = float(value)
        return int(number) if column.get("integer") and number.is_integer() else number
    return value.item() if isinstance(value, np.generic) else value


def _json_series(column: dict[str, Any], series: pd.Series) -> pd.Series:
    return pd.Series([_json_value(column, v) for v in series], dtype=object)


def _constant_series(column: dict[str, Any], value: Any, num_rows: int) -> pd.Series:
    if column["type"] == "categorical":
        categories = list(column["categories"])
        codes = np.full(num_rows, categories.index(value), dtype=np.int64)
        return pd.Series(pd.Categorical.from_codes(codes, categories=categories))
    if column["type"] == "boolean":
        return pd.Series(np.full(num_rows, bool(value))).astype(column["dtype"])
    return _typed_numbers(column, np.full(num_rows, float(value)))


def _state_key(variable: dict[str, Any], k: int) -> Any:
    """The name of state k in `query`'s output: the category itself, or the bin's label."""
    if variable["kind"] == "categorical" and k < len(variable["values"]):
        return variable["values"][k]
    return variable["labels"][k]


def _evidence_state(variable: dict[str, Any], value: Any, where: str) -> tuple[int, float | None]:
    """(state, exact number or None) of an evidence value for one variable."""
    name, labels = variable["name"], variable["labels"]
    value = value.item() if isinstance(value, np.generic) else value
    is_missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    if not is_missing and variable["kind"] == "categorical":
        k = _category_state(variable, value)
        if k is not None:
            return k, None
    elif not is_missing and not (isinstance(value, str) and value == MISSING_CATEGORY):
        if isinstance(value, str) and value in labels:
            return labels.index(value), None
        number = _evidence_number(variable, value, where)
        k = int(np.searchsorted(np.asarray(variable["edges"][1:-1]), number, side="right"))
        return k, number
    if is_missing or (isinstance(value, str) and value == MISSING_CATEGORY):
        if variable["missing"]:
            return len(labels) - 1, None
        raise DataError(
            f"bayesnet.{where}: column {name!r} had no missing cells in the training rows, so "
            "evidence of a missing value is impossible"
        )
    shown = ", ".join(map(repr, _shown_states(variable)[:20]))
    raise DataError(
        f"bayesnet.{where}: {value!r} is not a state of column {name!r}; its states: {shown}"
        f"{', ...' if len(labels) > 20 else ''}"
    )


def _category_state(variable: dict[str, Any], value: Any) -> int | None:
    """The state of a category (or True/False) given as evidence, or None if it has none."""
    if variable["type"] == "boolean":
        if isinstance(value, str):
            words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
            value = words.get(value.lower(), value)
        if isinstance(value, (bool, int)) and value in (0, 1):
            return int(bool(value))
        return None
    values = variable["values"]
    for k, category in enumerate(values):
        if type(category) is type(value) and category == value:
            return k
    # "3" for the category 3 (or 3 for "3"), when that reading is unambiguous
    matches = [k for k, category in enumerate(values) if str(category) == str(value)]
    return matches[0] if len(matches) == 1 else None


def _shown_states(variable: dict[str, Any]) -> list[Any]:
    return [_state_key(variable, k) for k in range(len(variable["labels"]))]


def _evidence_number(variable: dict[str, Any], value: Any, where: str) -> float:
    """A numeric evidence value in the column's units (days for dates), checked in range."""
    name = variable["name"]
    if variable["type"] == "datetime":
        try:
            number = (pd.Timestamp(value) - _EPOCH) / pd.Timedelta(days=1)
        except (ValueError, TypeError):
            raise DataError(
                f"bayesnet.{where}: {value!r} is not a date for column {name!r}: give e.g. "
                "'2020-01-31', or one of its bin labels"
            ) from None
    elif isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(
            f"bayesnet.{where}: column {name!r} is numeric, so give a number (or one of its bin "
            f"labels {variable['labels'][:5]}...), not {value!r}"
        )
    else:
        number = float(value)
    if variable["integer"] and not float(number).is_integer():
        raise DataError(
            f"bayesnet.{where}: column {name!r} holds whole numbers, so {value!r} is impossible"
        )
    low, high = variable["edges"][0], variable["edges"][-1]
    if not low <= number <= high:
        raise DataError(
            f"bayesnet.{where}: {value!r} is outside column {name!r}'s training range "
            f"({variable['labels'][0]} .. {variable['labels'][-1 - int(variable['missing'])]}), "
            "where the model has no probability"
        )
    return float(number)


# ---------------------------------------------------------------------------------------------
# The pgmpy network


def _build_network(
    variables: list[dict[str, Any]],
    edges: list[tuple[str, str]],
    cpds: dict[str, tuple[list[str], np.ndarray]] | None,
) -> DiscreteBayesianNetwork:
    """A pgmpy network built in one canonical order, so that fitted and loaded models sample
    identically (pgmpy samples in a topological order that follows insertion order)."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    order = {v["name"]: i for i, v in enumerate(variables)}
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(v["name"] for v in variables)
    network.add_edges_from(sorted(edges, key=lambda e: (order[e[0]], order[e[1]])))
    if cpds is None:
        return network
    cards = {v["name"]: len(v["labels"]) for v in variables}
    tables = []
    for variable in variables:
        name = variable["name"]
        parents, values = cpds[name]
        if set(parents) != set(network.get_parents(name)):
            raise CheckpointError(
                f"bayesnet state is inconsistent: the CPD of {name!r} has parents {parents} but "
                f"the graph gives {network.get_parents(name)}; save the model again"
            )
        shape = (cards[name], *(cards[p] for p in parents))
        if tuple(values.shape) != shape:
            raise CheckpointError(
                f"bayesnet state is inconsistent: the CPD of {name!r} has shape "
                f"{tuple(values.shape)}, expected {shape}; save the model again"
            )
        tables.append(
            TabularCPD(
                name,
                cards[name],
                values.reshape(cards[name], -1),
                evidence=parents or None,
                evidence_card=[cards[p] for p in parents] or None,
                state_names={n: list(range(cards[n])) for n in [name, *parents]},
            )
        )
    network.add_cpds(*tables)
    return network


@contextlib.contextmanager
def _pgmpy_quiet() -> Iterator[None]:
    """Hide pgmpy's warnings about itself, which are not the user's to act on: pgmpy 1.x warns
    on importing its estimators package (its sampling and inference packages do) that an old
    module moves, and its samplers call pandas in ways pandas 3 deprecates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@contextlib.contextmanager
def _numpy_global_state_kept() -> Iterator[None]:
    """pgmpy seeds numpy's global generator: restore the caller's state afterwards."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)
