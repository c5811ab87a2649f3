"""Tests of the VAE family: gradients, the IWAE bound against the true marginal, sampling, errors."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import make_moons

import genlab
from genlab.core.config import build_config
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.vae.vae import VAE, VAEConfig
from genlab.nn.mlp import MLP

DIGITS = DataSpec(
    modality="image", shape=(1, 8, 8), name="digits", num_classes=10, value_range=(0.0, 1.0)
)
POINTS = DataSpec(modality="points", shape=(2,), name="toy")
LINE = DataSpec(modality="points", shape=(1,), name="line")

TINY = dict(latent_dim=3, hidden=(16,), conv_channels=(4, 8), label_dim=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny networks: a second intra-op thread only adds synchronisation, which on a loaded
    # machine makes each small matrix product orders of magnitude slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(spec: DataSpec, seed: int = 0, **overrides) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(**{**TINY, **overrides}), spec)


def image_batch(n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *DIGITS.shape), generator=g)
    return Batch(x, {"label": torch.randint(0, 10, (n,), generator=g)})


def point_batch(n: int = 16, seed: int = 0) -> Batch:
    return Batch(torch.randn((n, 2), generator=torch.Generator().manual_seed(seed)))


def train(model: VAE, x: torch.Tensor, steps: int, lr: float = 1e-2, seed: int = 0) -> list[float]:
    """Plain full-batch AdamW on the model's loss (no genlab training loop)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = model.loss(Batch(x))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    return losses


# ---- loss and gradients -----------------------------------------------------------------------

GRADIENT_CASES = {
    "mlp-bernoulli": (DIGITS, {}),
    "conv-bernoulli": (DIGITS, {"architecture": "conv"}),
    "conv-conditional": (DIGITS, {"architecture": "conv", "conditional": True}),
    "mlp-conditional-gaussian": (DIGITS, {"conditional": True, "decoder": "gaussian"}),
    "mlp-gaussian-points": (POINTS, {}),
    "mlp-gaussian-fixed-std": (POINTS, {"gaussian_std": "fixed", "decoder_std": 0.3}),
    "iwae-dropout": (POINTS, {"iwae_k": 4, "dropout": 0.1, "activation": "gelu"}),
    "beta": (DIGITS, {"beta": 4.0, "hidden": (16, 8)}),
}


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_loss_is_finite_and_every_parameter_gets_a_gradient(case):
    spec, overrides = GRADIENT_CASES[case]
    model = make(spec, **overrides)
    batch = image_batch() if spec is DIGITS else point_batch()
    out = model.loss(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.logs) >= {"elbo", "recon", "kl"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.logs.values())
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_loss_logs_are_consistent():
    model = make(POINTS)
    out = model.loss(point_batch())
    assert out.logs["elbo"] == pytest.approx(-out.logs["recon"] - out.logs["kl"], abs=1e-4)
    assert out.logs["elbo"] == pytest.approx(-out.loss.item(), abs=1e-4)  # beta = 1
    assert out.logs["kl"] >= 0
    iwae = make(POINTS, iwae_k=5).loss(point_batch())
    assert iwae.logs["iwae"] == pytest.approx(-iwae.loss.item(), abs=1e-4)


def test_fixed_gaussian_std_is_not_trained():
    model = make(POINTS, gaussian_std="fixed", decoder_std=0.3)
    assert "decoder_log_std" not in dict(model.named_parameters())
    assert "decoder_log_std" in model.state_dict()


def test_loss_errors():
    with pytest.raises(ConfigError, match="main"):
        make(POINTS).loss(point_batch(), key="disc")
    with pytest.raises(DataError, match="label"):
        make(DIGITS, conditional=True).loss(Batch(image_batch().x))
    # An unconditional model ignores labels the data set happens to carry.
    assert torch.isfinite(make(DIGITS).loss(image_batch()).loss)


# ---- the bound --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def line_model() -> VAE:
    """A latent_dim=1 Gaussian-decoder VAE trained briefly on a 1-D mixture of two Gaussians."""
    g = torch.Generator().manual_seed(0)
    side = torch.randint(0, 2, (512, 1), generator=g) * 4.0 - 2.0
    x = side + 0.5 * torch.randn((512, 1), generator=g)
    model = make(LINE, latent_dim=1, hidden=(32, 32), decoder_std=0.5)
    train(model, x, steps=300)
    return model.eval()


def true_log_marginal(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz as a Riemann sum on a fine grid."""
    z = torch.linspace(-10, 10, 40001, dtype=torch.float32).unsqueeze(1)  # (G, 1)
    dz = 20 / 40000
    log_prior = -0.5 * (z.squeeze(1).double() ** 2 + math.log(2 * math.pi))  # (G,)
    out = []
    with torch.no_grad():
        for xi in x:
            log_px = model.decoder_log_prob(xi.expand(len(z), 1), z).double()  # (G,)
            out.append(torch.logsumexp(log_px + log_prior, 0) + math.log(dz))
    return torch.stack(out)


def test_iwae_approaches_the_true_marginal_likelihood(line_model):
    x = torch.linspace(-3.5, 3.5, 8).unsqueeze(1)  # (8, 1)
    truth = true_log_marginal(line_model, x)
    g = torch.Generator().manual_seed(1)
    bound = line_model.log_likelihood(x, k=20000, batch_size=200_000, generator=g).nats
    assert torch.all(bound <= truth + 0.01), (bound, truth)
    assert torch.allclose(bound, truth, atol=0.05), bound - truth
    # A coarse sanity check that the grid integral itself normalizes: ∫ p(x) dx ≈ 1.
    xs = torch.linspace(-12, 12, 481).unsqueeze(1)
    mass = true_log_marginal(line_model, xs).exp().sum() * (24 / 480)
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_iwae_bound_rises_with_k(line_model):
    g = torch.Generator().manual_seed(2)
    x = torch.linspace(-3.5, 3.5, 64).unsqueeze(1)
    means = [line_model.log_likelihood(x, k=k, generator=g).mean() for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2], means
    assert means[2] <= true_log_marginal(line_model, x).mean().item() + 0.01


def test_log_likelihood_k1_matches_the_negative_loss():
    model = make(POINTS, hidden=(16, 16))
    train(model, point_batch(256).x, steps=50)
    x = point_batch(32, seed=3).x.repeat(500, 1)  # (16000, 2): many noise draws per point
    torch.manual_seed(4)
    negative_loss = -model.loss(Batch(x)).loss.item()  # analytic KL
    nats = model.log_likelihood(x, k=1, generator=torch.Generator().manual_seed(5)).nats
    stderr = nats.std().item() / math.sqrt(len(nats))  # Monte-Carlo KL: the noisier side
    assert stderr < 0.05  # the comparison below is a real one
    assert nats.mean().item() == pytest.approx(negative_loss, abs=4 * stderr)


def test_log_likelihood_contract_and_chunking():
    model = make(DIGITS, conditional=True).train()
    batch = image_batch(10)
    g = torch.Generator().manual_seed(0)
    ll = model.log_likelihood(batch.x, cond=batch.cond, k=8, generator=g)
    assert ll.nats.shape == (10,) and ll.nats.dtype == torch.float64
    assert ll.kind == "lower_bound"
    assert ll.details["bound"] == "iwae" and ll.details["k"] == 8
    assert model.training  # the previous mode is restored
    assert not ll.nats.requires_grad
    again = model.log_likelihood(batch.x, cond=batch.cond, k=8, generator=g.manual_seed(0))
    assert torch.equal(ll.nats, again.nats)
    # k larger than batch_size is chunked over k as well as over data points.
    chunked = model.log_likelihood(batch.x, cond=batch.cond, k=50, batch_size=7, generator=g)
    assert chunked.nats.shape == (10,) and torch.isfinite(chunked.nats).all()
    assert chunked.mean() == pytest.approx(ll.mean(), abs=1.0)
    with pytest.raises(DataError, match="label"):
        model.log_likelihood(batch.x)
    with pytest.raises(ConfigError, match="k"):
        model.log_likelihood(batch.x, cond=batch.cond, k=0)
    with pytest.raises(TypeError):
        model.log_likelihood(batch.x, cond=batch.cond, num_samples=3)
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(torch.rand(4, 64), cond={"label": torch.zeros(4, dtype=torch.long)})


# ---- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{}, {"architecture": "conv"}, {"decoder": "gaussian"}],
    ids=["mlp", "conv", "gaussian"],
)
@pytest.mark.parametrize("decode", ["mean", "sample"])
def test_image_samples_have_shape_dtype_and_range(overrides, decode):
    model = make(DIGITS, **overrides)
    x = model.sample(5, generator=torch.Generator().manual_seed(0), decode=decode)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    if decode == "sample" and model.decoder_kind == "bernoulli":
        assert set(x.unique().tolist()) <= {0.0, 1.0}


def test_fixed_generator_reproduces_and_modes_are_restored():
    model = make(POINTS, dropout=0.2).train()
    draws = [
        model.sample(7, generator=torch.Generator().manual_seed(3), decode="sample")
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])
    other = model.sample(7, generator=torch.Generator().manual_seed(4), decode="sample")
    assert not torch.equal(draws[0], other)
    assert model.training
    assert model.sample(0).shape == (0, 2)
    cold = model.sample(200, generator=torch.Generator().manual_seed(0), temperature=0.0)
    assert torch.allclose(cold, cold[:1].expand_as(cold))  # every z is 0
    x = model.reconstruct(point_batch().x)
    assert x.shape == (16, 2) and model.training


def test_conditional_sampling():
    model = make(DIGITS, conditional=True)
    labels = torch.tensor([0, 3, 9])
    x = model.sample(3, cond={"label": labels}, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8)
    with pytest.raises(DataError, match="label"):
        model.sample(3)
    with pytest.raises(DataError, match=r"class 12 is outside the trained labels 0\.\.9"):
        model.sample(2, cond={"label": torch.tensor([1, 12])})
    with pytest.raises(DataError, match="shape"):
        model.sample(2, cond={"label": labels})
    with pytest.raises(ConfigError, match="unconditional"):
        make(DIGITS).sample(3, cond={"label": labels})


def test_unknown_or_bad_sample_options_raise():
    model = make(POINTS)
    with pytest.raises(TypeError):
        model.sample(3, steps=10)
    with pytest.raises(ConfigError, match="decode"):
        model.sample(3, decode="mode")
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(3, temperature=-1.0)
    with pytest.raises(ConfigError, match="num_samples"):
        model.sample(-1)


def test_save_and_load_round_trip(tmp_path):
    model = genlab.create("vae", spec=DIGITS, **{**TINY, "architecture": "conv"})
    model.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert isinstance(loaded, VAE) and loaded.config == model.config
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    b = loaded.sample(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


# ---- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"beta": -1.0}, "beta"),
        ({"iwae_k": 0}, "iwae_k"),
        ({"iwae_k": 5, "beta": 0.5}, "beta"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"decoder_std": 0.0}, "decoder_std"),
        ({"hidden": (16, 0)}, "hidden"),
        ({"conv_channels": ()}, "conv_channels"),
        ({"architecture": "transformer"}, "architecture"),
        ({"decoder": "poisson"}, "decoder"),
    ],
)
def test_bad_configs_raise(overrides, key):
    with pytest.raises(ConfigError, match=key):
        VAEConfig(**overrides)
    with pytest.raises(ConfigError, match=key):
        build_config(VAEConfig, overrides)


@pytest.mark.parametrize(
    ("spec", "overrides", "message"),
    [
        (POINTS, {"architecture": "conv"}, "architecture: mlp"),
        (
            DataSpec("image", (1, 28, 28), value_range=(0.0, 1.0)),
            {"architecture": "conv", "conv_channels": (4, 8, 16)},
            "architecture: mlp",
        ),
        (POINTS, {"conditional": True}, "conditional"),
        (POINTS, {"decoder": "bernoulli"}, "decoder: gaussian"),
        (DataSpec("text", (16,), vocab=("a", "b")), {}, "autoregressive"),
    ],
)
def test_configs_that_do_not_fit_the_data_raise(spec, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make(spec, **overrides)


def test_registry_and_unknown_keys():
    assert "vae" in genlab.list_models()
    model = genlab.create("vae", spec=POINTS, latent_dim=2, hidden=[8])
    assert model.config.hidden == (8,)
    with pytest.raises(ConfigError, match="latent_size"):
        genlab.create("vae", spec=POINTS, latent_size=2)


def test_28x28_conv_halves_twice():
    spec = DataSpec("image", (1, 28, 28), num_classes=10, value_range=(0.0, 1.0))
    model = make(spec, architecture="conv")
    x = torch.rand(2, 1, 28, 28)
    mean, log_var = model.encode(x)
    assert mean.shape == (2, 3) and log_var.shape == (2, 3)
    assert model.decode(mean).shape == (2, 1, 28, 28)


def test_mlp_layers_and_activation():
    net = MLP(3, (8, 8), 2, activation="tanh", dropout=0.1)
    assert net(torch.zeros(4, 3)).shape == (4, 2)
    assert isinstance(net[-1], torch.nn.Linear) and isinstance(net[1], torch.nn.Tanh)
    assert len(MLP(3, (), 2)) == 1
    with pytest.raises(ConfigError, match="activation"):
        MLP(3, (8,), 2, activation="swish")


# ---- training sanity --------------------------------------------------------------------------


def test_plain_adamw_training_reduces_the_loss_on_moons():
    x, _ = make_moons(n_samples=512, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    model = make(POINTS, latent_dim=2, hidden=(64, 64))
    losses = train(model, x, steps=150, lr=2e-2)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert math.isfinite(last)
    assert last < first - 0.4, (first, last)


# ---- KL annealing and free bits ---------------------------------------------------------------


def test_kl_warmup_weight_follows_the_step_and_is_saved(tmp_path):
    model = make(POINTS, beta=2.0, kl_warmup_steps=10)
    assert model.kl_weight() == 0.0
    batch = point_batch()
    torch.manual_seed(0)
    out = model.loss(batch)
    assert out.logs["kl_weight"] == 0.0
    assert out.loss.item() == pytest.approx(out.logs["recon"], rel=1e-6)  # KL weighs nothing yet
    model.after_step(5)
    assert model.kl_weight() == pytest.approx(1.0)  # beta * 5 / 10
    torch.manual_seed(0)
    out = model.loss(batch)
    assert out.loss.item() == pytest.approx(out.logs["recon"] + 1.0 * out.logs["kl"], rel=1e-6)
    model.after_step(25)
    assert model.kl_weight() == 2.0  # capped at beta
    model.save(tmp_path / "m")
    assert genlab.load(tmp_path / "m").kl_weight() == 2.0
    # without annealing the saved state has no step counter (older saves still load)
    assert "kl_step" not in make(POINTS).state_dict()


def test_kl_warmup_through_the_training_loop():
    from genlab.data.dataset import Dataset

    data = Dataset(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), POINTS)
    model = make(POINTS, kl_warmup_steps=8)
    result = model.fit(data, genlab.TrainConfig(steps=4, batch_size=16, progress=False))
    assert int(model.kl_step) == 4 and model.kl_weight() == pytest.approx(0.5)
    assert result is model


def test_free_bits_clamps_each_group_and_stops_posterior_collapse():
    model = make(POINTS, latent_dim=4, free_bits=0.5, free_bits_group=2)
    torch.manual_seed(0)
    out = model.loss(point_batch())
    # an untrained encoder's KL per group is far below 0.5 nats: each group costs exactly 0.5
    assert out.logs["kl"] < 0.5
    assert out.logs["kl_free_bits"] == pytest.approx(2 * 0.5)
    assert out.loss.item() == pytest.approx(out.logs["recon"] + 1.0, rel=1e-6)

    x, _ = make_moons(n_samples=512, noise=0.05, random_state=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    kls = {}
    for free_bits in (0.0, 0.5):
        model = make(POINTS, latent_dim=4, hidden=(32, 32), beta=8.0, free_bits=free_bits)
        train(model, x, steps=200, lr=1e-2)
        mean, log_var = model.encode(x)
        kls[free_bits] = (0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var)).mean(0)
    # beta = 8 collapses every dimension onto the prior (measured KL ~1e-5 nats in total);
    # with 0.5 free nats per dimension the posterior keeps about that much information.
    assert kls[0.0].sum() < 0.01
    assert kls[0.5].sum() > 1.0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"kl_warmup_steps": -1}, "kl_warmup_steps"),
        ({"free_bits": -0.5}, "free_bits"),
        ({"latent_dim": 3, "free_bits_group": 2}, "free_bits_group"),
        ({"iwae_k": 4, "free_bits": 0.5}, "iwae_k"),
        ({"iwae_k": 4, "kl_warmup_steps": 10}, "iwae_k"),
    ],
)
def test_bad_annealing_and_free_bits_configs_raise(overrides, key):
    with pytest.raises(ConfigError, match=key):
        VAEConfig(**overrides)


# ---- classes never seen in training -----------------------------------------------------------


def test_sampling_a_class_never_seen_in_training_raises(tmp_path):
    model = make(DIGITS, conditional=True)
    # untrained: nothing counted, every class in range may be sampled
    model.sample(2, cond={"label": torch.tensor([4, 7])})
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.rand(12, 1, 8, 8, generator=g), {"label": torch.arange(12) % 3})
    model.loss(batch)
    assert model.trained_classes().tolist() == [0, 1, 2]
    model.sample(3, cond={"label": torch.tensor([0, 1, 2])})
    with pytest.raises(DataError, match=r"never saw classes 4, 7 in training \(it saw 0, 1, 2\)"):
        model.sample(3, cond={"label": torch.tensor([0, 4, 7])})
    # evaluation-mode losses do not count
    model.eval()
    model.loss(Batch(batch.x, {"label": torch.full((12,), 5)}))
    assert model.trained_classes().tolist() == [0, 1, 2]
    # the counts are saved; a model saved without them loads and checks nothing
    model.save(tmp_path / "m")
    with pytest.raises(DataError, match="never saw class 5"):
        genlab.load(tmp_path / "m").sample(1, cond={"label": torch.tensor([5])})
    state = {k: v for k, v in model.export_state().items() if k != "label_counts"}
    old = make(DIGITS, conditional=True)
    old.import_state(state)
    assert old.trained_classes() is None


# ---- latent interpolation and traversal -------------------------------------------------------


def test_interpolation_ends_reconstruct_the_inputs_and_slerp_keeps_norms(tmp_path):
    from genlab.families.vae import plots

    model = make(DIGITS, conditional=True)
    x = image_batch(4).x
    labels = torch.tensor([1, 2])
    for path in ("slerp", "linear"):
        rows = plots.interpolate(
            model, x[:2], x[2:], num_steps=5, path=path, cond={"label": labels}
        )
        assert rows.shape == (2, 5, 1, 8, 8)
        torch.testing.assert_close(rows[:, 0], model.reconstruct(x[:2], cond={"label": labels}))
        torch.testing.assert_close(rows[:, -1], model.reconstruct(x[2:], cond={"label": labels}))
    z_a, z_b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    z = plots.slerp(z_a, z_b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(z.norm(dim=-1), torch.tensor([[2.0, 2.5, 3.0, 3.5, 4.0]]))
    torch.testing.assert_close(z[0, 2] / z[0, 2].norm(), torch.tensor([1.0, 1.0]) / math.sqrt(2))
    out = plots.plot_interpolation(
        model, x[0], x[1], tmp_path / "interp.png", cond={"label": labels[:1]}
    )
    assert out.exists() and out.stat().st_size > 0


def test_traversal_sweeps_one_dimension_at_a_time(tmp_path):
    from genlab.families.vae import plots

    model = make(POINTS, latent_dim=3)
    x = point_batch(32).x
    rows, dims = plots.traverse(model, x, num_dims=2, span=2.0, num_steps=3)
    order, kl = plots.active_dimensions(model, x)
    assert dims == order[:2].tolist() and bool((kl[:-1] >= kl[1:]).all())
    z0, _ = model.encode(x[:1])
    for row, d in enumerate(dims):
        for col, value in enumerate((-2.0, 0.0, 2.0)):
            z = z0.clone()
            z[0, d] = value
            torch.testing.assert_close(rows[row, col], model.decode(z)[0])
    rows, dims = plots.traverse(model, dims=[2], num_steps=4)  # from z = 0
    assert rows.shape == (1, 4, 2) and dims == [2]
    assert plots.plot_traversal(model, tmp_path / "t.png", x, reference=x).exists()
    assert plots.plot_interpolation(model, x[:2], x[2:4], tmp_path / "i.png", reference=x).exists()
    with pytest.raises(ConfigError, match="dims"):
        plots.traverse(model, dims=[3])
    with pytest.raises(ConfigError, match="num_steps"):
        plots.interpolate(model, x[:1], x[1:2], num_steps=1)
