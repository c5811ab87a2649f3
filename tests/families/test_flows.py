"""Flow maths and the flow models: every transform inverts and its log-det matches autograd."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
import genlab.families.flows.flows  # noqa: F401  (registers the flows)
from genlab.core.contract import Batch, DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.families.flows import transforms as T
from genlab.families.flows.from_zuko import load_zuko_weights
from tests.contract import test_contract as contract

D = 5
CONTEXT = 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Small convolutions gain nothing from threads, and on shared cores they contend badly.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gaussian(n: int, dim: int = D) -> torch.Tensor:
    return 2.0 * torch.randn(
        n, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )


def _unit(n: int, dim: int = D) -> torch.Tensor:
    return torch.rand(n, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _image(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64)  # D = 4


def _channels(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 1, 2, generator=g, dtype=torch.float64)  # D = 6


def _pictures(n: int, channels: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, channels, 2, 4, generator=g, dtype=torch.float64)  # D = 8 C


def _unit_pictures(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 2, 2, 2, generator=g, dtype=torch.float64)


SPATIAL = (3, 2, 4)  # a feature-map context (E, H, W) for the (B, C, 2, 4) pictures


def _split_inner() -> T.Transform:
    # the kept 2 of 4 channels: one checkerboard coupling, then flat
    return T.Compose(
        T.ImageCoupling(2, T.Affine(), 4, mask="checkerboard", context_shape=(CONTEXT,)),
        T.Flatten((2, 2, 4)),
    )


# (id, factory, input sampler, context shape): one contract over every transform (zuko-style)
FACTORIES = [
    ("affine_coupling", lambda: T.affine_coupling(D, (16,)), _gaussian, ()),
    (
        "affine_coupling_alt",
        lambda: T.affine_coupling(D, (16,), mask="alternate", parity=True),
        _gaussian,
        (),
    ),
    (
        "affine_coupling_ctx",
        lambda: T.affine_coupling(D, (16,), context_dim=CONTEXT),
        _gaussian,
        (CONTEXT,),
    ),
    ("spline_coupling", lambda: T.spline_coupling(D, (16,), bins=4, tail_bound=3.0), _gaussian, ()),
    (
        "spline_coupling_ctx",
        lambda: T.spline_coupling(D, (16,), context_dim=CONTEXT),
        _gaussian,
        (CONTEXT,),
    ),
    ("maf", lambda: T.masked_affine_autoregressive(D, (16, 16)), _gaussian, ()),
    (
        "maf_ctx",
        lambda: T.masked_affine_autoregressive(D, (16,), context_dim=CONTEXT),
        _gaussian,
        (CONTEXT,),
    ),
    ("iaf", lambda: T.Inverse(T.masked_affine_autoregressive(D, (16,))), _gaussian, ()),
    (
        "spline_ar",
        lambda: T.masked_spline_autoregressive(D, (16,), bins=5, tail_bound=3.0),
        _gaussian,
        (),
    ),
    (
        "spline_ar_ctx",
        lambda: T.masked_spline_autoregressive(D, (16,), context_dim=CONTEXT),
        _gaussian,
        (CONTEXT,),
    ),
    ("actnorm", lambda: T.ActNorm(D), _gaussian, ()),
    ("actnorm_image", lambda: T.ActNorm(2), _pictures, ()),
    ("permutation", lambda: T.Permutation(D, seed=3), _gaussian, ()),
    ("reverse", lambda: T.Permutation(D, reverse=True), _gaussian, ()),
    ("logit", lambda: T.Logit(alpha=0.05), _unit, ()),
    ("logit_image", lambda: T.Logit(alpha=0.05), _unit_pictures, ()),
    ("shift", lambda: T.Shift(-0.5), _pictures, ()),
    ("flatten", lambda: T.Flatten((2, 2, 4)), _pictures, ()),
    ("conv1x1", lambda: T.InvertibleConv1x1(3, seed=2), _channels, ()),
    ("conv1x1_vector", lambda: T.InvertibleConv1x1(D), _gaussian, ()),
    ("squeeze", lambda: T.Squeeze(), _image, ()),
    (
        "checkerboard_affine",
        lambda: T.ImageCoupling(2, T.Affine(), 4, mask="checkerboard"),
        _pictures,
        (),
    ),
    (
        "checkerboard_affine_odd",
        lambda: T.ImageCoupling(3, T.Affine(), 4, mask="checkerboard", parity=True),
        lambda n: _pictures(n, 3),
        (),
    ),
    (
        "checkerboard_spline_ctx",
        lambda: T.ImageCoupling(
            2, T.RationalQuadratic(4, 3.0), 4, mask="checkerboard", context_shape=(CONTEXT,)
        ),
        _pictures,
        (CONTEXT,),
    ),
    (
        "channel_affine_ctx",
        lambda: T.ImageCoupling(
            4, T.Affine(), 4, mask="channel", parity=True, context_shape=(CONTEXT,)
        ),
        lambda n: _pictures(n, 4),
        (CONTEXT,),
    ),
    (
        "channel_additive",
        lambda: T.ImageCoupling(4, T.Additive(), 4, mask="channel"),
        lambda n: _pictures(n, 4),
        (),
    ),
    (
        "checkerboard_spatial_ctx",
        lambda: T.ImageCoupling(2, T.Affine(), 4, mask="checkerboard", context_shape=SPATIAL),
        _pictures,
        SPATIAL,
    ),
    (
        "split",
        lambda: T.Split((4, 2, 4), _split_inner(), context_dim=CONTEXT),
        lambda n: _pictures(n, 4),
        (CONTEXT,),
    ),
    ("context_affine", lambda: T.ContextAffine(D, CONTEXT), _gaussian, (CONTEXT,)),
    ("elementwise_spline", lambda: T.ElementwiseSpline((D,), bins=4, bound=3.0), _gaussian, ()),
    (
        "elementwise_spline_image",
        lambda: T.ElementwiseSpline((2, 2, 4), bins=5, bound=2.0),
        _pictures,
        (),
    ),
    (
        "compose",
        lambda: T.Compose(
            T.ActNorm(D),
            T.affine_coupling(D, (16,), context_dim=CONTEXT),
            T.Permutation(D, seed=1),
            T.spline_coupling(D, (16,), parity=True, context_dim=CONTEXT),
        ),
        _gaussian,
        (CONTEXT,),
    ),
    (
        "glow_step",
        lambda: T.Compose(
            T.Squeeze(),
            T.ActNorm(8),
            T.InvertibleConv1x1(8, seed=3),
            T.ImageCoupling(8, T.Affine(), 4, mask="channel"),
        ),
        _pictures,
        (),
    ),
]


def _randomize(t: torch.nn.Module) -> None:
    # Trained weights are far from the near-identity start: test the maths there too.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _build(factory, sampler, context_shape):
    torch.manual_seed(0)
    t = factory().double()
    x = sampler(64)
    ctx = torch.randn(64, *context_shape, dtype=torch.float64) if context_shape else None
    t.train()
    t(x, ctx)  # data-dependent initialization (ActNorm)
    _randomize(t)
    t.eval()
    return t, x, ctx


@pytest.mark.parametrize(
    "factory,sampler,context_shape", [f[1:] for f in FACTORIES], ids=[f[0] for f in FACTORIES]
)
def test_inverse_round_trip(factory, sampler, context_shape):
    t, x, ctx = _build(factory, sampler, context_shape)
    z, ladj = t(x, ctx)
    x_back, ladj_inv = t.inverse(z, ctx)
    assert z.numel() == x.numel() and ladj.shape == (x.shape[0],)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "factory,sampler,context_shape", [f[1:] for f in FACTORIES], ids=[f[0] for f in FACTORIES]
)
def test_log_det_matches_autograd(factory, sampler, context_shape):
    t, x, ctx = _build(factory, sampler, context_shape)
    for i in range(3):
        xi = x[i : i + 1]
        ci = None if ctx is None else ctx[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ci=ci: t(v, ci)[0], xi)
        n = xi.numel()
        expected = torch.linalg.slogdet(jac.reshape(n, n))[1]
        torch.testing.assert_close(t(xi, ci)[1][0], expected, atol=1e-6, rtol=1e-6)
        z = t(xi, ci)[0]
        jac_inv = torch.autograd.functional.jacobian(lambda v, ci=ci: t.inverse(v, ci)[0], z)
        expected_inv = torch.linalg.slogdet(jac_inv.reshape(n, n))[1]
        torch.testing.assert_close(t.inverse(z, ci)[1][0], expected_inv, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "factory,sampler,context_shape",
    [f[1:] for f in FACTORIES if f[3]],
    ids=[f[0] for f in FACTORIES if f[3]],
)
def test_wrong_context_raises(factory, sampler, context_shape):
    t, x, ctx = _build(factory, sampler, context_shape)
    z, _ = t(x, ctx)
    wider = (context_shape[0] + 1, *context_shape[1:])
    for bad in (
        None,
        torch.zeros(64, *wider, dtype=torch.float64),
        torch.zeros(3, *context_shape, dtype=torch.float64),
        torch.zeros(64, 1, *context_shape, dtype=torch.float64),
    ):
        with pytest.raises(DataError, match="context"):
            t(x, bad)
        with pytest.raises(DataError, match="context"):
            t.inverse(z, bad)


@pytest.mark.parametrize("dim", [2, 3, 7])
@pytest.mark.parametrize("mask", ["half", "alternate"])
def test_coupling_masks_cover_every_feature_for_odd_dims(dim, mask):
    a = T.coupling_mask(dim, mask)
    b = T.coupling_mask(dim, mask, parity=True)
    assert (a ^ b).all() and a.any() and b.any()
    t = T.Compose(
        T.affine_coupling(dim, (8,), mask=mask),
        T.affine_coupling(dim, (8,), mask=mask, parity=True),
    )
    _randomize(t)
    x = torch.randn(4, dim)
    z, _ = t(x)
    assert (z != x).all(), "two couplings of opposite parity must change every feature"
    torch.testing.assert_close(t.inverse(z)[0], x, atol=1e-5, rtol=0)


def test_coupling_rejects_one_feature_and_bad_mask():
    with pytest.raises(ConfigError, match="2 or more"):
        T.affine_coupling(1)
    with pytest.raises(ConfigError, match="mask"):
        T.affine_coupling(4, mask="checkerboard")


def test_logit_rejects_values_outside_unit_interval():
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        T.Logit()(torch.tensor([[0.5, 1.5]]))
    with pytest.raises(DataError):
        T.Logit()(torch.tensor([[float("nan"), 0.5]]))
    with pytest.raises(ConfigError):
        T.Logit(alpha=0.7)


def test_spline_is_identity_at_zero_params_and_outside_the_bound():
    spline = T.RationalQuadratic(bins=6, bound=2.0)
    x = torch.linspace(-4, 4, 33, dtype=torch.float64).view(-1, 1)
    zeros = torch.zeros(33, 1, spline.num_params, dtype=torch.float64)
    y, ladj = spline(x, zeros, inverse=False)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ladj, torch.zeros_like(ladj))
    params = torch.randn(33, 1, spline.num_params, dtype=torch.float64)
    y, ladj = spline(x, params, inverse=False)
    outside = x.abs() > 2.0
    assert torch.equal(y[outside], x[outside]) and (ladj[outside] == 0).all()
    assert (y[~outside].abs() <= 2.0 + 1e-12).all()


def test_elementwise_spline_starts_as_identity_and_checks_shapes():
    t = T.ElementwiseSpline((2, 2, 4), bins=8, bound=3.0)
    x = _pictures(5).float()
    y, ladj = t(x)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros(5), atol=1e-4, rtol=0)
    assert t.params.shape == (2, 2, 4, 23)  # one spline per position: 3 K - 1 parameters
    with pytest.raises(DataError, match=r"shape \(B, \(2, 2, 4\)\)"):
        t(torch.zeros(5, 2, 4, 2))


def test_spline_parameters_shared_by_the_batch_match_expanded_ones():
    # ElementwiseSpline passes one (1, D, P) set for the whole batch; it must compute what
    # the same parameters repeated per row (B, D, P), the coupling layers' form, compute
    spline = T.RationalQuadratic(5, 2.0)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(1, 3, spline.num_params, generator=g, dtype=torch.float64)
    x = 1.5 * torch.randn(7, 3, generator=g, dtype=torch.float64)
    for inverse in (False, True):
        shared = spline(x, params, inverse)
        expanded = spline(x, params.expand(7, -1, -1).contiguous(), inverse)
        for a, b in zip(shared, expanded):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_elementwise_spline_shapes_a_uniform_marginal():
    # the case it exists for: one pixel's uniform dequantization noise, which the nearest
    # Gaussian fits 0.18 nats worse than its own density; the spline removes most of that gap
    # (about 0.05 nats are left here: a uniform's hard edges need infinite slopes)
    torch.manual_seed(0)
    x = 0.05 * torch.rand(4096, 1)
    flow = T.Compose(T.Shift(-0.025), T.ActNorm(1), T.ElementwiseSpline((1,), bins=8, bound=3.0))
    opt = torch.optim.Adam(flow.parameters(), lr=0.05)
    for _ in range(600):
        z, ladj = flow(x)
        nll = -(torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1) + ladj).mean()
        opt.zero_grad()
        nll.backward()
        opt.step()
    best = -math.log(20.0)  # the uniform's own entropy: -log(1 / 0.05)
    gap = 0.5 * math.log(2 * math.pi * math.e / 12)  # the nearest Gaussian's excess
    assert float(nll.detach()) < best + gap / 2


def test_image_coupling_masks_pass_the_right_values_through():
    x = torch.randn(2, 4, 4, 6)
    for parity in (False, True):
        t = T.ImageCoupling(4, T.Affine(), 8, mask="checkerboard", parity=parity)
        _randomize(t)
        y, _ = t(x)
        keep = T.checkerboard_mask(4, 6, parity).expand_as(x)
        assert keep[0, 0, 0, 0].item() is (not parity) and keep.float().mean() == 0.5
        assert torch.equal(y[keep], x[keep]) and (y[~keep] != x[~keep]).all()
        t = T.ImageCoupling(4, T.Affine(), 8, mask="channel", parity=parity)
        _randomize(t)
        y, _ = t(x)
        same, changed = (slice(2, 4), slice(0, 2)) if parity else (slice(0, 2), slice(2, 4))
        assert torch.equal(y[:, same], x[:, same]) and (y[:, changed] != x[:, changed]).all()


def test_image_transforms_reject_bad_shapes_and_odd_channel_masks():
    with pytest.raises(ConfigError, match="3 channels"):
        T.ImageCoupling(3, T.Affine(), 8, mask="channel")
    with pytest.raises(ConfigError, match="mask"):
        T.ImageCoupling(4, T.Affine(), 8, mask="half")
    t = T.ImageCoupling(4, T.Affine(), 8)
    with pytest.raises(DataError, match=r"\(B, 4, H, W\)"):
        t(torch.zeros(2, 5, 4, 4))
    with pytest.raises(DataError, match=r"\(B, 4, H, W\)"):
        t(torch.zeros(2, 16))
    with pytest.raises(DataError, match="InvertibleConv1x1"):
        T.InvertibleConv1x1(4)(torch.zeros(2, 3, 4, 4))
    with pytest.raises(DataError, match="ActNorm"):
        T.ActNorm(4)(torch.zeros(2, 3, 4, 4))
    split = T.Split((4, 2, 2), T.Flatten((2, 2, 2)))
    with pytest.raises(DataError, match="Split"):
        split(torch.zeros(2, 3, 2, 2))
    with pytest.raises(DataError, match="Split"):
        split.inverse(torch.zeros(2, 15))
    with pytest.raises(DataError, match="Flatten"):
        T.Flatten((2, 2, 2)).inverse(torch.zeros(2, 7))
    with pytest.raises(ConfigError, match="2 or more channels"):
        T.Split((1, 2, 2), T.Flatten((1, 2, 2)))


def test_split_factors_out_half_with_its_prior():
    # the factored half leaves unchanged apart from its prior's affine map; the rest is inner's
    inner = T.Flatten((2, 2, 2))
    split = T.Split((4, 2, 2), inner)
    _randomize(split)
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    split.double()
    z, ladj = split(x)
    assert z.shape == (3, 16)
    torch.testing.assert_close(z[:, 8:], x[:, :2].flatten(1))
    params = split._params(x[:, :2], None)
    eps, expected = T.Affine()(x[:, 2:], params, inverse=False)
    torch.testing.assert_close(z[:, :8], eps.flatten(1))
    torch.testing.assert_close(ladj, expected.flatten(1).sum(1))


def test_variational_dequantizer_log_q_matches_autograd():
    deq = T.VariationalDequantization((2, 2, 2), hidden_channels=4, num_layers=2).double()
    _randomize(deq)
    k = torch.randint(0, 4, (3, 2, 2, 2)).double()
    g = torch.Generator().manual_seed(5)
    u, log_q = deq(k, 4, torch.Generator().manual_seed(5))
    assert ((u > 0) & (u < 1)).all() and log_q.shape == (3,)
    eps = torch.randn(k.shape, generator=g, dtype=torch.float64)
    features = deq.encoder(k / 3 - 0.5)
    for i in range(3):

        def to_u(e, i=i):
            return torch.sigmoid(deq.flow(e, features[i : i + 1])[0])

        jac = torch.autograd.functional.jacobian(to_u, eps[i : i + 1]).reshape(8, 8)
        normal = torch.distributions.Normal(0.0, 1.0).log_prob(eps[i]).sum()
        torch.testing.assert_close(log_q[i], normal - torch.linalg.slogdet(jac)[1])
    u2, _ = T.UniformDequantization()(k, 4, torch.Generator().manual_seed(5))
    assert ((u2 >= 0) & (u2 < 1)).all() and u2.dtype == torch.float64


def test_made_is_autoregressive():
    made = T.MADE(4, 3, (16, 16))
    _randomize(made)
    x = torch.randn(1, 4, dtype=torch.float32, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: made(v).sum(-1), x).reshape(4, 4)
    assert torch.equal(jac.triu() != 0, torch.zeros(4, 4, dtype=torch.bool))
    assert (jac.tril(-1)[1:, :].abs().sum(-1) > 0).all()


def test_squeeze_moves_2x2_blocks_to_channels_and_checks_shapes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y, _ = T.Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([0.0, 1.0, 4.0, 5.0]))
    with pytest.raises(DataError, match="even"):
        T.Squeeze()(torch.zeros(1, 1, 3, 4))


def test_actnorm_initializes_from_the_first_training_batch():
    x = 3.0 + 2.0 * torch.randn(500, 3)
    norm = T.ActNorm(3)
    z, _ = norm(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=1e-5, rtol=0)
    assert bool(norm.initialized)
    loc = norm.loc.detach().clone()
    norm(x + 10)
    assert torch.equal(norm.loc.detach(), loc), "initialization happens once"


# ---- the registered models -------------------------------------------------------------------


TINY_FLOWS = [
    ("realnvp", {"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300}),
    ("maf", {"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300}),
    ("iaf", {"num_layers": 2, "hidden": (16,)}, "moons", {"num_samples": 300}),
    ("nsf", {"num_layers": 2, "hidden": (16,), "bins": 4}, "moons", {"num_samples": 300}),
    (
        "nsf",
        {"num_layers": 2, "hidden": (16,), "bins": 4, "kind": "autoregressive"},
        "8gaussians",
        {"num_samples": 300},
    ),
]
CONTRACT_CHECKS = [
    contract.test_each_loss_key_grads_its_group_only,
    contract.test_samples_shape_dtype_range_and_seed,
    contract.test_unknown_sample_option_raises,
    contract.test_exact_likelihood_normalizes,
]


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", TINY_FLOWS, ids=contract.case_id)
def test_flows_keep_the_contract(case, check):
    check(case)


@pytest.mark.parametrize("case", TINY_FLOWS, ids=contract.case_id)
def test_flows_save_load(case, tmp_path):
    contract.test_save_load_round_trip(case, tmp_path)


def _moons():
    train = genlab.data.load("moons", num_samples=2000)
    test = genlab.data.load("moons", split="test", num_samples=500)
    return train, test


def _gaussian_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    mean, cov = train.double().mean(0), torch.cov(train.double().T)
    dist = torch.distributions.MultivariateNormal(mean, cov)
    return -float(dist.log_prob(test.double()).mean())


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("realnvp", {"num_layers": 6, "hidden": (64, 64)}),
        ("maf", {"num_layers": 4, "hidden": (64, 64)}),
        ("iaf", {"num_layers": 4, "hidden": (64, 64)}),
        ("nsf", {"num_layers": 3, "hidden": (64, 64), "bins": 8, "tail_bound": 4.0}),
    ],
)
def test_flow_learns_moons_better_than_a_gaussian(name, cfg):
    train, test = _moons()
    torch.manual_seed(0)
    model = genlab.create(name, spec=train.spec, **cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, len(train.x), (256,), generator=g)
        out = model.loss(Batch(train.x[idx]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    nll = -model.log_likelihood(test.x).mean()
    baseline = _gaussian_nll(train.x, test.x)
    print(f"{name}: test NLL {nll:.3f} nats vs Gaussian {baseline:.3f}")
    assert nll < baseline - 0.3, f"{name}: test NLL {nll:.3f} vs Gaussian {baseline:.3f}"
    # samples land where the density is: their mean log-likelihood is like the data's
    samples = model.sample(1000, generator=torch.Generator().manual_seed(1))
    assert abs(-model.log_likelihood(samples).mean() - nll) < 0.5
    # the trained density still integrates to 1 on a grid covering the data
    axis = torch.linspace(-6.0, 6.0, 601)
    grid = torch.cartesian_prod(axis, axis)
    mass = model.log_likelihood(grid).nats.double().exp().sum() * (12.0 / 600) ** 2
    assert math.isclose(float(mass), 1.0, abs_tol=1e-2)


def test_temperature_scales_the_base_noise():
    spec = DataSpec("points", (3,), name="toy")
    model = genlab.create("maf", spec=spec, num_layers=1, hidden=(8,))
    assert torch.equal(model.sample(4, temperature=0.0), model.sample(4, temperature=0.0))
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(2, temperature=-1.0)


def test_conditional_flow_uses_labels():
    spec = DataSpec("points", (2,), name="toy", num_classes=3)
    model = genlab.create("realnvp", spec=spec, num_layers=2, hidden=(8,), conditional=True)
    x = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    batch = Batch(x, {"label": labels})
    model.loss(batch).loss.backward()
    assert model.label_embedding.weight.grad.abs().sum() > 0
    s = model.sample(6, generator=torch.Generator().manual_seed(0), cond={"label": labels})
    assert s.shape == (6, 2)
    ll = model.log_likelihood(x, cond={"label": labels})
    assert ll.kind == "exact" and ll.nats.shape == (6,)
    with pytest.raises(DataError, match="conditional"):
        model.log_likelihood(x)
    with pytest.raises(DataError, match="outside"):
        model.sample(2, cond={"label": torch.tensor([0, 3])})


@pytest.mark.parametrize(
    "name,cfg,match",
    [
        ("realnvp", {"num_layers": 0}, "num_layers"),
        ("maf", {"hidden": ()}, "hidden"),
        ("realnvp", {"mask": "checkerboard"}, "mask"),
        ("nsf", {"bins": 1}, "bins"),
        ("nsf", {"tail_bound": 0.0}, "tail_bound"),
        ("nsf", {"kind": "glow"}, "kind"),
        ("iaf", {"activation": "swish"}, "activation"),
        ("realnvp", {"marginal_spline_bins": 8}, "for images"),
    ],
)
def test_bad_configs_raise(name, cfg, match):
    spec = DataSpec("points", (2,), name="toy")
    with pytest.raises(ConfigError, match=match):
        genlab.create(name, spec=spec, **cfg)


@pytest.mark.parametrize("name", ["realnvp", "maf", "iaf", "nsf"])
def test_images_and_unlabelled_conditioning_raise(name):
    images = DataSpec("image", (1, 8, 8), name="digits", num_classes=10, discrete_levels=17)
    if name == "realnvp":
        assert genlab.create(name, spec=images, num_scales=2).is_image
    else:
        with pytest.raises(ConfigError, match="glow"):
            genlab.create(name, spec=images)
    with pytest.raises(ConfigError, match="labelled"):
        genlab.create(name, spec=DataSpec("points", (2,), name="moons"), conditional=True)
    model = genlab.create(name, spec=DataSpec("points", (2,), name="moons"), num_layers=1)
    with pytest.raises(DataError, match="shape"):
        model.log_likelihood(torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, cond={"label": torch.zeros(2, dtype=torch.long)})
    # labels the data carries are ignored by an unconditional flow's loss
    model.loss(Batch(torch.zeros(3, 2), {"label": torch.zeros(3, dtype=torch.long)}))


def test_one_dimensional_data():
    spec = DataSpec("points", (1,), name="line")
    x = torch.linspace(-2, 2, 5).view(-1, 1)
    for name, cfg in [("maf", {}), ("iaf", {}), ("nsf", {"kind": "autoregressive"})]:
        model = genlab.create(name, spec=spec, num_layers=2, hidden=(8,), **cfg)
        assert model.log_likelihood(x).nats.shape == (5,)
        assert model.sample(3).shape == (3, 1)
    with pytest.raises(ConfigError, match="2 or more"):
        genlab.create("realnvp", spec=spec)


# ---- cross-check against zuko: same weights, same log-density ---------------------------------


def _zuko_pair(kind: str, dim: int, layers: int, hidden=(16, 16)):
    """A zuko flow and the genlab flow of the corresponding architecture, carrying its weights."""
    zuko = pytest.importorskip("zuko")
    spec = DataSpec("points", (dim,), name="toy")
    common = {"num_layers": layers, "hidden": hidden, "activation": "relu"}
    if kind == "maf":
        theirs = zuko.flows.MAF(dim, transforms=layers, hidden_features=hidden)
        ours = genlab.create("maf", spec=spec, **common)
    else:
        theirs = zuko.flows.RealNVP(dim, transforms=layers, hidden_features=hidden)
        extra = {"mask": "alternate", "actnorm": False, "permute": False}
        ours = genlab.create("realnvp", spec=spec, **common, **extra)
    load_zuko_weights(ours, theirs)
    return ours, theirs


@torch.no_grad()
def test_maf_matches_zuko_given_the_same_weights():
    """genlab's vector MAF (MADE layers, reversals, rational log-scale clip) computes zuko's
    MAF log-density to float precision once it carries zuko's weights."""
    torch.manual_seed(0)
    dim = 3
    ours, _ = _zuko_pair("maf", dim, 4)
    for made in (m for m in ours.modules() if isinstance(m, T.MADE)):
        # the forward pass must still be autoregressive with the copied weights and masks
        x = torch.randn(5, dim)
        with torch.enable_grad():
            jac = torch.autograd.functional.jacobian(lambda v, m=made: m(v).sum((0, 2)), x)
        jac = jac.sum(1)  # (D out, D in)
        assert torch.all(jac.triu() == 0) and torch.all(jac.tril(-1)[1:, 0] != 0)
    ours, theirs = _zuko_pair("maf", dim, 4)
    x = torch.randn(64, dim) * 2
    expected = theirs().log_prob(x)
    got = ours.log_likelihood(x).nats
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@torch.no_grad()
def test_realnvp_matches_zuko_given_the_same_weights():
    """genlab's vector Real NVP (alternating masks, no ActNorm or permutations) computes zuko's
    RealNVP log-density once it carries zuko's weights."""
    torch.manual_seed(0)
    ours, theirs = _zuko_pair("realnvp", 4, 3)
    x = torch.randn(64, 4) * 2
    expected = theirs().log_prob(x)
    got = ours.log_likelihood(x).nats
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@pytest.mark.parametrize("kind", ["maf", "realnvp"])
def test_flows_started_from_zuko_weights_train_like_zuko(kind):
    """With the same weights, masks and batches, twenty Adam steps of genlab's flow and of
    zuko's keep the same loss and density: they are the same model, not just the same start."""
    torch.manual_seed(1)
    ours, theirs = _zuko_pair(kind, 3, 2)
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    for _ in range(20):
        x = torch.randn(32, 3) * 2
        for opt, loss in (
            (opt_ours, ours.loss(Batch(x)).loss),
            (opt_theirs, -theirs().log_prob(x).mean()),
        ):
            opt.zero_grad()
            loss.backward()
            opt.step()
    x = torch.randn(64, 3)
    with torch.no_grad():
        got, expected = ours.log_likelihood(x).nats, theirs().log_prob(x)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_load_zuko_weights_rejects_architectures_that_do_not_correspond():
    zuko = pytest.importorskip("zuko")
    spec = DataSpec("points", (2,), name="toy")
    maf = genlab.create("maf", spec=spec, num_layers=2, hidden=(8, 8), activation="relu")
    with pytest.raises(ConfigError, match="num_layers=3"):
        load_zuko_weights(maf, zuko.flows.MAF(2, transforms=3, hidden_features=(8, 8)))
    with pytest.raises(ConfigError, match="hidden"):
        load_zuko_weights(maf, zuko.flows.MAF(2, transforms=2, hidden_features=(8, 8, 8)))
    with pytest.raises(ConfigError, match="MAF or RealNVP"):
        load_zuko_weights(maf, zuko.flows.NSF(2, transforms=2))
    nvp = genlab.create("realnvp", spec=spec, num_layers=2, hidden=(8, 8), mask="half")
    with pytest.raises(ConfigError, match="mask='alternate'"):
        load_zuko_weights(nvp, zuko.flows.RealNVP(3, transforms=2, hidden_features=(8, 8)))
    # what a copy would get silently wrong: each of these loaded before, as another function
    zuko_maf = zuko.flows.MAF(2, transforms=2, hidden_features=(8, 8))
    silu = genlab.create("maf", spec=spec, num_layers=2, hidden=(8, 8))  # default silu
    with pytest.raises(ConfigError, match="plain ReLU"):
        load_zuko_weights(silu, zuko_maf)
    elu = zuko.flows.MAF(2, transforms=2, hidden_features=(8, 8), activation=torch.nn.ELU)
    with pytest.raises(ConfigError, match="plain ReLU"):
        load_zuko_weights(maf, elu)
    iaf = genlab.create("iaf", spec=spec, num_layers=2, hidden=(8, 8), activation="relu")
    with pytest.raises(ConfigError, match="genlab 'maf' model, not 'iaf'"):
        load_zuko_weights(iaf, zuko_maf)
    with pytest.raises(ConfigError, match="unconditional"):
        load_zuko_weights(maf, zuko.flows.MAF(2, 3, transforms=2, hidden_features=(8, 8)))
    nvp = genlab.create(
        "realnvp", spec=spec, num_layers=2, hidden=(8, 8), activation="relu", mask="alternate"
    )
    with pytest.raises(ConfigError, match="actnorm=False, permute=False"):
        load_zuko_weights(nvp, zuko.flows.RealNVP(2, transforms=2, hidden_features=(8, 8)))


def test_affine_clips_bound_the_log_scale_and_bad_options_raise():
    s = torch.tensor([[-1e6, -2.0, 0.0, 2.0, 1e6]]).T  # (5, 1) raw log-scales
    params = torch.stack([s, torch.zeros_like(s)], -1)  # (5, 1, 2)
    x = torch.ones(5, 1)
    for clip, bound in (("tanh", 3.0), ("rational", math.log(1000.0))):
        _, ladj = T.Affine(bound, clip)(x, params, inverse=False)
        assert ladj.abs().max() <= bound and ladj[2] == 0
        assert torch.all(ladj[1:] > ladj[:-1])  # monotone in the raw log-scale
    with pytest.raises(ConfigError, match="clip"):
        T.Affine(3.0, "sigmoid")
    with pytest.raises(ConfigError, match="clamp"):
        T.Affine(0.0)
