"""Maths and behaviour of the `vqvae` model: quantization, EMA codebook, gradients, prior."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import genlab
from genlab.core.contract import Batch
from genlab.core.errors import ConfigError, DataError
from genlab.families.vae.vqvae import VQVAE, VQVAEConfig, ema_codebook_update, quantize

TINY = {
    "channels": (8, 8),
    "res_blocks": 1,
    "num_codes": 16,
    "code_dim": 4,
    "prior_layers": 1,
    "prior_heads": 2,
    "prior_dim": 16,
}


@pytest.fixture(scope="module")
def digits():
    return genlab.data.load("digits", binarize=True)


def test_quantize_picks_the_nearest_code():
    gen = torch.Generator().manual_seed(0)
    codebook = torch.randn(5, 3, generator=gen)
    z_e = torch.randn(2, 3, 4, 4, generator=gen)
    codes, z_q, error = quantize(z_e, codebook)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = torch.cdist(flat, codebook).argmin(1).reshape(2, 4, 4)
    assert torch.equal(codes, brute)
    assert torch.allclose(z_q, codebook[brute].permute(0, 3, 1, 2))
    assert torch.allclose(error, (z_e - z_q).pow(2).sum(1), atol=1e-5)


def test_ema_update_matches_its_formula():
    gen = torch.Generator().manual_seed(1)
    k, d, g, eps = 4, 3, 0.9, 1e-5
    size, total = torch.rand(k, generator=gen) + 0.5, torch.randn(k, d, generator=gen)
    counts = torch.tensor([3.0, 0.0, 1.0, 6.0])
    sums = torch.randn(k, d, generator=gen)
    n_new = g * size + (1 - g) * counts
    m_new = g * total + (1 - g) * sums
    smoothed = (n_new + eps) / (n_new.sum() + k * eps) * n_new.sum()
    expected = m_new / smoothed[:, None]
    size_ip, total_ip = size.clone(), total.clone()
    got = ema_codebook_update(size_ip, total_ip, counts, sums, g, eps)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(size_ip, n_new)
    torch.testing.assert_close(total_ip, m_new)


def test_after_step_applies_the_batch_statistics(digits):
    model = VQVAE(VQVAEConfig(**TINY, dead_code_threshold=0.0), digits.spec)
    batch = digits.batch(torch.arange(32), generator=torch.Generator().manual_seed(0))
    model.loss(batch)  # starts the codebook from this batch's encoder outputs
    size, total = model.cluster_size.clone(), model.code_sum.clone()
    model.loss(batch)
    counts, sums, _ = model._pending
    model.after_step(1)
    expected = ema_codebook_update(size, total, counts, sums, model.config.ema_decay)
    expected = torch.nn.functional.normalize(expected, dim=1)  # normalize_codes is on
    chosen = model.cluster_size > 0  # codes never chosen keep their starting vectors
    assert chosen.sum() >= 2
    torch.testing.assert_close(model.codebook[chosen], expected[chosen])


def test_straight_through_gradients_reach_the_encoder(digits):
    model = VQVAE(VQVAEConfig(**TINY), digits.spec)
    batch = digits.batch(torch.arange(16), generator=torch.Generator().manual_seed(0))
    out = model.loss(batch, key="main")
    out.loss.backward()
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert all(p.grad is None for p in model.prior.parameters())
    assert {"recon", "commitment", "codebook_usage", "codebook_perplexity"} <= set(out.logs)
    assert 1.0 <= out.logs["codebook_perplexity"] <= TINY["num_codes"]


def test_dead_codes_restart_at_data(digits):
    model = VQVAE(VQVAEConfig(**TINY, dead_code_threshold=0.5, ema_decay=0.5), digits.spec)
    batch = digits.batch(torch.arange(64), generator=torch.Generator().manual_seed(0))
    model.loss(batch)
    model.codebook[3] = 1e3  # far from every encoder output: never chosen, its count decays
    model.code_sum[3] = 1e3
    model.cluster_size[3] = 0.0
    model.loss(batch)
    model.after_step(1)
    assert model.codebook[3].abs().max() < 1e2, "the dead code was not restarted"
    assert model.cluster_size[3] == 64 * 2 * 2 / TINY["num_codes"]  # one batch's share


def test_training_reconstructs_and_prior_learns(digits):
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**{**TINY, "channels": (16, 16)}), digits.spec)
    test = genlab.data.load("digits", split="test", binarize=True)
    before = model.log_likelihood(test.x[:100]).mean()
    model.fit(digits, genlab.TrainConfig(steps=250, batch_size=64, lr=3e-3, progress=False))
    after = model.log_likelihood(test.x[:100])
    assert after.kind == "lower_bound"
    assert after.mean() > before + 10, (before, after.mean())
    grey = genlab.data.load("digits", split="test").x[:50]
    error = (model.reconstruct(test.x[:50]) - grey).abs().mean()
    baseline = (grey.mean(0, keepdim=True) - grey).abs().mean()  # the mean image's error
    assert error < 0.9 * baseline, (error, baseline)
    x = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 8, 8) and 0 <= x.min() and x.max() <= 1


def test_bad_config_and_inputs(digits):
    with pytest.raises(ConfigError, match="at least one code"):
        VQVAEConfig(num_codes=0)
    with pytest.raises(ConfigError, match="divisible by 16"):
        VQVAE(VQVAEConfig(channels=(4, 4, 4, 4)), genlab.data.load("digits").spec)
    with pytest.raises(ConfigError, match="models images"):
        VQVAE(VQVAEConfig(**TINY), genlab.data.load("moons").spec)
    unlabelled = dataclasses.replace(digits.spec, num_classes=None)
    with pytest.raises(ConfigError, match="needs labelled data"):
        VQVAE(VQVAEConfig(**TINY, conditional=True), unlabelled)
    cond_model = VQVAE(VQVAEConfig(**TINY, conditional=True), digits.spec)
    with pytest.raises(ConfigError, match="never seen in training"):
        cond_model.sample(2, cond={"label": torch.tensor([3, 10])})
    with pytest.raises(ConfigError, match="is conditional"):
        cond_model.sample(2)
    with pytest.raises(DataError, match="sample shape"):
        cond_model.log_likelihood(torch.zeros(2, 1, 4, 4), cond={"label": torch.zeros(2).long()})


def test_conditional_prior_loss_uses_the_label(digits):
    model = VQVAE(VQVAEConfig(**TINY, conditional=True), digits.spec)
    batch = digits.batch(torch.arange(8), generator=torch.Generator().manual_seed(0))
    a = model.loss(batch, key="prior").loss
    shifted = Batch(batch.x, {"label": (batch.cond["label"] + 1) % 10})
    b = model.loss(shifted, key="prior").loss
    assert math.isfinite(float(a.detach())) and not torch.equal(a, b)
