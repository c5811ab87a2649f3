"""Likelihood units: nats, bits per dimension with dequantization, perplexity, bits per char."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.core.contract import LogLikelihood
from genlab.core.errors import ConfigError, DataError
from genlab.metrics.likelihood import bits_per_char, bits_per_dim, nll_nats, perplexity

DIMS = 3 * 4 * 4


def test_uniform_categorical_over_256_levels_is_8_bits_per_dim():
    nll = torch.full((10,), DIMS * math.log(256.0), dtype=torch.float64)
    assert bits_per_dim(nll, DIMS, scale=1) == pytest.approx(8.0, abs=1e-12)


def test_uniform_density_on_the_unit_cube_of_dequantized_8_bit_data_is_8_bits_per_dim():
    # log p = 0 everywhere on [0, 1]^D
    assert bits_per_dim(np.zeros(7), DIMS, scale=256) == pytest.approx(8.0, abs=1e-12)


def test_piecewise_constant_density_recovers_the_discrete_nll_exactly():
    # A continuous density that is constant on each dequantization cube gives the discrete
    # likelihood exactly (Jensen's bound is tight), so bits/dim must equal the discrete figure.
    rng = np.random.default_rng(0)
    pmf = rng.dirichlet(np.ones(256))
    levels = rng.choice(256, size=(500, 5), p=pmf)
    discrete_bits = -np.log2(pmf[levels]).sum(axis=1).mean() / 5
    density_unit = np.log(256 * pmf[levels]).sum(axis=1)  # p(y) = 256 P(floor(256 y)) on [0, 1)
    density_integer = np.log(pmf[levels]).sum(axis=1)  # p(y) = P(floor(y)) on [0, 256)
    assert bits_per_dim(-density_unit, 5, scale=256) == pytest.approx(discrete_bits, rel=1e-12)
    assert bits_per_dim(-density_integer, 5, scale=1) == pytest.approx(discrete_bits, rel=1e-12)


def test_nll_nats_is_the_negated_mean_and_reads_log_likelihoods():
    nats = torch.tensor([-1.0, -2.0, -6.0])
    assert nll_nats(nats) == pytest.approx(3.0)
    assert nll_nats(LogLikelihood(nats=nats, kind="exact")) == pytest.approx(3.0)
    assert bits_per_dim(nll_nats(nats), 3, scale=1) == pytest.approx(1.0 / math.log(2))


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocab = 50
    assert perplexity(torch.full((4, 9), math.log(vocab))) == pytest.approx(vocab)
    assert perplexity(np.zeros(3)) == 1.0
    assert perplexity([1e6]) == math.inf


def test_bits_per_char_per_character_and_over_tokens():
    assert bits_per_char(np.full(12, math.log(2))) == pytest.approx(1.0)
    # 3 tokens covering 12 characters, 6 bits in total: 0.5 bits per character
    per_token = np.full(3, 2 * math.log(2))
    assert bits_per_char(per_token, num_chars=12) == pytest.approx(0.5)


def test_bad_inputs_raise():
    with pytest.raises(DataError, match="NaN or infinite"):
        bits_per_dim(np.array([1.0, np.inf]), 2, scale=256)
    with pytest.raises(DataError, match="empty"):
        nll_nats(torch.zeros(0))
    with pytest.raises(DataError, match="cannot be read"):
        perplexity(["x"])
    with pytest.raises(ConfigError, match="num_dims"):
        bits_per_dim(np.ones(2), 0, scale=256)
    with pytest.raises(ConfigError, match="scale"):
        bits_per_dim(np.ones(2), 4, scale=0)
    with pytest.raises(TypeError):
        bits_per_dim(np.ones(2), 4)  # scale must be chosen explicitly
    with pytest.raises(ConfigError, match="num_chars"):
        bits_per_char(np.ones(2), num_chars=0)
