"""Tests of the GAN family: losses and penalties against hand and autograd values, the gradient
split between the two loss keys, spectral norm, the projection discriminator, sampling options,
saving the generator alone, collapse monitoring, bad input, and a short run on 8 Gaussians."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from safetensors.torch import load_file
from torch.nn.utils import parametrize

import genlab
from genlab.core.contract import Batch, DataSpec, NoLikelihoodError
from genlab.core.errors import ConfigError, DataError
from genlab.families.gan import augment, losses
from genlab.families.gan.gan import GAN, GANConfig, truncated_normal, write_interpolation
from genlab.families.gan.monitor import CollapseMonitor, ModeCollapseWarning
from genlab.metrics.modes import mode_coverage

DIGITS = DataSpec(
    modality="image", shape=(1, 8, 8), name="digits", num_classes=10, value_range=(0.0, 1.0)
)
POINTS = DataSpec(modality="points", shape=(2,), name="toy")
LABELLED_POINTS = DataSpec(modality="points", shape=(2,), name="toy", num_classes=3)
SMALL = dict(latent_dim=4, hidden=(16, 16), conv_channels=(4, 8), label_dim=4)


def make(spec: DataSpec, seed: int = 0, **overrides) -> GAN:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GAN(GANConfig(**{**SMALL, **overrides}), spec)


def image_batch(n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *DIGITS.shape), generator=g)
    return Batch(x, {"label": torch.randint(0, 10, (n,), generator=g)})


def point_batch(n: int = 16, seed: int = 0, labels: bool = False) -> Batch:
    g = torch.Generator().manual_seed(seed)
    cond = {"label": torch.arange(n) % 3} if labels else {}
    return Batch(torch.randn((n, 2), generator=g), cond)


# ---- losses and penalties -----------------------------------------------------------------------


def test_losses_match_hand_computed_values():
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([-1.0, 0.5])

    def softplus(v: float) -> float:
        return math.log1p(math.exp(v))

    ns_d = (softplus(-0.0) + softplus(-2.0)) / 2 + (softplus(-1.0) + softplus(0.5)) / 2
    assert losses.disc_non_saturating(real, fake).item() == pytest.approx(ns_d, rel=1e-6)
    # -log sigmoid(s) for the generator
    ns_g = -(math.log(1 / (1 + math.exp(1.0))) + math.log(1 / (1 + math.exp(-0.5)))) / 2
    assert losses.gen_non_saturating(fake).item() == pytest.approx(ns_g, rel=1e-6)
    # hinge: relu(1 - 0) + relu(1 - 2) = 1 + 0; relu(1 - 1) + relu(1 + 0.5) = 0 + 1.5
    assert losses.disc_hinge(real, fake).item() == pytest.approx(0.5 + 0.75)
    assert losses.gen_hinge(fake).item() == pytest.approx(0.25)
    # Wasserstein: mean(fake) - mean(real) = -0.25 - 1
    assert losses.disc_wasserstein(real, fake).item() == pytest.approx(-1.25)
    assert losses.gen_wasserstein(fake).item() == pytest.approx(0.25)
    assert set(losses.LOSSES) == {"non_saturating", "hinge", "wasserstein"}


def test_gradient_penalty_equals_the_autograd_formula():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def critic(x):
        return net(x).squeeze(-1)

    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    alpha = torch.rand(5)
    gp = losses.gradient_penalty(critic, real, fake, alpha=alpha)
    expected = []
    for i in range(5):
        x_hat = alpha[i] * real[i] + (1 - alpha[i]) * fake[i]
        grad = torch.autograd.functional.jacobian(lambda v: critic(v[None])[0], x_hat)
        expected.append((grad.norm() - 1) ** 2)
    torch.testing.assert_close(gp, torch.stack(expected).mean())
    # A linear critic w.x has gradient w everywhere: the penalty is (|w| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0, 0.0])
    assert losses.gradient_penalty(lambda x: x @ w, real, fake).item() == pytest.approx(16.0)
    # It trains the critic: a gradient reaches the critic's weights (create_graph=True).
    gp.backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_r1_penalty_of_a_quadratic_critic():
    x = torch.randn(6, 2)
    # D(x) = |x|^2 has gradient 2x, so R1 = mean |2x|^2 = 4 mean |x|^2.
    r1 = losses.r1_penalty(lambda v: v.pow(2).sum(-1), x)
    assert r1.item() == pytest.approx(4 * x.pow(2).sum(-1).mean().item(), rel=1e-6)


# ---- the two loss keys ---------------------------------------------------------------------------

SPLIT_CASES = {
    "mlp-ns": (POINTS, {}),
    "mlp-wgan-gp": (POINTS, {"loss": "wasserstein", "gradient_penalty": 10.0}),
    "mlp-hinge-sn-r1": (POINTS, {"loss": "hinge", "spectral_norm": True, "r1_gamma": 1.0}),
    "mlp-conditional": (LABELLED_POINTS, {"conditional": True, "disc_norm": "layer"}),
    "conv-dcgan-bn": (DIGITS, {"disc_norm": "batch"}),
    "mlp-packed": (POINTS, {"pack": 2, "loss": "wasserstein", "gradient_penalty": 1.0}),
    "conv-packed": (DIGITS, {"pack": 4}),
    "conv-sn-projection-diffaug": (
        DIGITS,
        {
            "conditional": True,
            "spectral_norm": True,
            "loss": "hinge",
            "diffaugment": "color,cutout",
        },
    ),
}


@pytest.mark.parametrize("case", list(SPLIT_CASES), ids=list(SPLIT_CASES))
def test_each_key_trains_its_own_network_only(case):
    spec, overrides = SPLIT_CASES[case]
    model = make(spec, **overrides)
    batch = (
        image_batch() if spec.modality == "image" else point_batch(labels=bool(spec.num_classes))
    )
    groups = model.param_groups()
    assert list(groups) == ["disc", "gen"]
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("discriminator.") for p in groups["disc"])
    assert all(names[id(p)].startswith("generator.") for p in groups["gen"])
    for key, params in groups.items():
        model.zero_grad(set_to_none=True)
        out = model.loss(batch, key=key)
        out.loss.backward()
        mine = {id(p) for p in params}
        for name, p in model.named_parameters():
            if id(p) in mine:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"{key}: {name}"
            else:
                assert p.grad is None, f"{key} leaks a gradient to {name}"
        # The generator's loss froze D only while it ran.
        assert all(p.requires_grad for p in model.parameters())


def test_frozen_restores_flags_after_an_error():
    model = make(POINTS)
    with pytest.raises(RuntimeError), genlab.families.gan.gan.frozen(model.discriminator):
        assert not any(p.requires_grad for p in model.discriminator.parameters())
        raise RuntimeError("boom")
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_loss_logs_and_errors():
    model = make(POINTS, loss="wasserstein", gradient_penalty=10.0)
    logs = model.loss(point_batch(), key="disc").logs
    assert set(logs) == {"real_score", "fake_score", "gp", "loss"}
    assert logs["loss"] == pytest.approx(logs["fake_score"] - logs["real_score"] + 10 * logs["gp"])
    with pytest.raises(ConfigError, match="'disc' and 'gen'"):
        model.loss(point_batch(), key="main")
    conditional = make(LABELLED_POINTS, conditional=True)
    with pytest.raises(DataError, match="conditional"):
        conditional.loss(point_batch(), key="gen")


def test_packing_feeds_pack_samples_to_each_discriminator_call():
    model = make(POINTS, pack=3)
    assert model.discriminator.features[1].in_features == 6
    x = torch.arange(14.0).view(7, 2)
    packed = model._pack(x)  # 7 rows -> 2 packs of 3 (the odd row is dropped)
    torch.testing.assert_close(packed, torch.arange(12.0).view(2, 6))
    assert model.loss(point_batch(7), key="disc").loss.ndim == 0
    with pytest.raises(DataError, match="batches of at least 3"):
        model.loss(point_batch(2), key="gen")
    with pytest.raises(ConfigError, match="pack"):
        GANConfig(pack=2, conditional=True)
    images = make(DIGITS, pack=2)
    assert images.discriminator.features[0].in_channels == 2


def test_points_are_standardized_inside_and_sampled_in_data_units():
    model = make(POINTS, input_scale=3.0)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([50.0, 0.1])
    x = x + torch.tensor([1000.0, -5.0])
    model.loss(Batch(x), key="disc")
    torch.testing.assert_close(model.data_mean, x.mean(0))
    torch.testing.assert_close(model.data_std, x.std(0))
    inside = model._to_model(x)
    torch.testing.assert_close(inside.std(0), torch.full((2,), 3.0))
    torch.testing.assert_close(model._to_data(inside), x)
    # Fixed after the first batch; samples come back in the data's units.
    model.loss(Batch(x * 2), key="disc")
    torch.testing.assert_close(model.data_mean, x.mean(0))
    samples = model.sample(500, generator=torch.Generator().manual_seed(0))
    assert 900 < samples[:, 0].mean() < 1100 and abs(samples[:, 1].mean() + 5) < 1
    # The standardization travels with saved states, and a state without it (the loop's EMA
    # weights) leaves it alone.
    state = model.export_state()
    assert {"data_mean", "data_std", "data_stats_set"} <= set(state)
    fresh = make(POINTS, input_scale=3.0)
    fresh.import_state(state)
    torch.testing.assert_close(fresh.data_std, model.data_std)
    fresh.import_state(make(POINTS, input_scale=3.0).state_dict())
    torch.testing.assert_close(fresh.data_std, model.data_std)


# ---- architecture ------------------------------------------------------------------------------


def test_spectral_norm_is_applied_to_every_discriminator_weight():
    model = make(DIGITS, spectral_norm=True, conditional=True, loss="hinge")
    layers = [
        m
        for m in model.discriminator.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Embedding))
    ]
    assert len(layers) == 4  # two convs, the head, the projection embedding
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in model.generator.modules())
    # Power iterations run in training forwards; the largest singular value converges to 1.
    x, y = image_batch(8).x, torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        for _ in range(60):
            model.discriminator(x, y)
    for m in layers:
        w = m.weight.detach().flatten(1)  # conv kernels as (out, in * k * k), as SN reshapes them
        assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=2e-2)
        # Exactly W / sigma with sigma = u^T W v from the layer's own power-iteration vectors.
        sn = m.parametrizations.weight[0]
        original = m.parametrizations.weight.original.detach().flatten(1)
        sigma = sn._u @ original @ sn._v
        torch.testing.assert_close(w, original / sigma)
    plain = make(DIGITS)
    conv = plain.discriminator.features[0]
    assert not parametrize.is_parametrized(conv)
    # Without SN the default init is not normalized.
    assert abs(torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item() - 1) > 0.05


def test_projection_discriminator_adds_the_class_embedding_dot_features():
    model = make(LABELLED_POINTS, conditional=True)
    d = model.discriminator
    x = torch.randn(6, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    phi = d.features(x)
    expected = d.head(phi).squeeze(-1) + (d.projection.weight[y] * phi).sum(-1)
    torch.testing.assert_close(d(x, y), expected)
    # The class changes the score, through the projection only.
    assert not torch.allclose(d(x, torch.zeros(6, dtype=torch.long)), d(x, torch.ones(6).long()))
    # Only the embedding rows of the classes in the batch get a gradient.
    d.zero_grad()
    d(x, torch.tensor([0, 0, 2, 2, 0, 2])).sum().backward()
    assert d.projection.weight.grad[1].abs().sum() == 0
    assert d.projection.weight.grad[0].abs().sum() > 0


def test_conditional_generator_depends_on_the_label():
    model = make(LABELLED_POINTS, conditional=True)
    g = torch.Generator
    a = model.sample(5, generator=g().manual_seed(0), cond={"label": torch.zeros(5).long()})
    b = model.sample(5, generator=g().manual_seed(0), cond={"label": torch.ones(5).long()})
    assert not torch.allclose(a, b)
    with pytest.raises(DataError, match="outside the trained labels"):
        model.sample(2, cond={"label": torch.tensor([0, 3])})
    with pytest.raises(ConfigError, match="unconditional"):
        make(POINTS).sample(2, cond={"label": torch.tensor([0, 1])})


def test_28x28_conv_generator_doubles_twice_and_maps_to_unit_range():
    spec = DataSpec(modality="image", shape=(1, 28, 28), name="mnist5k", num_classes=10)
    model = make(spec, conv_channels=(8, 16))
    x = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    linear = model.generator.net[0]
    assert linear.out_features == 16 * 7 * 7  # (16, 7, 7) grid before two doublings


# ---- sampling options ----------------------------------------------------------------------------


def test_truncation_bounds_latents_and_shrinks_spread():
    g = torch.Generator().manual_seed(0)
    z = truncated_normal((20000, 3), 0.5, g, torch.device("cpu"))
    assert z.abs().max() <= 0.5
    # A normal truncated to [-t, t] has variance 1 - 2 t phi(t) / (2 Phi(t) - 1).
    t = 0.5
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(t / math.sqrt(2)))
    var = 1 - 2 * t * phi / (2 * big_phi - 1)
    assert z.var().item() == pytest.approx(var, rel=0.03)
    model = make(POINTS)
    a = model.sample(50, generator=torch.Generator().manual_seed(1), truncation=0.5)
    b = model.sample(50, generator=torch.Generator().manual_seed(1), truncation=0.5)
    assert torch.equal(a, b)
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(ConfigError, match="truncation"):
            model.sample(2, truncation=bad)
    with pytest.raises(TypeError):
        model.sample(2, temperature=1.0)


def test_no_likelihood_raises_a_clear_error():
    with pytest.raises(NoLikelihoodError, match="no likelihood.*fid"):
        make(POINTS).log_likelihood(torch.zeros(3, 2))


def test_interpolation_paths_start_at_samples_and_plots_are_written(tmp_path):
    model = make(POINTS)
    paths = model.interpolate(3, 5, generator=torch.Generator().manual_seed(2))
    assert paths.shape == (3, 5, 2)
    start = model.sample(3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(paths[:, 0], start)
    linear = model.interpolate(3, 5, generator=torch.Generator().manual_seed(2), spherical=False)
    torch.testing.assert_close(linear[:, 0], paths[:, 0])
    torch.testing.assert_close(linear[:, -1], paths[:, -1])
    assert write_interpolation(model, tmp_path / "points.png", num_paths=2).stat().st_size > 0
    images = make(DIGITS, conditional=True)
    cond = {"label": torch.arange(4)}
    out = write_interpolation(images, tmp_path / "digits.png", num_paths=4, num_steps=6, cond=cond)
    from PIL import Image

    assert Image.open(out).size[0] > Image.open(out).size[1]  # 6 columns, 4 rows


# ---- saving ----------------------------------------------------------------------------------------


def test_generator_alone_saves_and_loads_without_data(tmp_path):
    model = make(DIGITS, conditional=True)
    for p in model.generator.parameters():  # move away from the initial weights
        p.data.add_(0.1)
    model.save_generator(tmp_path / "g")
    weights = load_file(str(tmp_path / "g" / "weights.safetensors"))
    assert weights and all(k.startswith("generator.") for k in weights)
    assert json.loads((tmp_path / "g" / "model.json").read_text())["weights"] == "generator_only"
    loaded = genlab.load(tmp_path / "g")  # no data set is loaded: the spec is in model.json
    cond = {"label": torch.arange(6) % 10}
    g = torch.Generator
    a = model.sample(6, generator=g().manual_seed(0), cond=cond, truncation=1.5)
    b = loaded.sample(6, generator=g().manual_seed(0), cond=cond, truncation=1.5)
    assert torch.equal(a, b)
    # The full folder round-trips D as well.
    model.save(tmp_path / "full")
    full = genlab.load(tmp_path / "full")
    x = image_batch(4)
    torch.testing.assert_close(
        full.discriminator(x.x, x.cond["label"]), model.discriminator(x.x, x.cond["label"])
    )


# ---- collapse monitoring ---------------------------------------------------------------------------


def test_monitor_scores_modes_and_warns_when_coverage_drops():
    data = genlab.data.load("8gaussians", num_samples=400)
    monitor = CollapseMonitor(data.spec, every=10, num_samples=400, drop=0.75)
    monitor.remember(data.x)
    modes, std = data.info["modes"], data.info["std"]

    def good(n, generator):
        pick = torch.randint(0, 8, (n,), generator=generator)
        return (
            modes[pick] + std * torch.randn(n, 2, generator=generator, dtype=modes.dtype)
        ).float()

    def collapsed(n, generator):
        return (modes[0] + std * torch.randn(n, 2, generator=generator, dtype=modes.dtype)).float()

    assert monitor.due(20) and not monitor.due(25)
    first = monitor.check(10, good)
    assert first["modes_captured"] == 8 and first["coverage"] > 0.8
    with pytest.warns(ModeCollapseWarning, match="fell to"):
        second = monitor.check(20, collapsed)
    assert second["modes_captured"] == 1 and second["coverage"] < 0.2
    assert [h["step"] for h in monitor.history] == [10.0, 20.0]


def test_monitor_figures_reach_the_training_logs(tmp_path):
    data = genlab.data.load("8gaussians", num_samples=256)
    model = make(data.spec, monitor_every=2, monitor_samples=64)
    cfg = genlab.TrainConfig(
        steps=4, batch_size=32, progress=False, log_every=1, checkpoint_every=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModeCollapseWarning)
        model.fit(data, cfg, run_dir=tmp_path / "run")
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert "gen/coverage" in rows[-1] and "gen/modes_captured" in rows[-1]
    assert len(model.monitor.history) == 2


# ---- augmentation ----------------------------------------------------------------------------------


def test_diffaugment_is_differentiable_and_keeps_shapes():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    for name in ("color", "translation", "cutout"):
        out = augment.diff_augment(x, (name,))
        assert out.shape == x.shape
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None
    # Cutout zeroes a square of half the side (16 of 64 pixels when it lies inside the image).
    ones = torch.ones(200, 1, 8, 8)
    zeros = (augment.cutout(ones) == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4
    # Translation moves content without scaling it: every output pixel is an input pixel or 0.
    ramp = torch.arange(64.0).view(1, 1, 8, 8).repeat(10, 1, 1, 1) + 1
    moved = augment.translation(ramp)
    assert set(moved.unique().tolist()) <= set(range(65))
    with pytest.raises(ConfigError, match="unknown transform"):
        augment.parse_policy("color,flip")


# ---- bad input -------------------------------------------------------------------------------------


def test_discriminator_step_ratio_must_be_positive():
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="steps_per_key.disc"):
            genlab.TrainConfig(steps_per_key={"disc": bad})


def test_gradient_penalty_on_a_non_wasserstein_loss_warns():
    with pytest.warns(UserWarning, match="gradient penalty keeps a Wasserstein critic"):
        GANConfig(loss="hinge", gradient_penalty=10.0)
    with pytest.warns(UserWarning, match="unconstrained"):
        GANConfig(loss="wasserstein")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GANConfig(loss="wasserstein", gradient_penalty=10.0)  # the WGAN-GP preset: no warning


def test_image_sizes_the_conv_generator_cannot_produce_raise():
    spec = DataSpec(modality="image", shape=(1, 30, 30), name="odd")
    with pytest.raises(ConfigError, match=r"multiples of 4, e\.g\. 28x28, 32x32.*1 entry"):
        GAN(GANConfig(conv_channels=(8, 16)), spec)
    odd = DataSpec(modality="image", shape=(1, 7, 7), name="tiny")
    with pytest.raises(ConfigError, match="architecture: mlp"):
        GAN(GANConfig(conv_channels=(8,)), odd)
    GAN(GANConfig(conv_channels=(8,), architecture="mlp", hidden=(8,)), odd)  # mlp takes any size


@pytest.mark.parametrize(
    ("spec", "overrides", "message"),
    [
        (DataSpec(modality="text", shape=(8,), name="t"), {}, "autoregressive"),
        (POINTS, {"conditional": True}, "labelled data"),
        (POINTS, {"diffaugment": "color"}, "augments images"),
        (POINTS, {"architecture": "conv"}, "needs images"),
    ],
)
def test_configs_that_do_not_fit_the_data_raise(spec, overrides, message):
    with pytest.raises(ConfigError, match=message):
        GAN(GANConfig(**overrides), spec)


@pytest.mark.parametrize(
    "overrides",
    [
        {"latent_dim": 0},
        {"hidden": ()},
        {"loss": "lsgan"},
        {"gradient_penalty": -1.0},
        {"collapse_drop": 0.0},
        {"monitor_samples": 3},
        {"diffaugment": "zoom"},
    ],
)
def test_bad_configs_raise(overrides):
    with pytest.raises(ConfigError):
        GANConfig(**overrides)


def test_presets():
    data = genlab.data.load("digits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wgan = genlab.create("wgan_gp", spec=data.spec, conv_channels=(4, 8))
        sngan = genlab.create("sngan", spec=data.spec, conv_channels=(4, 8))
        dcgan = genlab.create("dcgan", spec=data.spec, conv_channels=(4, 8))
    assert wgan.config.loss == "wasserstein" and wgan.config.gradient_penalty == 10.0
    assert sngan.config.loss == "hinge" and sngan.config.spectral_norm
    assert dcgan.config.disc_norm == "batch" and dcgan.architecture == "conv"


# ---- training --------------------------------------------------------------------------------------


def test_short_run_on_8_gaussians_improves_mode_coverage():
    """200 WGAN-GP steps pull a spread-out generator onto the ring: the MMD to held-out data
    falls several-fold and more modes hold samples (a loose reading: within 10 sigma, 5 samples).
    """
    from genlab.metrics.distances import mmd_rbf

    data = genlab.data.load("8gaussians", num_samples=2048)
    real = genlab.data.load("8gaussians", split="test", num_samples=2500).x.double()
    torch.manual_seed(0)
    model = genlab.create("wgan_gp", spec=data.spec, **SHORT_RUN_MODEL)
    modes, std = data.info["modes"], data.info["std"]

    def score() -> tuple[float, int]:
        x = model.sample(2500, generator=torch.Generator().manual_seed(1)).double()
        cover = mode_coverage(x, modes, std, threshold=10.0, min_count=5)
        return mmd_rbf(real, x), cover["modes_captured"]

    mmd_before, modes_before = score()
    model.fit(data, genlab.TrainConfig(**SHORT_RUN_TRAIN))
    mmd_after, modes_after = score()
    assert mmd_after < 0.3 * mmd_before, (mmd_before, mmd_after)
    assert modes_after >= 6 and modes_after > modes_before, (modes_before, modes_after)


SHORT_RUN_MODEL = dict(latent_dim=8, hidden=(64, 64), gradient_penalty=0.1)
SHORT_RUN_TRAIN = dict(
    steps=200,
    batch_size=128,
    lr=1e-3,
    betas=(0.5, 0.9),
    steps_per_key={"disc": 5},
    grad_clip=0.0,
    ema_decay=0.9,
    progress=False,
    checkpoint_every=0,
)


# ---- distributed -----------------------------------------------------------------------------------

DDP_WORKER = textwrap.dedent(
    """
    import sys, torch, genlab
    from genlab.train.distributed import init_from_env
    from genlab.train.loop import fit
    from safetensors.torch import save_file

    info = init_from_env()
    data = genlab.data.load("moons", num_samples=256)
    torch.manual_seed(0)
    model = genlab.create("wgan_gp", spec=data.spec, latent_dim=4, hidden=(16, 16))
    cfg = genlab.TrainConfig(steps=3, batch_size=16, progress=False, checkpoint_every=0,
                             steps_per_key={"disc": 2}, ema_decay=0.0)
    fit(model, data, cfg)
    save_file(model.export_state(), f"{sys.argv[1]}.{info.rank}.safetensors")
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_ddp_keeps_both_networks_in_step(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*cmd, str(worker), str(tmp_path / "w")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(tmp_path / "w.0.safetensors"))
    b = load_file(str(tmp_path / "w.1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:  # gradients were averaged over both ranks, so the replicas stayed equal
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
