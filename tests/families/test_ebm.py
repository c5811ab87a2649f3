"""Tests of the energy-based model and its Langevin sampler: moments of a known energy, training
on a 2-D toy, the replay buffer's persistence, anomaly scores and bad options."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.core.contract import Batch, DataSpec, NoLikelihoodError
from genlab.core.errors import ConfigError
from genlab.families.ebm.ebm import EBM, EBMConfig
from genlab.families.ebm.langevin import langevin

POINTS = DataSpec("points", (2,), name="toy")
DIGITS = DataSpec("image", (1, 8, 8), name="digits", value_range=(0.0, 1.0))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Langevin chains are many small forward/backward passes: a second thread only adds sync.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the sampler on a known energy ------------------------------------------------------------

WEIGHTS = torch.tensor([0.35, 0.65])
MEANS = torch.tensor([[-0.8, 0.0], [0.9, 0.6]])
COVS = torch.tensor([[[0.35, 0.1], [0.1, 0.25]], [[0.3, -0.12], [-0.12, 0.4]]])


def mixture_energy(x: torch.Tensor) -> torch.Tensor:
    """-log of a two-component 2-D Gaussian mixture density (up to a constant), (B, 2) -> (B,)."""
    d = x[:, None, :] - MEANS  # (B, K, 2)
    q = torch.einsum("bki,kij,bkj->bk", d, torch.linalg.inv(COVS), d)
    return -torch.logsumexp(WEIGHTS.log() - 0.5 * q - 0.5 * torch.logdet(COVS), dim=1)


def mixture_moments() -> tuple[torch.Tensor, torch.Tensor]:
    mean = (WEIGHTS[:, None] * MEANS).sum(0)
    second = (WEIGHTS[:, None, None] * (COVS + MEANS[:, :, None] * MEANS[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


def moment_errors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|sample moment - true moment| / its standard error, for the mean (2,) and cov (2, 2)."""
    mean, cov = mixture_moments()
    n = x.shape[0]
    centred = x - x.mean(0)
    products = centred[:, :, None] * centred[:, None, :]  # (N, 2, 2)
    mean_z = (x.mean(0) - mean).abs() / (x.std(0) / math.sqrt(n))
    cov_z = (products.mean(0) - cov).abs() / (products.std(0) / math.sqrt(n))
    return mean_z, cov_z


@pytest.mark.parametrize("step_size,num_steps,metropolis", [(0.01, 500, False), (0.05, 200, True)])
def test_langevin_recovers_the_moments_of_a_gaussian_mixture(step_size, num_steps, metropolis):
    g = torch.Generator().manual_seed(0)
    x0 = 2.0 * torch.randn(3000, 2, generator=g)
    x = langevin(
        mixture_energy,
        x0,
        step_size=step_size,
        num_steps=num_steps,
        generator=g,
        metropolis=metropolis,
    )
    mean_z, cov_z = moment_errors(x)
    # Unadjusted Langevin inflates variances by about step_size / 2 (0.005 here, ~1 standard
    # error); MALA is exact. Either way every moment is within 4 standard errors.
    assert mean_z.max() < 4 and cov_z.max() < 4, (mean_z, cov_z)


def test_langevin_with_too_large_a_step_is_detectably_wrong():
    # The same check rejects unadjusted Langevin with a coarse step, and MALA fixes it.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3000, 2, generator=g)
    coarse = langevin(mixture_energy, x0, step_size=0.25, num_steps=200, generator=g)
    assert moment_errors(coarse)[1].max() > 4
    fixed = langevin(
        mixture_energy, x0, step_size=0.25, num_steps=200, generator=g, metropolis=True
    )
    assert moment_errors(fixed)[1].max() < 4


def test_langevin_options_and_no_parameter_gradients():
    net = torch.nn.Linear(2, 1)

    def energy(x):
        return net(x).squeeze(-1)

    x = torch.zeros(4, 2)
    for bad in ({"step_size": 0.0}, {"step_size": -1.0}, {"step_size": math.nan}):
        with pytest.raises(ConfigError, match="step_size"):
            langevin(energy, x, num_steps=1, **bad)
    with pytest.raises(ConfigError, match="noise"):
        langevin(energy, x, step_size=0.1, noise=-1.0, num_steps=1)
    with pytest.raises(ConfigError, match="num_steps"):
        langevin(energy, x, step_size=0.1, num_steps=-1)
    with pytest.raises(ConfigError, match="metropolis"):
        langevin(energy, x, step_size=0.1, noise=0.5, num_steps=1, metropolis=True)
    out = langevin(energy, x, step_size=0.1, num_steps=3, bounds=(-0.05, 0.05))
    assert out.abs().max() <= 0.05 and not out.requires_grad
    assert all(p.grad is None for p in net.parameters())
    # noise 0 is gradient descent: a linear energy moves x by -num_steps * step * weight
    moved = langevin(energy, x, step_size=0.1, noise=0.0, num_steps=3)
    torch.testing.assert_close(moved, (-0.3 * net.weight.detach()).expand(4, 2))


# ---- the model ------------------------------------------------------------------------------


def test_short_training_moves_samples_toward_the_data():
    data = genlab.data.load("8gaussians", num_samples=2000)
    test = genlab.data.load("8gaussians", split="test", num_samples=500)

    def distance_to_data(x):
        return float(torch.cdist(x, test.x).min(1).values.mean())

    torch.manual_seed(0)
    model = genlab.create(
        "ebm", spec=data.spec, hidden=(64, 64), sgld_steps=10, buffer_size=1000, energy_reg=0.1
    )
    before = model.sample(500, generator=torch.Generator().manual_seed(0), steps=200)
    model.fit(data, genlab.TrainConfig(steps=200, batch_size=64, lr=3e-3, progress=False))
    after = model.sample(500, generator=torch.Generator().manual_seed(0), steps=200)
    # Measured: 1.40 before, 0.53 after; the modes sit on a circle of radius 2.
    assert distance_to_data(after) < 0.6 * distance_to_data(before)
    assert abs(float(after.norm(dim=1).mean()) - 2.0) < 0.4
    # Energies work as anomaly scores: a far point scores above the data.
    scores = model.anomaly_score(torch.cat([torch.tensor([[5.0, 5.0]]), test.x[:100]]))
    assert scores[0] > scores[1:].max()
    buffer = model.sample(200, generator=torch.Generator().manual_seed(0), init="buffer", steps=5)
    assert distance_to_data(buffer) < 0.6 * distance_to_data(before)


def test_loss_gradients_logs_and_penalties():
    torch.manual_seed(0)
    model = EBM(EBMConfig(hidden=(8,), sgld_steps=2, buffer_size=20, grad_penalty=0.5), POINTS)
    out = model.loss(Batch(torch.randn(6, 2)))
    assert set(out.logs) == {"energy_data", "energy_negative", "cd", "grad_penalty"}
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.replay.shape == (20, 2)


def test_replay_buffer_is_saved_and_training_resumes_bitwise(tmp_path):
    data = genlab.data.load("moons", num_samples=200)
    config = dict(hidden=(8,), sgld_steps=2, buffer_size=30)

    def run(steps, run_dir=None, resume=False):
        torch.manual_seed(0)
        model = genlab.create("ebm", spec=data.spec, **config)
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

    straight = run(6)
    run(3, tmp_path / "r")
    resumed = run(6, tmp_path / "r", resume=True)
    assert torch.equal(straight.replay, resumed.replay)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    straight.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert torch.equal(loaded.replay, straight.replay)
    g = torch.Generator
    assert torch.equal(
        loaded.sample(4, generator=g().manual_seed(1), init="buffer"),
        straight.sample(4, generator=g().manual_seed(1), init="buffer"),
    )


def test_weight_ema_leaves_the_replay_buffer_alone():
    data = genlab.data.load("moons", num_samples=200)
    torch.manual_seed(0)
    model = genlab.create("ebm", spec=data.spec, hidden=(8,), sgld_steps=2, buffer_size=30)
    model.fit(data, genlab.TrainConfig(steps=4, batch_size=16, ema_decay=0.9, progress=False))
    assert "replay" not in model.state_dict()
    assert model.replay.shape == (30, 2)


def test_images_stay_in_range_and_conv_energy():
    torch.manual_seed(0)
    model = EBM(EBMConfig(conv_channels=(4, 8), sgld_steps=2, buffer_size=10), DIGITS)
    assert model.architecture == "conv"
    assert model.langevin_settings() == (10.0, 0.005)
    x = model.sample(5, generator=torch.Generator().manual_seed(0), steps=3)
    assert x.shape == (5, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert model.energy(x).shape == (5,)


def test_no_likelihood_and_bad_options():
    model = EBM(EBMConfig(hidden=(8,), sgld_steps=1), POINTS)
    with pytest.raises(NoLikelihoodError, match="energy"):
        model.log_likelihood(torch.zeros(2, 2))
    g = torch.Generator().manual_seed(0)
    for bad in ({"step_size": 0.0}, {"step_size": -0.1}, {"noise": -1.0}, {"steps": -1}):
        with pytest.raises(ConfigError):
            model.sample(2, generator=g, **bad)
    with pytest.raises(ConfigError, match="empty"):
        model.sample(2, generator=g, init="buffer")
    with pytest.raises(ConfigError):
        model.sample(2, generator=g, init="data")
    with pytest.raises(TypeError):
        model.sample(2, generator=g, temperature=1.0)
    for overrides in (
        {"step_size": 0.0},
        {"step_size": -2.0},
        {"reinit_prob": 1.5},
        {"hidden": ()},
    ):
        with pytest.raises(ConfigError):
            EBMConfig(**overrides)
    with pytest.raises(ConfigError, match="architecture: mlp"):
        EBM(EBMConfig(architecture="conv"), POINTS)
