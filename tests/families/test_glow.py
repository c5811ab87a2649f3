"""Image flows (glow, and realnvp on images): exact inversion, log-determinants against
autograd, normalized densities, the dequantization bound, temperature, save/load, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
import genlab.families.flows.glow  # noqa: F401  (registers glow)
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.flows import transforms as T

BYTE_IMAGES = DataSpec("image", (1, 4, 4), name="tiny", num_classes=3, discrete_levels=256)
COLOUR = DataSpec("image", (3, 4, 4), name="tiny_rgb", num_classes=3, discrete_levels=256)

MODELS = [
    ("glow", BYTE_IMAGES, {"num_levels": 2, "steps_per_level": 2, "hidden_channels": 8}),
    (
        "glow",
        COLOUR,
        {
            "num_levels": 1,
            "steps_per_level": 2,
            "hidden_channels": 8,
            "conditional": True,
            "preprocess": "logit",
            "coupling": "additive",
        },
    ),
    ("realnvp", BYTE_IMAGES, {"num_scales": 2, "couplings_per_stage": 1, "hidden_channels": 8}),
    (
        "realnvp",
        COLOUR,
        {"num_scales": 1, "couplings_per_stage": 2, "hidden_channels": 8, "conditional": True},
    ),
    (
        "glow",
        BYTE_IMAGES,
        {"num_levels": 1, "steps_per_level": 1, "hidden_channels": 8, "marginal_spline_bins": 4},
    ),
    (
        "realnvp",
        BYTE_IMAGES,
        {
            "num_scales": 1,
            "couplings_per_stage": 1,
            "hidden_channels": 8,
            "preprocess": "shift",
            "marginal_spline_bins": 3,
        },
    ),
]
IDS = [
    "glow_L2",
    "glow_conditional_rgb",
    "realnvp_2_scales",
    "realnvp_conditional_rgb",
    "glow_marginal_spline",
    "realnvp_shift_marginal_spline",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small convolutions gain nothing from threads, and on shared cores they contend badly.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _randomized(name, spec, cfg, scale=0.3):
    torch.manual_seed(0)
    model = genlab.create(name, spec=spec, **cfg).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.eval()


def _inputs(model, n):
    g = torch.Generator().manual_seed(2)
    y = torch.rand(n, *model.spec.shape, generator=g, dtype=torch.float64)  # in (0, 1)
    ctx = model._context({"label": torch.arange(n) % 3}, n) if model.config.conditional else None
    return y, ctx


@pytest.mark.parametrize("name,spec,cfg", MODELS, ids=IDS)
def test_image_flow_inverts_exactly(name, spec, cfg):
    model = _randomized(name, spec, cfg)
    y, ctx = _inputs(model, 8)
    z, ladj = model.transform(y, ctx)
    assert z.shape == (8, spec.num_dims)
    y_back, ladj_inv = model.transform.inverse(z, ctx)
    torch.testing.assert_close(y_back, y, atol=1e-5, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,spec,cfg", MODELS, ids=IDS)
def test_image_flow_log_det_matches_autograd(name, spec, cfg):
    model = _randomized(name, spec, cfg)
    y, ctx = _inputs(model, 2)
    n = spec.num_dims
    for i in range(2):
        c = None if ctx is None else ctx[i : i + 1]
        jac = torch.autograd.functional.jacobian(
            lambda v, c=c: model.transform(v, c)[0], y[i : i + 1]
        ).reshape(n, n)
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(model.transform(y[i : i + 1], c)[1][0], expected)


def test_glow_density_integrates_to_one():
    # Continuous images (no dequantization), Glow's shift preprocessing: a density on R^4.
    # Importance sampling from a Gaussian fitted to the model's samples (widened) estimates
    # its total mass; a log-det off by a constant would move it by exp(constant).
    spec = DataSpec("image", (1, 2, 2), name="continuous")
    cfg = {"num_levels": 1, "steps_per_level": 3, "hidden_channels": 8, "preprocess": "shift"}
    model = _randomized("glow", spec, cfg, scale=0.2)
    with torch.no_grad():
        z = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        x = model.transform.inverse(z)[0].flatten(1)
    proposal = torch.distributions.MultivariateNormal(x.mean(0), 2.0 * torch.cov(x.T))
    torch.manual_seed(0)
    y = proposal.sample((200_000,))
    with torch.no_grad():
        log_p = model._log_prob(y.view(-1, 1, 2, 2), None)
    weights = (log_p - proposal.log_prob(y)).exp()
    mass, stderr = float(weights.mean()), float(weights.std() / math.sqrt(len(weights)))
    assert stderr < 0.01
    assert math.isclose(mass, 1.0, abs_tol=0.02), f"mass {mass:.4f} +- {stderr:.4f}"


def test_discrete_bound_sums_to_at_most_one_over_all_images():
    # 2-level 1 x 2 x 2 images: 16 in all. Averaged over many dequantization draws, exp(bound)
    # approaches P(k) = integral of p over k's cube, and sum_k P(k) is the density's mass on
    # [0, 1)^4: at most 1, and near 1 with a logit of small alpha (little mass outside).
    spec = DataSpec("image", (1, 2, 2), name="bits", discrete_levels=2)
    cfg = {"num_levels": 1, "steps_per_level": 2, "hidden_channels": 8}
    model = _randomized("glow", spec, {**cfg, "preprocess": "logit", "logit_alpha": 1e-3}, 0.1)
    images = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * 4).view(16, 1, 2, 2)
    draws = 1000
    ll = model.log_likelihood(images.repeat(draws, 1, 1, 1).double())
    assert ll.kind == "lower_bound" and ll.details["levels"] == 2
    p_k = ll.nats.view(draws, 16).exp().mean(0)  # (16,)
    total = float(p_k.sum())
    with torch.no_grad():
        u = torch.rand(100_000, 1, 2, 2, generator=torch.Generator().manual_seed(1))
        mass = float(model._log_prob(u.double(), None).exp().mean())
    assert total <= 1.0 + 0.03 and mass <= 1.0 + 0.03
    assert math.isclose(total, mass, rel_tol=0.03), f"sum of P(k) {total:.4f} vs mass {mass:.4f}"
    assert mass > 0.9
    # one draw per image is a lower bound: its mean is below log P(k) (Jensen)
    assert ll.nats.view(draws, 16).mean(0).le(p_k.log() + 1e-6).all()


def test_byte_images_bound_and_bits_per_dim():
    model = genlab.create("glow", spec=BYTE_IMAGES, num_levels=1, steps_per_level=1).eval()
    x = torch.randint(0, 256, (5, 1, 4, 4)).float() / 255
    ll = model.log_likelihood(x, generator=torch.Generator().manual_seed(3))
    # by hand: the same uniform noise, y = (k + u) / 256, minus D log 256
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    y = (torch.round(x * 255) + u) / 256
    with torch.no_grad():
        expected = model._log_prob(y, None) - 16 * math.log(256)
    torch.testing.assert_close(ll.nats, expected)
    assert ll.kind == "lower_bound" and ll.details["dequantization"] == "uniform"
    bpd = -float(ll.nats.double().mean()) / (16 * math.log(2))
    assert math.isclose(ll.details["bits_per_dim"], bpd, rel_tol=1e-9)
    # more draws tighten the bound (importance weighting); never loosen it on average
    many = model.log_likelihood(x, samples=64).nats.mean()
    assert many >= model.log_likelihood(x).nats.mean() - 0.05
    # the continuous density of continuous images is exact
    continuous = DataSpec("image", (1, 4, 4), name="continuous")
    assert genlab.create("glow", spec=continuous, num_levels=1).log_likelihood(x).kind == "exact"


def test_temperature_and_quantized_samples():
    model = _randomized("glow", BYTE_IMAGES, {"num_levels": 2, "steps_per_level": 2}).float()
    cold = model.sample(6, temperature=0.0)
    assert (cold == cold[:1]).all(), "temperature 0 gives the mode of the base for every sample"
    warm = model.sample(200, generator=torch.Generator().manual_seed(0), temperature=1.0)
    cool = model.sample(200, generator=torch.Generator().manual_seed(0), temperature=0.3)
    assert warm.std(0).mean() > cool.std(0).mean()
    assert torch.equal(torch.round(warm * 255), warm * 255), "samples lie on the 8-bit grid"
    assert warm.min() >= 0 and warm.max() <= 1 and warm.dtype == torch.float32


def test_conditional_glow_uses_labels_everywhere():
    data = genlab.data.load("digits")
    model = genlab.create(
        "glow", spec=data.spec, num_levels=2, steps_per_level=1, hidden_channels=8, conditional=True
    )
    batch = data.batch(torch.arange(16))
    model.loss(batch).loss.backward()
    assert model.label_embedding.weight.grad.abs().sum() > 0
    cold = model.sample(4, cond={"label": torch.tensor([0, 1, 0, 1])}, temperature=0.0)
    # after a step the class embedding moves every conditioner apart: classes differ
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
    cold = model.sample(4, cond={"label": torch.tensor([0, 1, 0, 1])}, temperature=0.0)
    assert torch.equal(cold[0], cold[2]) and not torch.equal(cold[0], cold[1])
    with pytest.raises(DataError, match="conditional"):
        model.log_likelihood(data.x[:2])
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(data.x[:2], cond={"label": torch.zeros(3, dtype=torch.long)})


def test_glow_learns_digits(tmp_path):
    train = genlab.data.load("digits")
    test = genlab.data.load("digits", split="test")
    torch.manual_seed(0)
    model = genlab.create(
        "glow", spec=train.spec, num_levels=2, steps_per_level=2, hidden_channels=16
    )
    before = model.log_likelihood(test.x).details["bits_per_dim"]
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = train.batch(torch.randint(0, len(train), (64,), generator=g))
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
    after = model.log_likelihood(test.x).details["bits_per_dim"]
    print(f"digits test bits/dim {before:.3f} -> {after:.3f}")
    # uniform levels: log2(17) = 4.09 bits/dim; a per-pixel categorical fit to train: 2.39
    assert after < 2.6 and after < before - 2.0
    # save/load keeps the trained weights and the ActNorm initialization
    model.save(tmp_path / "glow")
    loaded = genlab.load(tmp_path / "glow")
    assert all(bool(m.initialized) for m in loaded.modules() if isinstance(m, T.ActNorm))
    torch.testing.assert_close(
        loaded.log_likelihood(test.x[:20]).nats, model.log_likelihood(test.x[:20]).nats
    )
    s1 = model.sample(4, generator=torch.Generator().manual_seed(1), temperature=0.7)
    s2 = loaded.sample(4, generator=torch.Generator().manual_seed(1), temperature=0.7)
    assert torch.equal(s1, s2)


def test_bad_images_and_configs_raise():
    model = genlab.create("glow", spec=BYTE_IMAGES, num_levels=1, steps_per_level=1)
    x = torch.full((2, 1, 4, 4), 0.5)  # 127.5 / 255: off the 8-bit grid by half a level
    with pytest.raises(DataError, match="grid"):
        model.log_likelihood(x)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        model.log_likelihood(torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        model.loss(Batch(torch.full((2, 1, 4, 4), float("nan"))))
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ConfigError, match="samples"):
        model.log_likelihood(torch.zeros(2, 1, 4, 4), samples=0)
    with pytest.raises(ConfigError, match="multiples of 8"):
        genlab.create("glow", spec=BYTE_IMAGES, num_levels=3)
    with pytest.raises(ConfigError, match="multiples of 4"):
        genlab.create("realnvp", spec=DataSpec("image", (1, 6, 6), name="six"), num_scales=3)
    with pytest.raises(ConfigError, match="image"):
        genlab.create("glow", spec=DataSpec("points", (2,), name="moons"))
    for bad, match in [
        ({"steps_per_level": 0}, "steps_per_level"),
        ({"coupling": "spline"}, "coupling"),
        ({"preprocess": "none"}, "preprocess"),
        ({"logit_alpha": 0.0}, "logit_alpha"),
        ({"dequantization": "gaussian"}, "dequantization"),
        ({"activation": "swish"}, "activation"),
        ({"marginal_spline_bins": 1}, "marginal_spline_bins=1"),
        ({"marginal_spline_bins": -4}, "marginal_spline_bins=-4"),
    ]:
        with pytest.raises(ConfigError, match=match):
            genlab.create("glow", spec=BYTE_IMAGES, **bad)
    with pytest.raises(ConfigError, match="marginal_spline_bins"):
        genlab.create("realnvp", spec=BYTE_IMAGES, marginal_spline_bins=1)
    with pytest.raises(TypeError):
        model.sample(2, truncation=0.5)
