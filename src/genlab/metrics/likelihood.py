"""Likelihood figures in the units papers report: nats, bits per dimension, perplexity, bits/char.

Every model's `log_likelihood` returns per-sample nats; these functions turn them into the
figure each field reports, in float64.

Bits per dimension of dequantized data (Theis et al. 2016, "A note on the evaluation of
generative models", Sec. 3.1; Dinh et al. 2017; Papamakarios et al. 2017). Integer data
k ∈ {0, …, L-1}^D modelled by a continuous density is dequantized with uniform noise,
y = (k + u) / scale with u ~ U[0, 1)^D, so each integer owns a cube of side 1 / scale. The
discrete model P(k) = ∫ p(y) dy over that cube satisfies, by Jensen's inequality,

    log P(k) ≥ E_u[log p((k + u) / scale)] - D log(scale),

so the density's NLL plus D log(scale) bounds the discrete NLL from above, and

    bits/dim = (NLL_nats / D + log(scale)) / log(2).

`scale` is the number of integer levels per unit of the space the density is defined on:
256 for 8-bit images dequantized as (k + u) / 256 into [0, 1]; 1 for (k + u) in [0, 256);
255 for the k / 255 + u / 255 convention. A uniform density on [0, 1]^D (NLL 0) with scale 256
gives exactly 8 bits/dim, as does a uniform categorical over 256 levels with scale 1. Use
scale 1 for likelihoods that are already discrete (autoregressive categoricals, binarized
data) and for continuous data that was never quantized, where the figure is a differential
entropy rate and can be negative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from genlab.core.contract import LogLikelihood
from genlab.core.errors import ConfigError, DataError

LOG2 = math.log(2.0)


def _as_values(x: Any, name: str) -> np.ndarray:
    """Flatten per-sample (or per-token) values into a non-empty finite float64 vector."""
    if isinstance(x, LogLikelihood):
        x = x.nats
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        values = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"{name} cannot be read as numbers ({error}); pass a float array or tensor of "
            "per-sample values in nats."
        ) from error
    if values.size == 0:
        raise DataError(f"{name} is empty; pass at least one value in nats.")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise DataError(
            f"{name} holds {bad} NaN or infinite values of {values.size}; an infinite NLL means "
            "the model gives some sample zero probability: check the data range the model was "
            "trained on, or drop the failed samples and report how many."
        )
    return values


def nll_nats(log_likelihood_nats: Any) -> float:
    """Mean negative log-likelihood in nats per sample.

    Args:
        log_likelihood_nats: per-sample log-likelihoods (B,) in nats, or a `LogLikelihood`.

    Returns:
        -mean(log_likelihood_nats).

    Raises:
        DataError: empty input or non-finite values.
    """
    return -float(_as_values(log_likelihood_nats, "log_likelihood_nats").mean())


def bits_per_dim(nll_nats_per_sample: Any, num_dims: int, *, scale: float) -> float:
    """Mean negative log-likelihood in bits per dimension, adjusted for dequantization.

    bits/dim = (mean NLL / D + log(scale)) / log(2); see the module docstring for the
    derivation and for which `scale` fits which data convention.

    Args:
        nll_nats_per_sample: per-sample negative log-likelihoods (B,) in nats, or their mean.
        num_dims: D, the number of dimensions of one sample (C · H · W for images).
        scale: integer levels per unit of the density's space (256 for (k + u) / 256 in
            [0, 1]; 1 for already-discrete likelihoods or data in integer units). Required, so
            that no figure is silently off by log2(256) = 8 bits.

    Returns:
        Bits per dimension.

    Raises:
        DataError: empty input or non-finite values.
        ConfigError: num_dims < 1 or scale ≤ 0.
    """
    if isinstance(num_dims, bool) or not isinstance(num_dims, (int, np.integer)) or num_dims < 1:
        raise ConfigError(f"num_dims must be a positive integer, got {num_dims!r}.")
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(
            f"scale must be a positive number of levels per unit, got {scale!r}: 256 for data "
            "dequantized into [0, 1], 1 for discrete likelihoods."
        )
    nll = float(_as_values(nll_nats_per_sample, "nll_nats_per_sample").mean())
    return (nll / int(num_dims) + math.log(scale)) / LOG2


def perplexity(nll_nats_per_token: Any) -> float:
    """Perplexity exp(mean NLL per token), the figure language models report.

    Args:
        nll_nats_per_token: per-token negative log-likelihoods in nats, any shape (padding
            removed), or their mean.

    Returns:
        Perplexity ≥ 1 for a normalized model (inf when the mean NLL overflows exp).

    Raises:
        DataError: empty input or non-finite values.
    """
    mean = float(_as_values(nll_nats_per_token, "nll_nats_per_token").mean())
    try:
        return math.exp(mean)
    except OverflowError:
        return math.inf


def bits_per_char(nll_nats: Any, *, num_chars: int | None = None) -> float:
    """Negative log-likelihood in bits per character, the figure of character-level models.

    Args:
        nll_nats: per-character NLLs in nats (num_chars None: their mean is converted), or, for
            a model over multi-character tokens, NLLs in nats of any shape whose sum covers the
            text of `num_chars` characters (per token or per sequence).
        num_chars: the number of characters of the scored text; None when `nll_nats` holds
            one value per character.

    Returns:
        Bits per character: mean(nll_nats) / log 2, or sum(nll_nats) / (num_chars · log 2).

    Raises:
        DataError: empty input or non-finite values.
        ConfigError: num_chars < 1.
    """
    values = _as_values(nll_nats, "nll_nats")
    if num_chars is None:
        return float(values.mean()) / LOG2
    if isinstance(num_chars, bool) or not isinstance(num_chars, (int, np.integer)) or num_chars < 1:
        raise ConfigError(f"num_chars must be a positive integer or None, got {num_chars!r}.")
    return float(values.sum()) / (int(num_chars) * LOG2)
