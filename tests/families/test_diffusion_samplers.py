"""Diffusion samplers and schedules against diffusers and against exact Gaussian denoisers.

diffusers is a test-only reference. Its schedulers work on VP samples x_vp = sqrt(a) x0 +
sqrt(1 - a) eps and predict eps; genlab's samplers work on VE samples x = x_vp / sqrt(a) =
x0 + sigma eps with sigma = sqrt((1 - a) / a) and a denoiser predicting x0. Both sides here run
the SAME nonlinear denoiser (the exact one of a 2-D Gaussian mixture), converted to eps for
diffusers, and every intermediate sample is compared in VP scaling (values of order one) to 1e-5.
"""

from __future__ import annotations

import math

import pytest
import torch

from genlab.core.errors import ConfigError
from genlab.families.diffusion import samplers, schedules

F64 = torch.float64
# diffusers' schedulers call np.array(tensor, copy=False), which numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers.*")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Thousands of steps on (4000, 2) tensors: a second intra-op thread only adds
    synchronization (tens of times slower on a shared, loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Exact denoisers


def gaussian_denoiser(mean: torch.Tensor, cov: torch.Tensor):
    """E[x0 | x] for x0 ~ N(mean, cov), x = x0 + sigma eps: mean + cov (cov + sigma^2 I)^-1 (x -
    mean), through the eigendecomposition of cov so that sigma can differ per sample."""
    lam, vecs = torch.linalg.eigh(cov)

    def denoise(x, sigma):
        y = (x - mean) @ vecs  # (B, D) in the eigenbasis
        y = y * (lam / (lam + sigma.reshape(-1, 1) ** 2))
        return mean + y @ vecs.T

    return denoise


def mixture_denoiser(weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
    """E[x0 | x] for a 2-D Gaussian mixture: the posterior-weighted Gaussian denoisers, with
    p(k | x) proportional to w_k N(x; m_k, S_k + sigma^2 I). 2x2 inverses in closed form keep
    thousands of steps cheap."""
    a, b, d = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]  # (K,)

    def denoise(x, sigma):
        s2 = sigma.reshape(-1, 1) ** 2  # (B, 1)
        ta, td = a + s2, d + s2  # (B, K): S_k + sigma^2 I
        det = ta * td - b**2
        diff = x[:, None, :] - means[None]  # (B, K, 2)
        u, v = diff[..., 0], diff[..., 1]
        su, sv = (td * u - b * v) / det, (ta * v - b * u) / det  # (S_k + sigma^2 I)^-1 diff
        log_p = weights.log() - 0.5 * (u * su + v * sv) - 0.5 * det.log()
        post = torch.softmax(log_p, dim=1)  # (B, K)
        x0_0 = means[:, 0] + a * su + b * sv  # (B, K): m_k + S_k (S_k + sigma^2 I)^-1 diff
        x0_1 = means[:, 1] + b * su + d * sv
        return torch.stack([(post * x0_0).sum(1), (post * x0_1).sum(1)], dim=1)

    return denoise


def test_mixture_denoiser_reduces_to_gaussian():
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)
    mean = torch.tensor([0.3, -1.0], dtype=F64)
    one = mixture_denoiser(torch.ones(1, dtype=F64), mean[None], cov[None])
    x, sigma = torch.randn(50, 2, dtype=F64), torch.rand(50, dtype=F64) * 3
    torch.testing.assert_close(one(x, sigma), gaussian_denoiser(mean, cov)(x, sigma))


MIX_WEIGHTS = torch.tensor([0.3, 0.7], dtype=F64)
MIX_MEANS = torch.tensor([[-1.5, 0.5], [1.0, -0.5]], dtype=F64)
MIX_COVS = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]], dtype=F64)
MIX = mixture_denoiser(MIX_WEIGHTS, MIX_MEANS, MIX_COVS)


def start(shape, generator):
    return torch.randn(shape, generator=generator, dtype=F64)


def train_sigmas(scheduler) -> torch.Tensor:
    return schedules.sigma_from_alpha_cumprod(scheduler.alphas_cumprod.to(F64))


def in_float64(scheduler):
    """Move a DDPM/DDIM scheduler's schedule to float64, so that both sides compute their
    coefficients from the same numbers and only the step formulas are compared."""
    for name in ("betas", "alphas", "alphas_cumprod", "final_alpha_cumprod", "one"):
        if isinstance(getattr(scheduler, name, None), torch.Tensor):
            setattr(scheduler, name, getattr(scheduler, name).to(F64))
    return scheduler


def eps_vp(x_vp, sigma):
    """The "network" diffusers sees: eps at VP input x_vp and noise level sigma, from the same
    VE denoiser that genlab's samplers call (x = x_vp sqrt(1 + sigma^2), eps = (x - x0) / sigma)."""
    x = schedules.ve_from_vp(x_vp, sigma)
    return (x - MIX(x, sigma.expand(len(x)))) / sigma


def eps_model(sigma_of_t):
    """eps_vp for a network that is given the integer timestep t, as DDPM, DDIM and DPM-Solver's
    schedulers give it."""
    return lambda x_vp, t: eps_vp(x_vp, sigma_of_t(t))


def run_ours(sampler, x_vp, sigmas, **options):
    """Run a genlab sampler from a VP start; return the VP states [start, after step 1, ...]."""
    states = [x_vp]

    def record(i, x, sigma_next):
        states.append(schedules.vp_from_ve(x, sigma_next))
        return x

    sampler(MIX, schedules.ve_from_vp(x_vp, sigmas[0]), sigmas, callback=record, **options)
    return states


def assert_steps_match(states, diffusers_step, tol=1e-5):
    """Each step on identical inputs: diffusers_step(i, x_i) (diffusers' scheduler step from
    genlab's state x_i, VP scaling) must give genlab's next state x_{i+1}. Driving diffusers
    along genlab's trajectory compares the step formulas without letting float32 rounding in
    diffusers (DPM-Solver upcasts to float32) accumulate through the sharp mixture denoiser."""
    for i in range(len(states) - 1):
        theirs = diffusers_step(i, states[i]).to(F64)
        err = (states[i + 1] - theirs).abs().max().item()
        assert err < tol, f"step {i}: max difference {err:.3g}"


# ---------------------------------------------------------------------------------------------
# Schedules against diffusers


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("linear", "linear"), ("scaled_linear", "scaled_linear"), ("cosine", "squaredcos_cap_v2")],
)
def test_beta_schedules_match_diffusers(ours, theirs):
    from diffusers import DDPMScheduler

    # diffusers' default end points are DDPM's for every schedule; genlab's scaled_linear
    # defaults to Stable Diffusion's 0.00085 .. 0.012, as its configs set them
    ends = {"beta_start": 0.00085, "beta_end": 0.012} if ours == "scaled_linear" else {}
    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs, **ends)
    betas = schedules.beta_schedule(ours, 1000)
    torch.testing.assert_close(betas, reference.betas.to(F64), rtol=1e-6, atol=1e-7)
    a = schedules.alphas_cumprod(ours, 1000)
    torch.testing.assert_close(a, reference.alphas_cumprod.to(F64), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("num_steps", [1, 7, 10, 50, 333])
def test_discrete_timesteps_match_diffusers(spacing, num_steps):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    ddim = DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    ddim.set_timesteps(num_steps)
    offset = 1 if spacing == "leading" else 0
    ours = schedules.discrete_timesteps(num_steps, 1000, spacing=spacing, offset=offset)
    assert ours.tolist() == ddim.timesteps.tolist()

    euler = EulerDiscreteScheduler(timestep_spacing=spacing)
    euler.set_timesteps(num_steps)
    ours = schedules.discrete_timesteps(num_steps, 1000, spacing=spacing, rounded=False)
    torch.testing.assert_close(ours, euler.timesteps.to(F64), rtol=0, atol=1e-4)
    sigmas = schedules.discrete_sigmas(
        num_steps, train_sigmas(euler), spacing=spacing, rounded=False
    )
    torch.testing.assert_close(sigmas, euler.sigmas.to(F64), rtol=1e-6, atol=1e-6)

    if num_steps < 999:
        dpm = DPMSolverMultistepScheduler(timestep_spacing=spacing)
        dpm.set_timesteps(num_steps)
        if spacing == "trailing":
            ours = schedules.discrete_timesteps(num_steps, 1000, spacing=spacing)
        else:  # DPM-Solver takes N + 1 points and drops the last
            ours = schedules.discrete_timesteps(num_steps + 1, 1000, spacing=spacing)[:-1]
        assert ours.tolist() == dpm.timesteps.tolist()


def test_karras_sigmas_and_sigma_to_t_match_diffusers():
    from diffusers import EulerDiscreteScheduler

    reference = EulerDiscreteScheduler(use_karras_sigmas=True)
    reference.set_timesteps(18)
    grid = train_sigmas(reference)
    ours = schedules.karras_sigmas(18, grid[0].item(), grid[-1].item())
    torch.testing.assert_close(ours, reference.sigmas.to(F64), rtol=1e-5, atol=1e-7)
    t = schedules.sigma_to_t(ours[:-1], grid)
    torch.testing.assert_close(t, reference.timesteps.to(F64), rtol=0, atol=2e-3)


def test_conversions_round_trip():
    grid = schedules.training_sigmas("cosine")
    assert torch.all(grid[1:] > grid[:-1])
    t = torch.tensor([0.0, 0.5, 17.25, 998.9, 999.0], dtype=F64)
    torch.testing.assert_close(schedules.sigma_to_t(schedules.t_to_sigma(t, grid), grid), t)
    # a grid sigma maps back to its integer timestep
    assert schedules.sigma_to_t(grid[[0, 10, 999]], grid).tolist() == pytest.approx([0, 10, 999])
    a = schedules.alphas_cumprod("linear")
    torch.testing.assert_close(
        schedules.alpha_cumprod_from_sigma(schedules.sigma_from_alpha_cumprod(a)), a
    )
    x = torch.randn(3, 2, 4, 4, dtype=F64)
    sigma = torch.tensor([0.1, 2.0, 50.0], dtype=F64)
    torch.testing.assert_close(schedules.ve_from_vp(schedules.vp_from_ve(x, sigma), sigma), x)
    # VE noising is VP noising rescaled: x_vp = sqrt(a) x0 + sqrt(1 - a) eps
    x0, eps = torch.randn(2, 5, dtype=F64)
    s = torch.tensor(3.0, dtype=F64)
    a_s = schedules.alpha_cumprod_from_sigma(s)
    torch.testing.assert_close(
        schedules.vp_from_ve(x0 + s * eps, s), a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps
    )
    # EDM training sigmas: log sigma ~ N(P_mean, P_std^2); 20,000 draws, 4 standard errors
    log_s = schedules.edm_training_sigmas(20_000, generator=torch.Generator().manual_seed(0)).log()
    assert abs(log_s.mean().item() - schedules.EDM_P_MEAN) < 4 * schedules.EDM_P_STD / 20_000**0.5
    assert abs(log_s.std().item() / schedules.EDM_P_STD - 1) < 4 * (0.5 / 20_000) ** 0.5
    c_skip, c_out, c_in, _ = schedules.edm_preconditioning(sigma)
    # EDM's preconditioning gives unit-variance inputs and the identity at sigma -> 0
    torch.testing.assert_close(
        c_in**2 * (schedules.EDM_SIGMA_DATA**2 + sigma**2), torch.ones(3, dtype=F64)
    )
    assert c_skip[0] > 0.95 and c_out[0] < 0.1


def test_schedule_errors():
    with pytest.raises(ConfigError, match="linear, cosine, scaled_linear"):
        schedules.beta_schedule("quadratic")
    for bad in (0, -3, 2.5):
        with pytest.raises(ConfigError, match=">= 1"):
            schedules.karras_sigmas(bad, 0.002, 80.0)
        with pytest.raises(ConfigError, match=">= 1"):
            schedules.discrete_sigmas(bad, schedules.training_sigmas("linear"))
    with pytest.raises(ConfigError, match="spacing"):
        schedules.discrete_timesteps(10, 1000, spacing="uniform")
    with pytest.raises(ConfigError, match="exceeds"):
        schedules.discrete_timesteps(1001, 1000)
    with pytest.raises(ConfigError, match="sigma_min < sigma_max"):
        schedules.karras_sigmas(10, 80.0, 0.002)


# ---------------------------------------------------------------------------------------------
# Each sampler step against the diffusers scheduler step


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddpm_matches_diffusers(spacing):
    from diffusers import DDPMScheduler

    reference = in_float64(DDPMScheduler(clip_sample=False, timestep_spacing=spacing))
    reference.set_timesteps(25)
    grid = train_sigmas(reference)
    sigmas = schedules.discrete_sigmas(25, grid, spacing=spacing)
    x_vp = start((64, 2), torch.Generator().manual_seed(1))
    # the same seed on both sides: both draw one normal tensor per step, in the same order
    states = run_ours(samplers.ddpm, x_vp, sigmas, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)

    def step(i, x):
        t = reference.timesteps[i]
        return reference.step(eps_vp(x, grid[t]), t, x, generator=g).prev_sample

    assert_steps_match(states, step)


@pytest.mark.parametrize(
    ("eta", "spacing"), [(0.0, "leading"), (0.0, "trailing"), (0.6, "leading"), (1.0, "trailing")]
)
def test_ddim_matches_diffusers(eta, spacing):
    from diffusers import DDIMScheduler

    reference = in_float64(DDIMScheduler(clip_sample=False, timestep_spacing=spacing))
    reference.set_timesteps(20)
    grid = train_sigmas(reference)
    sigmas = schedules.discrete_sigmas(20, grid, spacing=spacing)
    x_vp = start((64, 2), torch.Generator().manual_seed(2))
    states = run_ours(
        samplers.ddim, x_vp, sigmas, eta=eta, generator=torch.Generator().manual_seed(8)
    )
    g = torch.Generator().manual_seed(8)

    def step(i, x):
        t = reference.timesteps[i]
        return reference.step(eps_vp(x, grid[t]), t, x, eta=eta, generator=g).prev_sample

    assert_steps_match(states, step)


@pytest.mark.parametrize(
    ("order", "num_steps", "karras"),
    [(2, 10, False), (2, 20, False), (2, 20, True), (3, 10, False), (3, 20, False)],
)
def test_dpm_solver_multistep_matches_diffusers(order, num_steps, karras):
    from diffusers import DPMSolverMultistepScheduler

    reference = DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++", solver_order=order, use_karras_sigmas=karras
    )
    reference.set_timesteps(num_steps)
    # diffusers' own grid (N + 1 linspace points, last dropped, then sigma = 0) in float64 on
    # both sides; the multistep history inside diffusers is built from genlab's states
    sigmas = reference.sigmas.to(F64)
    reference.sigmas = sigmas
    sampler = samplers.dpmpp_2m if order == 2 else samplers.dpmpp_3m
    states = run_ours(sampler, start((64, 2), torch.Generator().manual_seed(3)), sigmas)

    def step(i, x):
        return reference.step(eps_vp(x, sigmas[i]), reference.timesteps[i], x).prev_sample

    assert_steps_match(states, step)


@pytest.mark.parametrize(("num_steps", "karras"), [(10, False), (20, True)])
def test_dpm_solver_sde_matches_diffusers_given_the_same_noise(num_steps, karras):
    from diffusers import DPMSolverMultistepScheduler

    reference = DPMSolverMultistepScheduler(
        algorithm_type="sde-dpmsolver++", solver_order=2, use_karras_sigmas=karras
    )
    reference.set_timesteps(num_steps)
    sigmas = reference.sigmas.to(F64)
    reference.sigmas = sigmas
    x_vp = start((64, 2), torch.Generator().manual_seed(6))
    states = run_ours(
        samplers.dpmpp_2m_sde, x_vp, sigmas, generator=torch.Generator().manual_seed(7)
    )
    # genlab draws one standard normal per step before the last, in order, from its generator;
    # in VP scaling its noise term is sigma_vp_next sqrt(1 - exp(-2h)) z, diffusers' exactly
    g = torch.Generator().manual_seed(7)
    noises = [start((64, 2), g) for _ in range(num_steps - 1)] + [torch.zeros(64, 2, dtype=F64)]

    def step(i, x):
        t = reference.timesteps[i]
        return reference.step(eps_vp(x, sigmas[i]), t, x, variance_noise=noises[i]).prev_sample

    assert_steps_match(states, step)
    assert not torch.allclose(states[-1], run_ours(samplers.dpmpp_2m, x_vp, sigmas)[-1])


@pytest.mark.parametrize("karras", [False, True])
def test_euler_matches_diffusers(karras):
    from diffusers import EulerDiscreteScheduler

    reference = EulerDiscreteScheduler(use_karras_sigmas=karras)
    reference.set_timesteps(15)
    grid = train_sigmas(reference)
    if karras:
        sigmas = schedules.karras_sigmas(15, grid[0].item(), grid[-1].item())
    else:
        sigmas = schedules.discrete_sigmas(15, grid, spacing="linspace", rounded=False)
    # the grids agree to float32 precision; run diffusers on genlab's float64 grid so that only
    # the steps are compared
    torch.testing.assert_close(reference.sigmas.to(F64), sigmas, rtol=1e-5, atol=1e-6)
    reference.sigmas = sigmas
    states = run_ours(samplers.euler, start((64, 2), torch.Generator().manual_seed(4)), sigmas)

    def step(i, x_vp):  # diffusers' Euler works on VE samples
        t = reference.timesteps[i]
        x = schedules.ve_from_vp(x_vp, sigmas[i])
        x_in = reference.scale_model_input(x, t)  # x / sqrt(1 + sigma^2), the VP input
        x = reference.step(eps_vp(x_in, sigmas[i]), t, x).prev_sample
        return schedules.vp_from_ve(x, sigmas[i + 1])

    assert_steps_match(states, step)


def test_heun_matches_diffusers():
    from diffusers import HeunDiscreteScheduler

    num_steps = 12
    reference = HeunDiscreteScheduler()
    reference.set_timesteps(num_steps)
    grid = train_sigmas(reference)
    sigmas = schedules.discrete_sigmas(num_steps, grid, spacing="linspace", rounded=False)
    # diffusers repeats each inner sigma: the Heun correction is evaluated there
    repeated = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    torch.testing.assert_close(reference.sigmas.to(F64), repeated, rtol=1e-5, atol=1e-6)
    reference.sigmas = repeated
    assert len(reference.timesteps) == samplers.network_evaluations("heun", num_steps)
    states = run_ours(samplers.heun, start((64, 2), torch.Generator().manual_seed(5)), sigmas)

    def call(k, x):  # diffusers' k-th call: an Euler prediction or a Heun correction
        t = reference.timesteps[k]
        x_in = reference.scale_model_input(x, t)
        return reference.step(eps_vp(x_in, repeated[k]), t, x).prev_sample

    def step(i, x_vp):
        # a full step is two diffusers calls (prediction, correction); the last is one call
        x = schedules.ve_from_vp(x_vp, sigmas[i])
        x = call(2 * i, x)
        if i < num_steps - 1:
            x = call(2 * i + 1, x)
        return schedules.vp_from_ve(x, sigmas[i + 1])

    assert_steps_match(states, step)


# ---------------------------------------------------------------------------------------------
# Samples from exact denoisers recover the data distribution

# Steps per sampler on Karras sigmas over [0.002, 80], chosen so that the discretization bias
# of the variance, measured with 100,000 samples, is below half the sampling error at n = 4,000
# (sd of a variance estimate: sqrt(2 / n) v = 0.022 v): first-order and SDE samplers need many
# steps, second- and higher-order ones few.
STEPS = {
    "ddpm": 1500,
    "ddim": 600,
    "euler": 1000,
    "heun": 100,
    "dpmpp_2m": 100,
    "dpmpp_2m_sde": 400,
    "dpmpp_2s": 60,
    "dpmpp_3m": 60,
    "euler_maruyama": 1500,
    "pc": 600,
    "ode": 50,
}
VARIANTS = [(name, {}) for name in samplers.SAMPLERS] + [
    ("ddim", {"eta": 0.5}),
    ("euler", {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0}),
    ("heun", {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0}),
    ("pc", {"snr": 0.1, "corrector_steps": 2}),
]
N = 4000
Z = 4.0  # allowed deviation in standard errors of the statistic (fixed seeds: deterministic)


def sample_moments(x: torch.Tensor):
    """Sample mean and covariance with their standard errors estimated from the samples
    (fourth moments for the covariance: Var[(x_i - m_i)(x_j - m_j)] / n)."""
    n = len(x)
    mean = x.mean(0)
    centered = x - mean
    cov = centered.T @ centered / (n - 1)
    products = centered[:, :, None] * centered[:, None, :]  # (n, D, D)
    return mean, cov, (cov.diagonal() / n).sqrt(), (products.var(0) / n).sqrt()


def check_moments(x, mean, cov, label):
    m_hat, c_hat, m_se, c_se = sample_moments(x)
    assert torch.all((m_hat - mean).abs() < Z * m_se), f"{label}: mean {m_hat} vs {mean}"
    assert torch.all((c_hat - cov).abs() < Z * c_se), f"{label}: covariance {c_hat} vs {cov}"


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=lambda v: str(v))
def test_sampler_recovers_gaussian(name, options):
    mean = torch.tensor([1.0, -2.0], dtype=F64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=F64)
    sigmas = schedules.karras_sigmas(STEPS[name], 0.002, 80.0)
    g = torch.Generator().manual_seed(11)
    # Start from the exact marginal at sigma_max, N(mean, cov + sigma_max^2 I), so the test
    # measures the sampler alone (sigma_max * noise would add a bias of order mean / sigma_max).
    chol = torch.linalg.cholesky(cov + sigmas[0] ** 2 * torch.eye(2, dtype=F64))
    x = mean + start((N, 2), g) @ chol.T
    samples = samplers.get_sampler(name)(
        gaussian_denoiser(mean, cov), x, sigmas, generator=g, **options
    )
    assert samples.shape == (N, 2) and samples.dtype == F64
    check_moments(samples, mean, cov, name)


@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_sampler_recovers_gaussian_mixture(name):
    mean = (MIX_WEIGHTS[:, None] * MIX_MEANS).sum(0)
    second = (
        MIX_WEIGHTS[:, None, None] * (MIX_COVS + MIX_MEANS[:, :, None] * MIX_MEANS[:, None, :])
    ).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    sigmas = schedules.karras_sigmas(STEPS[name], 0.002, 80.0)
    g = torch.Generator().manual_seed(12)
    x = draw_mixture(N, g, extra_variance=sigmas[0].item() ** 2)  # exact marginal at sigma_max
    samples = samplers.get_sampler(name)(MIX, x, sigmas, generator=g)
    check_moments(samples, mean, cov, name)
    # mode weights: the share of samples whose most likely component is the first, against
    # that share in exact draws from the mixture (two independent proportions)
    exact = draw_mixture(N, torch.Generator().manual_seed(13))
    p = first_component_share(exact)
    assert abs(first_component_share(samples) - p) < Z * math.sqrt(2 * p * (1 - p) / N)


def draw_mixture(n, generator, extra_variance=0.0):
    component = torch.multinomial(MIX_WEIGHTS, n, replacement=True, generator=generator)  # (n,)
    chol = torch.linalg.cholesky(MIX_COVS + extra_variance * torch.eye(2, dtype=F64))  # (K, 2, 2)
    return MIX_MEANS[component] + (chol[component] @ start((n, 2, 1), generator)).squeeze(-1)


def first_component_share(x):
    log_p = torch.stack(
        [
            torch.distributions.MultivariateNormal(MIX_MEANS[k], MIX_COVS[k]).log_prob(x)
            + MIX_WEIGHTS[k].log()
            for k in range(2)
        ]
    )  # (K, n)
    return (log_p[0] > log_p[1]).double().mean().item()


# ---------------------------------------------------------------------------------------------
# Registry, counts, callback, reproducibility and bad input


@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_network_evaluations_callback_and_seed(name):
    calls = []
    seen = []
    denoise = gaussian_denoiser(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))

    def counting(x, sigma):
        assert sigma.shape == (len(x),)
        calls.append(sigma[0].item())
        return denoise(x, sigma)

    def callback(i, x, sigma_next):
        seen.append((i, float(sigma_next)))
        return x * 0 + 1.0 if i == 2 else x  # a callback's return value is what continues

    sigmas = schedules.karras_sigmas(7, 0.01, 10.0)
    x = 10.0 * start((5, 2), torch.Generator().manual_seed(0))
    sampler = samplers.get_sampler(name)
    out = sampler(
        counting, x, sigmas, generator=torch.Generator().manual_seed(3), callback=callback
    )
    assert len(calls) == samplers.network_evaluations(name, 7)
    assert seen == [(i, pytest.approx(s)) for i, s in enumerate(sigmas[1:].tolist())]
    assert torch.isfinite(out).all()
    again = sampler(denoise, x, sigmas, generator=torch.Generator().manual_seed(3))
    assert torch.equal(
        again, sampler(denoise, x, sigmas, generator=torch.Generator().manual_seed(3))
    )
    # float32 in, float32 out (models sample in float32)
    denoise32 = gaussian_denoiser(torch.zeros(2), torch.eye(2))
    out32 = sampler(denoise32, x.float(), sigmas, generator=torch.Generator().manual_seed(3))
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), again, rtol=1e-4, atol=1e-4)


def test_callback_replacement_conditions_samples():
    """Inpainting by replacement (the callback's use): fixing coordinate 0 of a correlated
    Gaussian at every step pulls coordinate 1 towards its conditional mean."""
    mean = torch.zeros(2, dtype=F64)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=F64)
    g = torch.Generator().manual_seed(5)
    sigmas = schedules.karras_sigmas(50, 0.002, 80.0)
    known = 1.5
    noise = start((2000, 2), g)

    def keep_known(i, x, sigma_next):
        x = x.clone()
        x[:, 0] = known + sigma_next * noise[:, 0]
        return x

    x = sigmas[0] * start((2000, 2), g)
    out = samplers.dpmpp_2m(gaussian_denoiser(mean, cov), x, sigmas, callback=keep_known)
    assert torch.all(out[:, 0] == known)
    # the conditional mean is 0.9 * 1.5 = 1.35; replacement (without resampling, as RePaint
    # adds) under-conditions, so only check a clear pull from the unconditional mean 0 (the
    # standard error of the mean is 0.02) that does not overshoot
    assert 0.5 < out[:, 1].mean().item() < 1.35


def test_registry_and_bad_input():
    with pytest.raises(ConfigError, match="ddim, ddpm, dpmpp_2m"):
        samplers.get_sampler("plms")
    with pytest.raises(ConfigError, match="unknown sampler"):
        samplers.network_evaluations("plms", 10)
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=">= 1"):
            samplers.network_evaluations("ddim", bad)
    assert samplers.network_evaluations("heun", 18) == 35
    assert samplers.network_evaluations("pc", 10, corrector_steps=2) == 30
    denoise = gaussian_denoiser(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        samplers.euler(denoise, x, torch.tensor([1.0], dtype=F64))
    with pytest.raises(ConfigError, match="decreasing"):
        samplers.euler(denoise, x, torch.tensor([1.0, 2.0, 0.0], dtype=F64))
    with pytest.raises(ConfigError, match="1-D"):
        samplers.euler(denoise, x, torch.ones(2, 2, dtype=F64))
    with pytest.raises(ConfigError, match=">= 0"):
        samplers.euler(denoise, x, torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(ConfigError, match="eta"):
        samplers.ddim(denoise, x, torch.tensor([1.0, 0.0], dtype=F64), eta=-1.0)
    with pytest.raises(ConfigError, match="snr"):
        samplers.pc(denoise, x, torch.tensor([1.0, 0.0], dtype=F64), snr=0.0)
    with pytest.raises(TypeError):
        samplers.euler(denoise, x, torch.tensor([1.0, 0.0], dtype=F64), eta=0.5)
