"""Tests of the RBM: free energy and log Z against brute force, AIS against exact enumeration,
Gibbs sampling against the exact distribution, CD-k/PCD training, saved chains, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genlab
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.ebm import rbm as rbm_module
from genlab.families.ebm.rbm import RBM, RBMConfig

BITS = DataSpec("points", (12,), name="bits")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Gibbs chains are thousands of tiny matrix products: a second thread only adds sync cost.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_rbm(d: int, h: int, visible: str = "bernoulli", seed: int = 0, scale: float = 1.0):
    """An RBM with N(0, scale²) weights and N(0, 1) biases (and random stds if Gaussian)."""
    return rbm_module.random_rbm(d, h, visible, seed=seed, weight_std=scale)


def states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def brute_energy(model: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """E(v, h) straight from the definition: (V, D), (S, H) -> (V, S)."""
    w, b, c = model.weight, model.visible_bias, model.hidden_bias
    if model.gaussian:
        sigma2 = torch.exp(2 * model.log_sigma)
        vis = ((v - b).pow(2) / (2 * sigma2)).sum(-1)
        v = v / sigma2
    else:
        vis = -(v @ b)
    # sum_ij v_i W_ij h_j for every pair of rows, written as loops' worth of broadcasting
    interaction = (v[:, None, :, None] * w * h[None, :, None, :]).sum((2, 3))
    return vis[:, None] - (h @ c)[None, :] - interaction


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_matches_brute_force(visible):
    model = random_rbm(5, 4, visible)
    v = states(5) if visible == "bernoulli" else torch.randn(7, 5, dtype=torch.float64)
    with torch.no_grad():
        brute = -torch.logsumexp(-brute_energy(model, v, states(4)), dim=1)
        torch.testing.assert_close(model.free_energy(v), brute, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d,h", [(5, 4), (4, 6)])  # enumerates the hidden, then the visible side
def test_exact_log_z_matches_brute_force_bernoulli(d, h):
    model = random_rbm(d, h)
    with torch.no_grad():
        brute = torch.logsumexp(-brute_energy(model, states(d), states(h)).flatten(), 0)
    assert model.log_partition_exact() == pytest.approx(float(brute), abs=1e-9)


def test_exact_log_z_of_a_gaussian_rbm_normalizes_on_a_grid():
    model = random_rbm(2, 3, "gaussian", scale=0.7)
    axis = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        log_z_grid = torch.logsumexp(-model.free_energy(grid), 0) + 2 * math.log(axis[1] - axis[0])
    assert model.log_partition_exact() == pytest.approx(float(log_z_grid), abs=1e-6)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_ais_log_z_is_within_0_1_nats_of_exact(visible):
    # 12 visible x 8 hidden with N(0, 1) weights (Gaussian: N(0, 0.5²)): peaked, far from base.
    model = random_rbm(12, 8, visible, seed=1, scale=1.0 if visible == "bernoulli" else 0.5)
    exact = model.log_partition_exact()
    log_z, info = model.log_partition_ais(
        num_chains=100, num_betas=1000, generator=torch.Generator().manual_seed(0)
    )
    assert abs(log_z - exact) < 0.1, (log_z, exact)
    assert info["log_z_std_error"] < 0.05
    # Few intermediate distributions are worse, which is what makes this test able to fail.
    coarse = [
        model.log_partition_ais(
            num_chains=100, num_betas=2, generator=torch.Generator().manual_seed(s)
        )[0]
        for s in range(3)
    ]
    assert max(abs(c - exact) for c in coarse) > 0.1


def test_ais_with_a_base_rate_model_and_the_likelihood_kinds():
    model = random_rbm(12, 8, seed=2).float()
    x = torch.bernoulli(torch.full((20, 12), 0.3), generator=torch.Generator().manual_seed(0))
    exact = model.log_likelihood(x)
    assert exact.kind == "exact" and exact.details["method"] == "exact"
    g = torch.Generator().manual_seed(0)
    ais = model.log_likelihood(x, method="ais", num_betas=1000, base_means=x.mean(0), generator=g)
    assert ais.kind == "estimate"
    torch.testing.assert_close(ais.nats, exact.nats, atol=0.1, rtol=0)
    # auto switches to AIS above exact_max_units on both sides
    small = RBM(RBMConfig(num_hidden=8, exact_max_units=4), BITS)
    assert small.log_likelihood(x, num_betas=10, num_chains=4).kind == "estimate"


def test_gibbs_sampling_matches_the_exact_distribution():
    model = random_rbm(4, 3, seed=3).float()
    with torch.no_grad():
        v = states(4).float()
        p = torch.softmax(-model.free_energy(v), 0)
    x = model.sample(4000, generator=torch.Generator().manual_seed(0), steps=50, decode="sample")
    codes = (x * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    empirical = torch.bincount(codes, minlength=16).float() / len(codes)
    total_variation = 0.5 * float((empirical - p).abs().sum())
    assert total_variation < 0.04, total_variation


def tiny_binary_data(n: int = 256, seed: int = 0) -> torch.Tensor:
    """Three 8-bit prototypes with 5% of bits flipped."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.tensor(
        [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0]],
        dtype=torch.float32,
    )
    x = prototypes[torch.randint(0, 3, (n,), generator=g)]
    flips = torch.rand(x.shape, generator=g) < 0.05
    return torch.where(flips, 1 - x, x)


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_training_raises_the_exact_likelihood(persistent):
    from genlab.data.dataset import Dataset

    spec = DataSpec("points", (8,), name="protos")
    data = Dataset(tiny_binary_data(), spec)
    torch.manual_seed(0)
    model = RBM(
        RBMConfig(num_hidden=6, cd_steps=1, persistent=persistent, num_chains=64, init_std=0.1),
        spec,
    )
    before = model.log_likelihood(data.x).mean()
    model.fit(data, genlab.TrainConfig(steps=300, batch_size=64, lr=0.05, progress=False))
    after = model.log_likelihood(data.x).mean()
    # 8 uniform bits have log p = -5.55 nats; the source's entropy is log 3 + 8 H(0.05) = 2.69
    # nats (the prototypes are 4+ flips apart), the best a model can do on average.
    assert before == pytest.approx(-8 * math.log(2), abs=0.2)
    assert -3.2 < after < -2.4, (before, after)
    if persistent:
        assert model.chains.shape == (64, 8)


def test_persistent_chains_are_saved_and_resume_bitwise(tmp_path):
    from genlab.data.dataset import Dataset

    spec = DataSpec("points", (8,), name="protos")
    data = Dataset(tiny_binary_data(64), spec)
    config = RBMConfig(num_hidden=4, persistent=True, num_chains=16, cd_steps=2)

    def run(steps: int, run_dir, resume=False, model=None):
        torch.manual_seed(0)
        model = model or RBM(config, spec)
        train = genlab.TrainConfig(
            steps=steps,
            batch_size=16,
            schedule="constant",
            progress=False,
            checkpoint_every=3,
            num_samples=0,
        )
        model.fit(data, train, run_dir=run_dir, resume=resume)
        return model

    straight = run(6, None)
    run(3, tmp_path / "r")
    torch.manual_seed(0)
    resumed = run(6, tmp_path / "r", resume=True, model=RBM(config, spec))
    assert torch.equal(straight.weight, resumed.weight)
    assert torch.equal(straight.chains, resumed.chains)

    straight.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert torch.equal(loaded.chains, straight.chains)


def test_bernoulli_rbm_rejects_non_binary_data():
    grey = genlab.data.load("digits", split="test")  # 17 grey levels
    with pytest.raises(DataError, match="binarize=true"):
        genlab.create("rbm", spec=grey.spec, num_hidden=4)
    model = RBM(RBMConfig(num_hidden=4), BITS)
    half = torch.full((3, 12), 0.5)
    with pytest.raises(DataError, match="not all 0 or 1"):
        model.loss(Batch(half))
    with pytest.raises(DataError, match="not all 0 or 1"):
        model.log_likelihood(half)
    # a Gaussian rbm takes the grey digits
    genlab.create("rbm", spec=grey.spec, num_hidden=4, visible="gaussian")


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_hidden": 0},
        {"cd_steps": 0},
        {"sigma": 0.0},
        {"learn_sigma": True},  # Bernoulli units have no std
        {"visible": "poisson"},
        {"exact_max_units": 40},
    ],
)
def test_bad_configs_raise(overrides):
    with pytest.raises(ConfigError):
        RBMConfig(**overrides)


def test_bad_sample_and_likelihood_options_raise():
    model = RBM(RBMConfig(num_hidden=4), BITS)
    for options in ({"steps": 0}, {"decode": "mode"}, {"temperature": 1.0}):
        with pytest.raises((ConfigError, TypeError)):
            model.sample(2, **options)
    x = torch.zeros(2, 12)
    with pytest.raises(ConfigError):
        model.log_likelihood(x, method="bridge")
    with pytest.raises(ConfigError):
        model.log_likelihood(x, method="ais", num_betas=1)


def test_log_z_is_cached_per_weights_and_settings():
    model = random_rbm(12, 8, seed=4).float()
    x = torch.zeros(3, 12)
    options = {"method": "ais", "num_betas": 50, "num_chains": 8}
    first = model.log_likelihood(x, generator=torch.Generator().manual_seed(0), **options)
    again = model.log_likelihood(x, generator=torch.Generator().manual_seed(1), **options)
    assert again.details["log_z"] == first.details["log_z"]  # one estimate for a whole data set
    other = model.log_likelihood(
        x, generator=torch.Generator().manual_seed(1), num_chains=9, method="ais", num_betas=50
    )
    assert other.details["log_z"] != first.details["log_z"]
    with torch.no_grad():
        model.weight.mul_(1.5)  # new weights: a new estimate
    changed = model.log_likelihood(x, generator=torch.Generator().manual_seed(0), **options)
    assert changed.details["log_z"] != first.details["log_z"]
    assert model.log_likelihood(x).details["log_z"] == pytest.approx(model.log_partition_exact())
