"""n-gram Markov chain language model with Kneser-Ney or add-k smoothing.

An order-n model predicts each token from the n - 1 tokens before it,
p(x_t | x_{t-n+1} .. x_{t-1}), estimated from counts of the training text's n-grams
(Shannon 1948; Jurafsky & Martin, "Speech and Language Processing", ch. 3). Smoothing gives
unseen n-grams probability:

- `kneser_ney`: interpolated Kneser-Ney (Kneser & Ney 1995; in the interpolated form of Chen &
  Goodman 1999, "An empirical study of smoothing techniques for language modeling", eq. 20):

      P(w | h) = max(c(h w) - D, 0) / c(h .) + D N1+(h .) / c(h .) * P(w | h')

  with h' the context without its first token. The highest level uses raw counts c; the lower
  levels use continuation counts N1+(. h w), the number of distinct tokens seen before h w, so
  a token is likely in a new context when it follows many different contexts, not when it is
  frequent. The recursion ends in the uniform distribution 1 / V (Chen & Goodman), so every
  token has non-zero probability and held-out perplexity is finite. A context never seen
  passes all its mass to the lower level. D is `discount`, or, when None, estimated per level
  from the count-of-counts n_r (number of n-grams seen r times): D = n1 / (n1 + 2 n2)
  (Ney, Essen & Kneser 1994).
- `modified_kneser_ney`: three discounts D1, D2, D3+ for n-grams seen once, twice and three
  or more times, from Chen & Goodman's estimates Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2 / n1,
  D2 = 2 - 3Y n3 / n2, D3+ = 3 - 4Y n4 / n3; the interpolation weight becomes
  (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h .). On tiny corpora an estimate can be
  undefined (n_r or n_{r+1} is zero) or outside (0, r]; it is then replaced by the plain
  estimate, and the plain estimate by 0.5 when no n-gram is seen exactly once (n1 = 0).
- `add_k` with backoff: P(w | h) = (c(h w) + k) / (c(h .) + k V) when the context h was seen,
  else the same estimate for the shorter context h' (backing off until a seen context; the
  empty context is always seen).

Every level's probabilities sum to exactly one over the V tokens (up to float rounding), for
every context.

Tokens: the model works on whatever int64 token ids the `text` data source gives (its char,
byte or BPE tokenizer; see data/tokenizers.py) and never looks at the strings. genlab's text
source has no word tokenizer, so word-level n-grams need word ids from elsewhere: any
`Dataset` of modality "text" with int64 (N, T) ids and `spec.discrete_levels` = V works. The
n-gram codes are int64, so V^order must stay below 2^63 (e.g. order <= 10 for 65 characters,
<= 7 for 256 bytes, <= 6 for 1,024 BPE tokens).

Fitting counts the data's whole token stream `info["tokens"]` when the Dataset has one (the
text source's), so n-grams across block boundaries count too; otherwise every row of x is one
sequence.

Likelihood, consistent with `gpt`: `log_likelihood(x)` of blocks x (B, T) is
log p(x_1 .. x_{T-1} | x_0), each token scored given the tokens before it in its row; the first
token is conditioned on, not scored (`details["tokens_scored"]` = T - 1). With
`score_first=True` x_0 is scored too, under the unigram distribution, and the figure is the
full log p(x_0 .. x_{T-1}). Near the start of a row a token has fewer than n - 1 tokens of
context; it is then scored by the model of the matching lower order, whose highest level uses
raw counts (a block starts anywhere in the text, so the right estimate of p(x_1 | x_0) is the
bigram frequency). Here this model differs from nltk's `KneserNeyInterpolated`, which uses
continuation counts for every context shorter than n - 1; nltk also ends its recursion in
undiscounted continuation unigrams, not in the uniform distribution, so it gives zero
probability to tokens never seen after another token. With full contexts the two models'
interpolation terms are the same (tests/families/test_ngram.py checks this).

Sampling: the shared decoding controls of `autoregressive/decoding.py` (temperature <= 0 is
greedy, top-k, top-p, repetition penalty, stop strings, `max_new_tokens`, a text prompt,
streaming). Without a prompt each row starts with one token drawn from the unigram
distribution, so samples are (N, spec.shape[0]) int64 like the data's blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import ClassicalModel, DataSpec, LogLikelihood
from genlab.core.errors import CheckpointError, ConfigError, DataError, GenlabError
from genlab.core.registry import register
from genlab.data.dataset import Dataset
from genlab.families.autoregressive.decoding import TokenSampling

if TYPE_CHECKING:
    from genlab.train.config import TrainConfig

Smoothing = Literal["kneser_ney", "modified_kneser_ney", "add_k"]
RAW, CONTINUATION = 0, 1  # the two kinds of counts a level's table holds
MAX_CODE = 2**63 - 1
FALLBACK_DISCOUNT = 0.5
QUERY_CHUNK = 1 << 22  # (context, token) pairs looked up at once when scoring whole vocabularies


@dataclass(frozen=True)
class NGramConfig:
    """The `model:` section for `ngram`.

    Args:
        order: n, the number of tokens of an n-gram (n - 1 tokens of context); >= 1.
        smoothing: "kneser_ney", "modified_kneser_ney" or "add_k" (with backoff); see the
            module docstring.
        discount: for kneser_ney, one discount D in (0, 1] for every level; None estimates D
            per level from the count-of-counts. Must be None for the other smoothings.
        k: the add-k pseudo-count (> 0), for add_k only.
    """

    order: int = 5
    smoothing: Smoothing = "modified_kneser_ney"
    discount: float | None = None
    k: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ConfigError(
                f"model ngram.order must be an integer of at least 1 (1 is a unigram model, "
                f"3 a trigram model), got {self.order!r}"
            )
        if self.smoothing not in get_args(Smoothing):
            raise ConfigError(
                f"model ngram.smoothing: {self.smoothing!r} is not one of "
                f"{', '.join(map(repr, get_args(Smoothing)))}"
            )
        d = self.discount
        if d is not None:
            if self.smoothing != "kneser_ney":
                raise ConfigError(
                    f"model ngram.discount applies to smoothing='kneser_ney' only (got "
                    f"smoothing={self.smoothing!r}); leave it null"
                )
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 1:
                raise ConfigError(
                    f"model ngram.discount must be in (0, 1] (e.g. 0.75), or null to estimate "
                    f"it from the counts, got {d!r}"
                )
        k = self.k
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not (0 < k < math.inf):
            raise ConfigError(
                f"model ngram.k must be a finite number > 0 (e.g. 1 or 0.1), got {k!r}"
            )


@dataclass
class _CountTable:
    """One level's counts of one kind, with per-context sums.

    keys: sorted int64 codes of the m-grams with a non-zero count (code of tokens t_1..t_m is
    sum t_i V^(m - i)); values: their counts; ctx_keys: sorted codes of their contexts (the
    first m - 1 tokens, code // V); totals, n1, n2, n3: per context, the sum of the counts and
    how many tokens follow it once, twice and three or more times.
    """

    keys: np.ndarray
    values: np.ndarray
    ctx_keys: np.ndarray
    totals: np.ndarray
    n1: np.ndarray
    n2: np.ndarray
    n3: np.ndarray


def _count_table(keys: np.ndarray, values: np.ndarray, vocab_size: int) -> _CountTable:
    keep = values > 0
    keys, values = keys[keep], values[keep]
    ctx = keys // vocab_size  # sorted, since keys are
    ctx_keys, starts = np.unique(ctx, return_index=True)
    if len(keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _CountTable(keys, values, ctx_keys, empty, empty, empty, empty)

    def per_context(v: np.ndarray) -> np.ndarray:
        return np.add.reduceat(v.astype(np.int64), starts)

    return _CountTable(
        keys=keys,
        values=values,
        ctx_keys=ctx_keys,
        totals=per_context(values),
        n1=per_context(values == 1),
        n2=per_context(values == 2),
        n3=per_context(values >= 3),
    )


def _estimate_discounts(values: np.ndarray, modified: bool) -> np.ndarray:
    """(D1, D2, D3+) from the count-of-counts of `values` (Ney et al. 1994; Chen & Goodman 1999)."""
    n = [int((values == r).sum()) for r in range(1, 5)]  # n1..n4
    plain = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 else FALLBACK_DISCOUNT
    out = np.full(3, plain)
    if not modified or n[0] == 0:
        return out
    y = plain
    for r in (1, 2, 3):  # D_r = r - (r + 1) Y n_{r+1} / n_r, when both counts exist
        if n[r - 1] > 0 and n[r] > 0:
            d = r - (r + 1) * y * n[r] / n[r - 1]
            if 0 < d <= r:
                out[r - 1] = d
    return out


def _codes(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """int64 codes (...,) of token tuples (..., m): sum t_i V^(m - i); 0 for m = 0."""
    code = np.zeros(tokens.shape[:-1], dtype=np.int64)
    for i in range(tokens.shape[-1]):
        code = code * vocab_size + tokens[..., i]
    return code


@register(
    "ngram",
    NGramConfig,
    "n-gram Markov chain over tokens (interpolated Kneser-Ney or add-k), exact likelihood",
)
class NGram(TokenSampling, ClassicalModel):
    """n-gram language model with interpolated (modified) Kneser-Ney or add-k smoothing.

    scikit-learn conventions: the constructor stores its arguments, `fit` returns self, and
    fitted state ends in `_` (`counts_`, `continuation_`, `discounts_`, `vocab_size_`).

    Args:
        config: the `NGramConfig`.
        spec: the text data spec; when None it is taken from the data at `fit`.
    """

    needs_spec = False

    def __init__(self, config: NGramConfig, spec: DataSpec | None = None) -> None:
        self.config = config
        self.spec = spec

    # -- fitting -----------------------------------------------------------------------------

    def fit(
        self,
        data: Dataset | Tensor | np.ndarray,
        train: TrainConfig | None = None,
        **fit_options: Any,
    ) -> NGram:
        """Count the n-grams of orders 1..n and derive the smoothed model.

        Args:
            data: a text `Dataset` (its `info["tokens"]` stream when present, else each row of
                x is a sequence), or int64 ids (N, T) (rows are sequences) or (L,) (one
                stream) for a model created with spec= (which gives the vocabulary size).
            train: unused (counting has no randomness); accepted for the common interface.
            fit_options: none are accepted; any raise `ConfigError`.

        Returns:
            self, with `counts_` ({m: (keys, counts)} for m = 1..n), `continuation_` ({m:
            counts aligned with counts_[m] keys} for m < n), `discounts_` float64 (n, 2, 3)
            (level, raw/continuation, D1 D2 D3+) and `vocab_size_`.
        """
        if fit_options:
            raise ConfigError(
                f"ngram.fit: unknown option{'s' if len(fit_options) > 1 else ''} "
                f"{', '.join(sorted(fit_options))}; ngram.fit takes only data and train"
            )
        seqs, spec = self._fit_sequences(data)
        vocab_size = int(spec.discrete_levels)
        order = self.config.order
        if vocab_size**order > MAX_CODE:
            fits = max(1, int(math.floor(62 / math.log2(max(vocab_size, 2)))))
            raise ConfigError(
                f"ngram.order={order} is too high for a vocabulary of {vocab_size} tokens: "
                f"n-gram codes are int64, so {vocab_size}^order must stay below 2^63; use "
                f"order <= {fits}"
            )
        counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for m in range(1, order + 1):
            codes = [
                _codes(np.lib.stride_tricks.sliding_window_view(s, m), vocab_size)
                for s in seqs
                if len(s) >= m
            ]
            all_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
            keys, values = np.unique(all_codes, return_counts=True)
            counts[m] = (keys.astype(np.int64), values.astype(np.int64))
        continuation: dict[int, np.ndarray] = {}
        for m in range(1, order):
            # N1+(. w_1..w_m): distinct (m+1)-grams that end in the m-gram
            suffixes, left_types = np.unique(counts[m + 1][0] % vocab_size**m, return_counts=True)
            cont = np.zeros(len(counts[m][0]), dtype=np.int64)
            cont[np.searchsorted(counts[m][0], suffixes)] = left_types
            continuation[m] = cont
        self.spec = spec
        self.vocab_size_ = vocab_size
        self.counts_ = counts
        self.continuation_ = continuation
        self.discounts_ = self._discounts()
        self._build_tables()
        return self

    def _fit_sequences(self, data: Any) -> tuple[list[np.ndarray], DataSpec]:
        """The training sequences (int64 numpy arrays) and the spec, checked."""
        if isinstance(data, Dataset):
            spec = data.spec
            if spec.modality != "text" or spec.discrete_levels is None:
                raise DataError(
                    f"ngram models token ids, but data {spec.name!r} is {spec.modality} "
                    f"without a vocabulary: load a text file, e.g. genlab.data.load('book.txt')"
                )
            if self.spec is not None and self.spec.discrete_levels != spec.discrete_levels:
                raise DataError(
                    f"this ngram is for a vocabulary of {self.spec.discrete_levels} tokens, the "
                    f"data has {spec.discrete_levels}: create a new model"
                )
            stream = data.info.get("tokens")
            raw = [stream] if isinstance(stream, Tensor) else list(data.x)
        else:
            spec = self.spec
            if spec is None or spec.discrete_levels is None:
                raise DataError(
                    "ngram.fit on raw token ids needs the vocabulary size: create the model "
                    "with spec=data.spec (a text data spec), or fit it on the Dataset itself"
                )
            ids = torch.as_tensor(data)
            if ids.dim() not in (1, 2):
                raise DataError(
                    f"ngram.fit takes token ids (N, T) or one stream (L,), got shape "
                    f"{tuple(ids.shape)}"
                )
            raw = [ids] if ids.dim() == 1 else list(ids)
        seqs = [self._check_ids(torch.as_tensor(s), spec.discrete_levels, "fit") for s in raw]
        if not seqs or sum(len(s) for s in seqs) == 0:
            raise DataError(
                "ngram.fit: the data holds no tokens (sequences of length 0); give text to count"
            )
        return seqs, spec

    @staticmethod
    def _check_ids(ids: Tensor, vocab_size: int, what: str) -> np.ndarray:
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise DataError(f"ngram.{what} takes integer token ids, got {ids.dtype}")
        a = ids.detach().cpu().to(torch.int64).numpy()
        if a.size and (a.min() < 0 or a.max() >= vocab_size):
            raise DataError(
                f"ngram.{what}: token ids must be in [0, {vocab_size}), got "
                f"{int(a.min())}..{int(a.max())}: use ids from this model's tokenizer"
            )
        return a

    def _discounts(self) -> np.ndarray:
        """Discounts (n, 2, 3): level m - 1, raw/continuation counts, D1 D2 D3+."""
        cfg = self.config
        out = np.zeros((cfg.order, 2, 3))
        if cfg.smoothing == "add_k":
            return out
        for m in range(1, cfg.order + 1):
            kinds = [(RAW, self.counts_[m][1])]
            if m < cfg.order:
                kinds.append((CONTINUATION, self.continuation_[m]))
            for kind, values in kinds:
                if cfg.discount is not None:
                    out[m - 1, kind] = cfg.discount
                else:
                    modified = cfg.smoothing == "modified_kneser_ney"
                    out[m - 1, kind] = _estimate_discounts(values[values > 0], modified)
        return out

    def _build_tables(self) -> None:
        v = self.vocab_size_
        self._tables: list[dict[int, _CountTable]] = []
        for m in range(1, self.config.order + 1):
            keys, values = self.counts_[m]
            level = {RAW: _count_table(keys, values, v)}
            if m < self.config.order:
                level[CONTINUATION] = _count_table(keys, self.continuation_[m], v)
            self._tables.append(level)

    def _fitted(self) -> None:
        if getattr(self, "counts_", None) is None:
            raise GenlabError(
                "this ngram is not fitted: fit the model first (model.fit(data)) "
                "or load a saved one (genlab.load(folder))"
            )

    # -- probabilities -----------------------------------------------------------------------

    def _level_terms(
        self, m: int, kind: int, ctx: np.ndarray, tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, gamma) (Q,) of level m: P_m(w | h) = alpha + gamma * P_{m-1}(w | h').

        Args:
            m: the level (n-gram length), 1..order.
            kind: RAW or CONTINUATION counts.
            ctx: (Q,) codes of the m - 1 context tokens.
            tokens: (Q,) the predicted tokens.
        """
        table = self._tables[m - 1][kind]
        v = self.vocab_size_
        alpha = np.zeros(len(ctx))
        gamma = np.ones(len(ctx))
        if len(table.ctx_keys) == 0:  # nothing counted at this level: all mass goes down
            return alpha, gamma
        i = np.minimum(np.searchsorted(table.ctx_keys, ctx), len(table.ctx_keys) - 1)
        seen = table.ctx_keys[i] == ctx
        code = ctx * v + tokens
        j = np.minimum(np.searchsorted(table.keys, code), len(table.keys) - 1)
        c = np.where(table.keys[j] == code, table.values[j], 0).astype(np.float64)
        total = table.totals[i].astype(np.float64)
        if self.config.smoothing == "add_k":
            k = float(self.config.k)
            a, g = (c + k) / (total + k * v), np.zeros(len(ctx))
        else:
            d1, d2, d3 = self.discounts_[m - 1, kind]
            d = np.where(c >= 3, d3, np.where(c == 2, d2, np.where(c == 1, d1, 0.0)))
            a = (c - d) / total  # d <= c: D_r <= r by construction
            g = (d1 * table.n1[i] + d2 * table.n2[i] + d3 * table.n3[i]) / total
        alpha = np.where(seen, a, alpha)
        gamma = np.where(seen, g, gamma)
        return alpha, gamma

    def interpolation_terms(self, context: Sequence[int], token: int) -> list[tuple[float, float]]:
        """The (alpha, gamma) of every level for one token after one context, top level first.

        P(w | h) = alpha_top + gamma_top (alpha_next + gamma_next (... + gamma_1 / V)); the
        list has one pair per level, from the context's length + 1 down to 1. For inspection
        and for checks against other implementations.
        """
        self._fitted()
        ctx = np.asarray(list(context), dtype=np.int64)[None]  # (1, k)
        tok = np.asarray([int(token)], dtype=np.int64)
        return [
            (float(a[0]), float(g[0]))
            for a, g in self._terms_by_level(self._context_window(ctx), tok)
        ]

    def _context_window(self, contexts: np.ndarray) -> np.ndarray:
        """The last min(k, order - 1) tokens of contexts (Q, k)."""
        keep = min(contexts.shape[1], self.config.order - 1)
        return contexts[:, contexts.shape[1] - keep :]

    def _terms_by_level(self, contexts: np.ndarray, tokens: np.ndarray):
        """(alpha, gamma) per level, top first, for contexts (Q, k) (k < order), tokens (Q,)."""
        k = contexts.shape[1]
        add_k = self.config.smoothing == "add_k"
        for m in range(k + 1, 0, -1):
            kind = RAW if (m == k + 1 or add_k) else CONTINUATION
            ctx = _codes(contexts[:, k - (m - 1) :], self.vocab_size_)
            yield self._level_terms(m, kind, ctx, tokens)

    def _probs(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """P(token | context) float64 (Q,), contexts (Q, k) with k < order, tokens (Q,)."""
        p = np.zeros(len(tokens))
        weight = np.ones(len(tokens))
        for alpha, gamma in self._terms_by_level(contexts, tokens):
            p += weight * alpha
            weight = weight * gamma
        # the recursion ends in the uniform distribution (add-k never gets here: its unigram
        # level is always seen, so gamma is 0 there)
        return p + weight / self.vocab_size_

    def next_token_probs(self, context: Tensor | np.ndarray | Sequence[int]) -> Tensor:
        """The distribution of the next token after each context, float64 (B, V).

        Args:
            context: int64 ids (B, k) or one context (k,), k >= 0; only the last order - 1
                tokens matter.
        """
        self._fitted()
        ids = torch.as_tensor(np.asarray(context) if not isinstance(context, Tensor) else context)
        ids = ids.reshape(1, -1) if ids.dim() == 1 else ids
        if ids.dim() != 2:
            raise DataError(f"contexts must be (B, k) or (k,), got shape {tuple(ids.shape)}")
        if ids.numel() == 0:
            ids = ids.to(torch.int64)
        ctx = self._context_window(self._check_ids(ids, self.vocab_size_, "next_token_probs"))
        b, v = ctx.shape[0], self.vocab_size_
        out = np.empty((b, v))
        rows = max(1, QUERY_CHUNK // v)
        for start in range(0, b, rows):
            part = ctx[start : start + rows]
            q = len(part)
            probs = self._probs(np.repeat(part, v, axis=0), np.tile(np.arange(v), q))
            out[start : start + q] = probs.reshape(q, v)
        return torch.from_numpy(out)

    # -- likelihood --------------------------------------------------------------------------

    def log_likelihood(
        self,
        x: Tensor | np.ndarray,
        *,
        cond: dict[str, Tensor] | None = None,
        score_first: bool = False,
    ) -> LogLikelihood:
        """Exact log p(x_1 .. x_{T-1} | x_0) per row, in nats (the convention of `gpt`).

        Args:
            x: int64 token ids (B, T), T >= 2 (T >= 1 with score_first).
            cond: must be None (ngram is unconditional).
            score_first: also score x_0 under the unigram distribution, giving the full
                log p(x_0 .. x_{T-1}).

        Returns:
            LogLikelihood with nats float64 (B,), kind "exact", details["tokens_scored"].
        """
        if cond:
            raise ConfigError("ngram is unconditional: pass cond=None")
        if not isinstance(score_first, bool):
            raise ConfigError("ngram.log_likelihood: score_first must be true or false")
        self._fitted()
        ids = torch.as_tensor(x)
        if ids.dim() != 2:
            raise DataError(
                f"ngram.log_likelihood takes token ids (B, T), got shape {tuple(ids.shape)}"
            )
        first = 0 if score_first else 1
        if ids.shape[1] < first + 1:
            raise DataError(
                f"ngram.log_likelihood: rows of length {ids.shape[1]} have no token to score; "
                f"give rows of at least {first + 1} tokens"
                + ("" if score_first else " (the first token is context; or score_first=True)")
            )
        a = self._check_ids(ids, self.vocab_size_, "log_likelihood")  # (B, T)
        b, t = a.shape
        n = self.config.order
        logp = np.zeros(b)
        # positions with fewer than n - 1 tokens before them, one context length at a time
        for pos in range(first, min(n - 1, t)):
            logp += np.log(self._probs(a[:, :pos], a[:, pos]))
        # the rest, all with a full context: window i holds positions i..i+n-1 and predicts
        # position i + n - 1
        start = max(first, n - 1)
        if start < t:
            windows = np.lib.stride_tricks.sliding_window_view(a, n, axis=1)  # (B, t-n+1, n)
            w = windows[:, start - (n - 1) :].reshape(-1, n)
            p = self._probs(w[:, :-1], w[:, -1]).reshape(b, -1)  # (B, t - start)
            logp += np.log(p).sum(axis=1)
        return LogLikelihood(
            torch.from_numpy(logp), kind="exact", details={"tokens_scored": t - first}
        )

    def perplexity(self, x: Tensor | np.ndarray) -> float:
        """exp(mean NLL per scored token) of blocks (B, T), or of one stream (L,) read whole."""
        ids = torch.as_tensor(x)
        if ids.dim() == 1:
            ids = ids[None]
        ll = self.log_likelihood(ids)
        return math.exp(-float(ll.nats.sum()) / (ids.shape[0] * ll.details["tokens_scored"]))

    # -- sampling ----------------------------------------------------------------------------

    def step_function(self) -> Callable[[Tensor, Any], tuple[Tensor, Any]]:
        """Decoding step (ids (B, t), state) -> (log-probabilities (B, V), state).

        The state is the last order - 1 tokens of each row: all an n-gram model remembers.
        """
        keep = self.config.order - 1

        def step(ids: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
            ids = ids.cpu()
            context = ids if state is None else torch.cat([state, ids], dim=1)
            context = context[:, context.shape[1] - min(keep, context.shape[1]) :]
            probs = self.next_token_probs(context)  # (B, V)
            return torch.log(probs), context

        return step

    def _start_tokens(self, n: int, generator: torch.Generator | None) -> Tensor:
        unigram = self.next_token_probs(torch.zeros(1, 0, dtype=torch.int64))[0]  # (V,)
        return torch.multinomial(unigram, n, replacement=True, generator=generator)[:, None]

    def _check_ready(self) -> None:
        self._fitted()

    # -- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """Counts as int64 tensors: keys_m, counts_m (m = 1..n), continuation_m (m < n),
        discounts float64 (n, 2, 3) and vocab_size (scalar)."""
        self._fitted()
        state = {
            "vocab_size": torch.tensor(self.vocab_size_, dtype=torch.int64),
            "discounts": torch.from_numpy(self.discounts_.copy()),
        }
        for m, (keys, values) in self.counts_.items():
            state[f"keys_{m}"] = torch.from_numpy(keys.copy())
            state[f"counts_{m}"] = torch.from_numpy(values.copy())
        for m, cont in self.continuation_.items():
            state[f"continuation_{m}"] = torch.from_numpy(cont.copy())
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore the counts written by `export_state` and rebuild the lookup tables."""
        n = self.config.order
        expected = {"vocab_size", "discounts"}
        expected |= {f"keys_{m}" for m in range(1, n + 1)}
        expected |= {f"counts_{m}" for m in range(1, n + 1)}
        expected |= {f"continuation_{m}" for m in range(1, n)}
        if set(tensors) != expected:
            missing, extra = expected - set(tensors), set(tensors) - expected
            raise CheckpointError(
                f"weights do not fit an 'ngram' model of order {n} (missing: "
                f"{', '.join(sorted(missing)) or '-'}; unexpected: {', '.join(sorted(extra)) or '-'}"
                "): load it with the config it was saved with"
            )
        vocab_size = int(tensors["vocab_size"])
        if self.spec is not None and self.spec.discrete_levels != vocab_size:
            raise CheckpointError(
                f"ngram state has a vocabulary of {vocab_size} tokens, the spec "
                f"{self.spec.discrete_levels}: load it with the spec it was saved with"
            )
        discounts = tensors["discounts"].to(torch.float64).numpy().copy()
        if discounts.shape != (n, 2, 3):
            raise CheckpointError(
                f"ngram discounts have shape {discounts.shape}, expected {(n, 2, 3)}"
            )
        counts, continuation = {}, {}
        for m in range(1, n + 1):
            keys = tensors[f"keys_{m}"].to(torch.int64).numpy().copy()
            values = tensors[f"counts_{m}"].to(torch.int64).numpy().copy()
            if keys.shape != values.shape:
                raise CheckpointError(f"ngram keys_{m} and counts_{m} differ in length")
            counts[m] = (keys, values)
        for m in range(1, n):
            cont = tensors[f"continuation_{m}"].to(torch.int64).numpy().copy()
            if cont.shape != counts[m][0].shape:
                raise CheckpointError(f"ngram continuation_{m} does not match keys_{m}")
            continuation[m] = cont
        self.vocab_size_ = vocab_size
        self.counts_ = counts
        self.continuation_ = continuation
        self.discounts_ = discounts
        self._build_tables()
