"""Memorization and privacy checks: does the model copy its training data?

- Distance to closest record (DCR; Park et al., 2018, "Data Synthesis based on Generative
  Adversarial Networks"; Zhao et al., 2021, CTAB-GAN): each generated row's distance to its
  nearest training row, compared with the same distance for held-out real rows. Generated rows
  much closer to the training set than fresh real rows are suggest copying.
- Exact copies and n-gram overlap (Carlini et al., 2021, "Extracting Training Data from Large
  Language Models"; McCoy et al., 2023, "How much do language models copy"): the share of
  samples, or of generated n-grams, found verbatim in the training data.
- Membership inference by a loss threshold (Yeom et al., 2018, "Privacy Risk in Machine
  Learning"): how well a per-sample likelihood tells training members from non-members.

Rows are tensors (N, D), or (N, ...) flattened to (N, D); numpy arrays are accepted too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from genlab.core.contract import LogLikelihood
from genlab.core.errors import ConfigError, DataError

DistanceMetric = Literal["euclidean", "manhattan", "chebyshev"]
Unit = Literal["word", "char"]

_P_NORMS = {"euclidean": 2.0, "manhattan": 1.0, "chebyshev": math.inf}


def _rows(x: Any, name: str) -> Tensor:
    """(N, ...) → floating (N, D), checked for emptiness and NaN."""
    x = torch.as_tensor(x)
    if x.ndim == 0:
        raise DataError(f"{name} is a scalar; pass rows of shape (N, D)")
    if x.shape[0] == 0:
        raise DataError(f"{name} has no rows: pass at least one")
    if x.ndim == 1:
        raise DataError(
            f"{name} has shape {tuple(x.shape)}; pass rows of shape (N, D), e.g. x[:, None] "
            "for one feature"
        )
    x = x.reshape(x.shape[0], -1)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if torch.isnan(x).any():
        raise DataError(f"{name} contains NaN; drop or impute those rows first")
    return x


def _pair(a: Any, b: Any, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    a, b = _rows(a, name_a), _rows(b, name_b)
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{name_a} has {a.shape[1]} values per row but {name_b} has {b.shape[1]}: both "
            "must be in the same space (e.g. both encoded by the same dataset)"
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(a.device, dtype)


def distance_to_closest_record(
    candidates: Tensor,
    train: Tensor,
    *,
    metric: DistanceMetric = "euclidean",
    batch_size: int = 1024,
) -> Tensor:
    """Distance from each candidate row to its nearest training row (DCR).

    Computed block by block with `torch.cdist` (blocks of `batch_size` candidates by
    `batch_size` training rows, so memory stays O(batch_size²)), in direct rather than
    matrix-product mode, so an exact copy is at distance exactly 0.

    Args:
        candidates: (N, D) rows, e.g. generated samples.
        train: (M, D) training rows.
        metric: "euclidean", "manhattan" or "chebyshev" (largest coordinate gap).
        batch_size: rows per block on each side.

    Returns:
        (N,) distances, in the dtype of the inputs.
    """
    if metric not in _P_NORMS:
        raise ConfigError(f"unknown metric {metric!r}: choose from {', '.join(_P_NORMS)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    x, y = _pair(candidates, train, "candidates", "train")
    p = _P_NORMS[metric]
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size]
        best = torch.full((xb.shape[0],), math.inf, dtype=x.dtype, device=x.device)
        for j in range(0, y.shape[0], batch_size):
            d = torch.cdist(
                xb, y[j : j + batch_size], p=p, compute_mode="donot_use_mm_for_euclid_dist"
            )  # (b, m)
            best = torch.minimum(best, d.min(dim=1).values)
        out[i : i + batch_size] = best
    return out


def dcr_report(
    generated: Tensor,
    train: Tensor,
    holdout: Tensor,
    *,
    metric: DistanceMetric = "euclidean",
    batch_size: int = 1024,
) -> dict[str, float]:
    """DCR of generated rows and of held-out real rows to the training set, and their ratio.

    Held-out real rows set the scale: they come from the same distribution as the training set
    but were never seen, so a model that generalises puts its samples about as far from the
    training set as they are (ratio ≈ 1); a ratio well below 1 suggests copying, 0 means
    verbatim copies. Each row's DCR depends only on the training set, so the two sets may differ
    in size, but percentiles of a small set (under a few hundred rows) are noisy.

    Args:
        generated: (N, D) generated rows.
        train: (M, D) training rows.
        holdout: (K, D) real rows not used in training.
        metric, batch_size: as in `distance_to_closest_record`.

    Returns:
        {"generated_median", "generated_p5", "holdout_median", "holdout_p5", "median_ratio",
        "p5_ratio"}: median and 5th percentile of each DCR, and generated / holdout for each
        (NaN when the holdout figure is 0, i.e. the holdout repeats training rows; deduplicate
        it).
    """
    g = distance_to_closest_record(generated, train, metric=metric, batch_size=batch_size)
    h = distance_to_closest_record(holdout, train, metric=metric, batch_size=batch_size)
    q = torch.tensor([0.5, 0.05], dtype=torch.float64)
    g_median, g_p5 = torch.quantile(g.double().cpu(), q).tolist()
    h_median, h_p5 = torch.quantile(h.double().cpu(), q).tolist()
    return {
        "generated_median": g_median,
        "generated_p5": g_p5,
        "holdout_median": h_median,
        "holdout_p5": h_p5,
        "median_ratio": g_median / h_median if h_median > 0 else math.nan,
        "p5_ratio": g_p5 / h_p5 if h_p5 > 0 else math.nan,
    }


def _is_texts(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(s, str) for s in x)


def exact_copy_rate(
    generated: Tensor | Sequence[str], train: Tensor | Sequence[str], *, atol: float = 0.0
) -> float:
    """Share of generated items equal to some training item.

    Strings are compared exactly (no normalisation). Rows are equal when every value differs by
    at most `atol`: with `atol=0` rows are hashed (O(N + M)); otherwise it is a Chebyshev DCR
    ≤ atol test, blockwise.

    Args:
        generated: (N, D) rows, or a list of N strings.
        train: (M, D) rows, or a list of M strings.
        atol: absolute tolerance per value, for rows only.

    Returns:
        The share in [0, 1].
    """
    if isinstance(generated, str) or isinstance(train, str):
        raise DataError("pass lists of strings, not a single string: wrap it as [text]")
    if _is_texts(generated) or _is_texts(train):
        if not (_is_texts(generated) and _is_texts(train)):
            raise DataError(
                "generated and train must both be non-empty lists of strings, or both rows"
            )
        if atol != 0:
            raise ConfigError("atol applies to numeric rows only; strings are compared exactly")
        seen = set(train)
        return sum(s in seen for s in generated) / len(generated)
    if atol < 0:
        raise ConfigError(f"atol must be >= 0, got {atol}")
    x, y = _pair(generated, train, "generated", "train")
    if atol > 0:
        d = distance_to_closest_record(x, y, metric="chebyshev")
        return float((d <= atol).double().mean())
    # + 0.0 turns -0.0 into 0.0, so the bytes of equal values are equal
    seen = {row.tobytes() for row in (y.double().cpu() + 0.0).numpy()}
    rows = (x.double().cpu() + 0.0).numpy()
    return sum(row.tobytes() in seen for row in rows) / rows.shape[0]


def _ngrams(text: str, n: int, unit: Unit) -> list[tuple[str, ...] | str]:
    if unit == "word":
        tokens = text.split()
        return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if unit == "char":
        return [text[i : i + n] for i in range(len(text) - n + 1)]
    raise ConfigError(f"unknown unit {unit!r}: choose 'word' (whitespace split) or 'char'")


def ngram_overlap(
    generated_texts: Sequence[str], train_texts: Sequence[str], n: int = 8, *, unit: Unit = "word"
) -> float:
    """Share of generated n-grams that occur somewhere in the training corpus.

    Every n-gram occurrence in the generated texts counts (with repetition); n-grams never cross
    from one text into the next. Long word n-grams (8 and more) rarely recur by chance, so a high
    share means verbatim copying; character n-grams need a larger n to say the same.

    Args:
        generated_texts: generated strings.
        train_texts: the training strings.
        n: n-gram length (>= 1).
        unit: "word" (whitespace split) or "char" (every character, spaces included).

    Returns:
        The share in [0, 1].
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    for name, texts in (("generated_texts", generated_texts), ("train_texts", train_texts)):
        if isinstance(texts, str) or not _is_texts(texts):
            raise DataError(f"{name} must be a non-empty list of strings")
    seen = {g for text in train_texts for g in _ngrams(text, n, unit)}
    found = total = 0
    for text in generated_texts:
        grams = _ngrams(text, n, unit)
        total += len(grams)
        found += sum(g in seen for g in grams)
    if total == 0:
        raise DataError(
            f"no generated text has {n} or more {unit}s, so there is no n-gram to look up: "
            "pass longer texts or a smaller n"
        )
    return found / total


def _scores(x: Any, name: str) -> tuple[np.ndarray, str | None]:
    kind = None
    if isinstance(x, LogLikelihood):
        x, kind = x.nats, x.kind
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise DataError(f"{name} must be one score per sample, shape (N,), got {x.shape}")
    if x.size == 0:
        raise DataError(f"{name} is empty: pass one score per sample")
    if not np.isfinite(x).all():
        raise DataError(
            f"{name} contains NaN or infinite values; clip -inf log-likelihoods to a finite floor "
            "and drop NaN scores first"
        )
    return x, kind


def membership_inference_auc(
    train_scores: Tensor | np.ndarray | LogLikelihood,
    holdout_scores: Tensor | np.ndarray | LogLikelihood,
) -> dict[str, float]:
    """Loss-threshold membership inference (Yeom et al., 2018): members from non-members.

    The attacker calls a sample a training member when its score (a log-likelihood or a
    negative loss: higher means better fit) exceeds a threshold. Over all thresholds this gives
    an ROC curve (`sklearn.metrics.roc_curve`, members as positives), whose area is the AUC
    (0.5: the model leaks nothing this attack sees; 1.0: members fully separable) and whose best
    point gives the membership advantage max_t (TPR − FPR) of Yeom et al.

    Args:
        train_scores: (N,) scores of training members, or their `LogLikelihood` (its nats).
        holdout_scores: (K,) scores of non-members from the same distribution, or their
            `LogLikelihood`; both should come from the same model and the same kind of figure.

    Returns:
        {"auc", "advantage", "threshold"}: the AUC, max TPR − FPR, and the score threshold that
        reaches it (samples with score >= threshold are called members).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    members, kind_a = _scores(train_scores, "train_scores")
    others, kind_b = _scores(holdout_scores, "holdout_scores")
    if kind_a is not None and kind_b is not None and kind_a != kind_b:
        raise DataError(
            f"train_scores are '{kind_a}' log-likelihoods but holdout_scores are '{kind_b}': "
            "score both sets with the same model and options"
        )
    labels = np.concatenate([np.ones(members.size), np.zeros(others.size)])
    scores = np.concatenate([members, others])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "advantage": float(tpr[best] - fpr[best]),
        "threshold": float(thresholds[best]),
    }
