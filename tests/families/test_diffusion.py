"""The diffusion model: parametrization algebra, training on a 2-D Gaussian, guidance,
inpainting, likelihoods against closed forms, and the errors a user can cause."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.core.contract import DataSpec
from genlab.core.errors import ConfigError, DataError
from genlab.data.dataset import Dataset
from genlab.families.diffusion import schedules
from genlab.families.diffusion.diffusion import (
    Diffusion,
    ode_log_likelihood,
    plot_trajectories,
    prediction_coefficients,
    prediction_target,
)

MEAN = torch.tensor([0.5, -1.0], dtype=torch.float64)
CHOL = torch.tensor([[1.0, 0.0], [0.8, 0.5]], dtype=torch.float64)
COV = CHOL @ CHOL.T


def _gaussian_data(n: int = 4000, seed: int = 0) -> Dataset:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = (MEAN + z @ CHOL.T).float()
    return Dataset(x=x, spec=DataSpec(modality="points", shape=(2,), name="gaussian"))


def _exact_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[x0 | x0 + sigma eps] for x0 ~ N(MEAN, COV): MEAN + COV (COV + sigma^2 I)^-1 (x - MEAN)."""
    s2 = sigma.double()[:, None, None] ** 2
    gain = COV @ torch.linalg.inv(COV + s2 * torch.eye(2, dtype=torch.float64))  # (B, 2, 2)
    return (MEAN + (gain @ (x.double() - MEAN)[:, :, None])[:, :, 0]).to(x.dtype)


def _tiny_unet(conditional: bool = True, **overrides) -> Diffusion:
    spec = genlab.data.load("digits").spec
    cfg = dict(channels=8, channel_mults=(1, 2), num_res_blocks=1, num_heads=2)
    cfg.update(conditional=conditional, **overrides)
    torch.manual_seed(0)
    return genlab.create("diffusion", spec=spec, **cfg)


# ---- parametrization ------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_targets_and_preconditioning_invert_each_other(prediction, sigma_data):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    sigma = torch.exp(torch.randn(64, 1, generator=g, dtype=torch.float64) * 2)
    x = x0 + sigma * eps
    c_skip, c_out = prediction_coefficients(prediction, sigma, sigma_data)
    target = prediction_target(prediction, x0, eps, sigma, sigma_data)
    # A network that outputs its target exactly must give back x0 exactly.
    torch.testing.assert_close(c_skip * x + c_out * target, x0, rtol=0, atol=1e-12)


def test_v_is_salimans_and_ho_in_vp_terms():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 32, 4, generator=g, dtype=torch.float64)
    abar = schedules.alphas_cumprod("cosine")[torch.randint(0, 1000, (32, 1), generator=g)]
    sigma = schedules.sigma_from_alpha_cumprod(abar)
    v = prediction_target("v", x0, eps, sigma)
    torch.testing.assert_close(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0, rtol=0, atol=1e-12)
    # eps and x0 from v, as Salimans & Ho: x0 = sqrt(a) x_vp - sqrt(1-a) v, eps = sqrt(1-a) x_vp
    # + sqrt(a) v, with x_vp = sqrt(a) x0 + sqrt(1-a) eps.
    x_vp = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    torch.testing.assert_close(abar.sqrt() * x_vp - (1 - abar).sqrt() * v, x0, atol=1e-12, rtol=0)
    torch.testing.assert_close((1 - abar).sqrt() * x_vp + abar.sqrt() * v, eps, atol=1e-12, rtol=0)


def test_min_snr_weights_match_hang_et_al():
    sigma = torch.tensor([0.05, 0.3, 1.0, 4.0])
    snr = 1 / sigma**2
    gamma = 5.0
    for prediction, expected in (
        ("eps", snr.clamp(max=gamma) / snr),
        ("v", snr.clamp(max=gamma) / (snr + 1)),
        ("x0", snr.clamp(max=gamma)),
    ):
        spec = DataSpec(modality="points", shape=(2,))
        model = Diffusion(
            genlab.core.registry.make_config(
                "diffusion", {"prediction": prediction, "loss_weighting": "min_snr"}
            )[1],
            spec,
        )
        torch.testing.assert_close(model.loss_weight(sigma), expected)


def test_denoiser_is_the_preconditioned_network():
    model = genlab.create("diffusion", spec=DataSpec("points", (2,)), prediction="v")
    x, sigma = torch.randn(5, 2), torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0])
    with torch.no_grad():
        c_in = (1 / (sigma**2 + 1).sqrt())[:, None]
        out = model.net(c_in * x, schedules.sigma_to_t(sigma.double(), model.train_sigmas).float())
        c_skip, c_out = prediction_coefficients("v", sigma[:, None])
        torch.testing.assert_close(model.denoise(x, sigma), c_skip * x + c_out * out)


# ---- training and sampling ------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["cosine", "edm"])
def test_training_on_a_2d_gaussian_recovers_mean_and_covariance(schedule):
    data = _gaussian_data()
    torch.manual_seed(0)
    model = genlab.create("diffusion", spec=data.spec, schedule=schedule, hidden=64, num_blocks=2)
    train = genlab.TrainConfig(
        steps=400, batch_size=256, lr=3e-3, progress=False, checkpoint_every=0, seed=0
    )
    model.fit(data, train)
    x = model.sample(4000, generator=torch.Generator().manual_seed(0), sampler="heun", steps=18)
    x = x.double()
    assert (x.mean(0) - MEAN).abs().max() < 0.1
    torch.testing.assert_close(x.T.cov(), COV, atol=0.12, rtol=0.1)


def test_every_sampler_runs_and_reproduces():
    model = genlab.create("diffusion", spec=DataSpec("points", (2,)), hidden=8, num_blocks=1)
    from genlab.families.diffusion.samplers import SAMPLERS

    for name in SAMPLERS:
        a = model.sample(5, generator=torch.Generator().manual_seed(0), sampler=name, steps=3)
        b = model.sample(5, generator=torch.Generator().manual_seed(0), sampler=name, steps=3)
        assert a.shape == (5, 2) and torch.isfinite(a).all() and torch.equal(a, b), name


def test_sampling_grids():
    model = genlab.create("diffusion", spec=DataSpec("points", (2,)))
    ddim = model.sampling_sigmas("ddim", 10)
    torch.testing.assert_close(ddim, schedules.discrete_sigmas(10, model.train_sigmas))
    heun = model.sampling_sigmas("heun", 10)
    assert heun[0] == 80.0 and heun[-2] == pytest.approx(float(model.train_sigmas[0]))
    edm = genlab.create("diffusion", spec=DataSpec("points", (2,)), schedule="edm")
    torch.testing.assert_close(edm.sampling_sigmas("ddim", 7), schedules.edm_sigmas(7))
    with pytest.raises(ConfigError, match="karras"):
        edm.sampling_sigmas("ddim", 7, spacing="leading")


def test_trajectory_ends_at_the_samples_and_plots(tmp_path):
    model = genlab.create("diffusion", spec=DataSpec("points", (2,)), hidden=8, num_blocks=1)
    path = model.sample_trajectory(6, generator=torch.Generator().manual_seed(2), steps=5)
    x = model.sample(6, generator=torch.Generator().manual_seed(2), steps=5)
    assert path.shape == (6, 6, 2)
    torch.testing.assert_close(path[-1], x)
    assert plot_trajectories(path, tmp_path / "t.png").stat().st_size > 0


# ---- guidance and labels --------------------------------------------------------------------


def test_guidance_combines_conditional_and_null_predictions():
    model = _tiny_unet(label_dropout=0.2).eval()
    x = torch.randn(4, 1, 8, 8)
    sigma = torch.full((4,), 0.7)
    labels = torch.tensor([0, 3, 5, 9])
    null = torch.full_like(labels, 10)
    with torch.no_grad():
        cond = model.denoise(x, sigma, labels)
        uncond = model.denoise(x, sigma, null)
        for w in (0.0, 1.0, 3.0):
            guided = model.denoiser(labels, w)(x, sigma)
            torch.testing.assert_close(guided, cond + w * (cond - uncond), atol=1e-5, rtol=1e-5)
        assert torch.equal(model.denoiser(labels, 0.0)(x, sigma), cond)
    assert not torch.allclose(cond, uncond)
    g = {"label": labels}
    plain = model.sample(4, generator=torch.Generator().manual_seed(0), cond=g, steps=4)
    zero = model.sample(4, generator=torch.Generator().manual_seed(0), cond=g, steps=4, guidance=0)
    guided = model.sample(
        4, generator=torch.Generator().manual_seed(0), cond=g, steps=4, guidance=2
    )
    assert torch.equal(plain, zero) and not torch.equal(plain, guided)


def test_label_dropout_rate():
    model = _tiny_unet(label_dropout=0.15)
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (200_000,))
    dropped = model.drop_labels(labels)
    is_null = dropped == 10
    rate = is_null.double().mean().item()
    assert abs(rate - 0.15) < 4 * math.sqrt(0.15 * 0.85 / len(labels))
    assert torch.equal(dropped[~is_null], labels[~is_null])
    assert torch.equal(_tiny_unet(label_dropout=0.0).drop_labels(labels), labels)


def test_unconditional_sampling_of_a_conditional_model_uses_the_null_class():
    from genlab.families.diffusion.samplers import dpmpp_2m

    model = _tiny_unet(label_dropout=0.2).eval()
    x = model.sample(3, generator=torch.Generator().manual_seed(0), steps=3)
    g = torch.Generator().manual_seed(0)
    sigmas = model.sampling_sigmas("dpmpp_2m", 3)
    with torch.no_grad():
        start = float(sigmas[0]) * torch.randn(3, 1, 8, 8, generator=g)
        ref = dpmpp_2m(model.denoiser(torch.full((3,), 10)), start, sigmas, generator=g)
    torch.testing.assert_close(x, model.to_data_space(ref), rtol=0, atol=0)


# ---- inpainting -----------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "dpmpp_2m", "heun"])
def test_inpainting_keeps_known_pixels_exactly(sampler):
    model = _tiny_unet(conditional=False)
    data = genlab.data.load("digits", split="test")
    known = data.x[:1]  # (1, 1, 8, 8), broadcast to every sample
    mask = torch.zeros(3, 1, 8, 8)
    mask[:, :, 2:6, 1:7] = 1  # generate the middle, keep the border
    x = model.sample(
        3,
        generator=torch.Generator().manual_seed(0),
        sampler=sampler,
        steps=5,
        inpaint=known,
        mask=mask,
    )
    keep = mask.expand_as(x) == 0
    assert torch.equal(x[keep], known.expand_as(x)[keep])
    assert not torch.equal(x[~keep], known.expand_as(x)[~keep])
    assert x.min() >= 0 and x.max() <= 1


def test_inpainting_fills_in_consistently_with_the_known_part():
    """With the exact denoiser of a 2-D Gaussian, inpainting x_1 given x_0 = a should draw from
    the Gaussian conditional N(m1 + c (a - m0), v). Plain replacement is biased towards the
    prior when the dimensions are strongly correlated; RePaint's resampling removes most of it."""
    model = genlab.create("diffusion", spec=DataSpec("points", (2,)), schedule="edm")
    model.denoise = lambda x, sigma, class_labels=None: _exact_denoiser(x, sigma)
    a = 1.5
    known = torch.tensor([[a, 0.0]])
    mask = torch.tensor([[0.0, 1.0]])
    cond_mean = float(MEAN[1] + COV[1, 0] / COV[0, 0] * (a - MEAN[0]))
    cond_std = float((COV[1, 1] - COV[1, 0] ** 2 / COV[0, 0]).sqrt())
    errors = {}
    for resample in (1, 10):
        x = model.sample(
            4000,
            generator=torch.Generator().manual_seed(0),
            sampler="ddpm",
            steps=50,
            inpaint=known,
            mask=mask,
            resample=resample,
        ).double()
        assert torch.equal(x[:, 0], torch.full((4000,), a, dtype=torch.float64))
        errors[resample] = abs(float(x[:, 1].mean()) - cond_mean)
        if resample == 10:
            assert errors[10] < 0.06
            assert abs(float(x[:, 1].std()) - cond_std) < 0.1
    assert errors[10] < errors[1] / 2


# ---- likelihood -----------------------------------------------------------------------------


def test_ode_likelihood_of_the_exact_gaussian_denoiser():
    x = _gaussian_data(300, seed=1).x
    sigma_min = 0.002
    sigmas = schedules.karras_sigmas(64, sigma_min, 80.0).flip(0)[1:]
    truth = torch.distributions.MultivariateNormal(
        MEAN, COV + sigma_min**2 * torch.eye(2, dtype=torch.float64)
    ).log_prob(x.double())
    exact = ode_log_likelihood(_exact_denoiser, x, sigmas, 80.0**2 + 1.0, trace="exact")
    assert (exact - truth).abs().mean() < 0.05
    hutch = ode_log_likelihood(
        _exact_denoiser,
        x,
        sigmas,
        80.0**2 + 1.0,
        trace="hutchinson",
        generator=torch.Generator().manual_seed(0),
    )
    # Unbiased: the mean over 300 points is close, single points scatter.
    assert abs(float((hutch - truth).mean())) < 0.15


def test_vlb_matches_its_closed_form_for_a_gaussian():
    """For 1-D data N(m, s^2) and its exact denoiser, x0 - D(x_t) = (1 - g)(x0 - m) - g sigma eps
    with g = s^2 / (s^2 + sigma^2), so every term of the DDPM bound has a closed-form mean over
    eps; the model's one-draw-per-term estimate must match it, and lie below log p(x)."""
    m, s2 = 0.3, 0.49
    model = genlab.create("diffusion", spec=DataSpec("points", (1,)), schedule="linear")
    model.denoise = lambda x, sigma, class_labels=None: (
        m + s2 / (s2 + sigma[:, None] ** 2) * (x - m)
    )
    x = m + 0.7 * torch.randn(64, 1, generator=torch.Generator().manual_seed(3))
    ll = model.log_likelihood(x, method="vlb", generator=torch.Generator().manual_seed(0))
    assert ll.kind == "lower_bound"

    x0 = x.double()[:, 0:1]  # (B, 1)
    sig = model.train_sigmas.double()  # (T,)
    abar = 1 / (1 + sig**2)
    abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
    beta = 1 - abar / abar_prev
    g = s2 / (s2 + sig**2)
    err2 = (x0 - m) ** 2 * (1 - g) ** 2 + g**2 * sig**2  # (B, T): E (x0 - D)^2
    prior = 0.5 * (1 - abar[-1] - 1 - (1 - abar[-1]).log() + abar[-1] * x0[:, 0] ** 2)
    c1 = abar_prev.sqrt() * beta / (1 - abar)
    var = (1 - abar_prev) * beta / (1 - abar)
    middle = (c1[1:] ** 2 * err2[:, 1:] / (2 * var[1:])).sum(1)
    decoder = 0.5 * torch.log(2 * math.pi * beta[0]) + err2[:, 0] / (2 * beta[0])
    expected = -(prior + middle + decoder)
    assert abs(float((ll.nats - expected).mean())) < 0.03
    truth = torch.distributions.Normal(m, 0.7).log_prob(x.double()[:, 0])
    assert float((truth - expected).mean()) > 0  # a bound


def test_image_likelihood_reports_bits_per_dim():
    model = _tiny_unet(conditional=False, num_timesteps=50)
    x = genlab.data.load("digits", split="test").x[:3]
    ll = model.log_likelihood(x, generator=torch.Generator().manual_seed(0), steps=4)
    assert ll.kind == "estimate" and ll.nats.shape == (3,)
    bpd = ll.details["bits_per_dim"]
    assert bpd == pytest.approx(-float(ll.nats.mean()) / (64 * math.log(2)))
    assert "(k + u) / 17" in ll.details["dequantization"]
    vlb = model.log_likelihood(x, method="vlb", generator=torch.Generator().manual_seed(0))
    assert vlb.kind == "lower_bound" and (vlb.nats <= 0).all()  # log-probabilities of levels


# ---- persistence and errors -----------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model = _tiny_unet(schedule="edm", prediction="x0")
    model.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert loaded.config == model.config
    cond = {"label": torch.tensor([1, 2])}
    kw = dict(steps=3, guidance=1.5, cond=cond, sampler="dpmpp_2m")
    a = model.sample(2, generator=torch.Generator().manual_seed(0), **kw)
    b = loaded.sample(2, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a, b)


def test_bad_input_raises_clear_errors():
    uncond = _tiny_unet(conditional=False)
    cond = _tiny_unet(label_dropout=0.1)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ConfigError, match="unconditional"):
        uncond.sample(2, generator=g, guidance=3.0)
    with pytest.raises(DataError, match="outside the trained labels 0..9"):
        cond.sample(2, generator=g, cond={"label": torch.tensor([3, 10])})
    with pytest.raises(DataError, match="outside the trained labels"):
        cond.sample(2, generator=g, cond={"label": torch.tensor([-1, 0])})
    with pytest.raises(ConfigError, match="pass cond"):
        cond.sample(2, generator=g, guidance=2.0)
    known = torch.zeros(1, 1, 8, 8)
    with pytest.raises(DataError, match="does not match the image size"):
        uncond.sample(2, generator=g, inpaint=known, mask=torch.zeros(1, 1, 7, 8))
    with pytest.raises(DataError, match="inpaint has shape"):
        uncond.sample(2, generator=g, inpaint=torch.zeros(1, 1, 9, 9), mask=torch.zeros(1, 1, 9, 9))
    with pytest.raises(ConfigError, match="go together"):
        uncond.sample(2, generator=g, inpaint=known)
    for steps in (0, -3):
        with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
            uncond.sample(2, generator=g, steps=steps)
    with pytest.raises(ConfigError, match="unknown sampler 'dpm_fast'"):
        uncond.sample(2, generator=g, sampler="dpm_fast")
    with pytest.raises(ConfigError, match="guidance"):
        cond.sample(2, generator=g, cond={"label": torch.tensor([1, 2])}, guidance=-1.0)
    with pytest.raises(ConfigError, match="RePaint"):
        uncond.sample(2, generator=g, resample=3)
    with pytest.raises(ConfigError, match="eta"):
        uncond.sample(2, generator=g, sampler="heun", eta=0.5)
    with pytest.raises(ConfigError, match="vlb"):
        _tiny_unet(conditional=False, schedule="edm").log_likelihood(known, method="vlb")
    with pytest.raises(ConfigError, match="label_dropout"):
        genlab.create("diffusion", spec=DataSpec("points", (2,)), label_dropout=1.0)
    with pytest.raises(ConfigError, match="needs labelled data"):
        genlab.create("diffusion", spec=DataSpec("points", (2,)), conditional=True)
    with pytest.raises(ConfigError, match="network='unet' needs images"):
        genlab.create("diffusion", spec=DataSpec("points", (2,)), network="unet")
    no_null = _tiny_unet(label_dropout=0.0)
    with pytest.raises(DataError, match="no unconditional mode"):
        no_null.sample(2, generator=g)


def test_table_rows_are_scaled_by_their_schema_and_learned(tmp_path):
    """Table rows: each numeric column's [min, max] maps to [-1, 1] (one-hot slots stay in
    [-1, 1] too), and a short fit of the MLP denoiser puts the numeric column's mean and the
    category shares where the data has them."""
    import numpy as np
    import pandas as pd

    from genlab.data.tables import TableCodec

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(150, 10, 600).round(2), "c": rng.choice(["a", "b"], 600, p=[0.7, 0.3])}
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = genlab.data.load(str(tmp_path / "t.csv"))
    torch.manual_seed(0)
    model = genlab.create("diffusion", spec=data.spec, schedule="edm", hidden=64, num_blocks=2)
    scaled = model.to_model_space(data.x)
    torch.testing.assert_close(scaled.min(0).values, torch.full((3,), -1.0))
    torch.testing.assert_close(scaled.max(0).values, torch.full((3,), 1.0))
    torch.testing.assert_close(model.to_data_space(scaled), data.x, atol=1e-4, rtol=1e-5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        opt.zero_grad()
        model.loss(data.batch(torch.randint(0, len(data), (128,), generator=g))).loss.backward()
        opt.step()
    rows = TableCodec(data.spec.columns).decode(
        model.sample(600, generator=torch.Generator().manual_seed(0), steps=20)
    )
    # Data: mean 149.8, sd 10.0, share of "a" 0.70; the untrained model: 158.2, 15.5, 0.38.
    assert abs(rows["x"].mean() - frame["x"].mean()) < 3.0
    assert 7.0 < rows["x"].std() < 13.5
    assert 0.6 < (rows["c"] == "a").mean() < 0.85
