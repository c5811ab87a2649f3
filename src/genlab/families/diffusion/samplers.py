"""Diffusion samplers as pure functions with one calling convention (k-diffusion style).

    sampler(denoise, x, sigmas, *, generator=None, callback=None, **options) -> x

- `denoise(x, sigma) -> x0_hat`: the model's estimate of the clean data, x (B, ...), sigma (B,).
  Prediction targets (epsilon, v, x0), preconditioning and guidance live inside `denoise`, so a
  sampler never knows how the network was trained.
- `x` (B, ...): the start, `sigmas[0] * noise` (data in VE scaling: x_sigma = x0 + sigma * eps).
- `sigmas`: 1-D, strictly decreasing, normally ending in 0 (num_steps + 1 entries); see
  schedules.py for grids (`discrete_sigmas`, `karras_sigmas`, `edm_sigmas`).
- `generator` feeds all randomness; `callback(i, x, sigma_next) -> x`, if given, is called after
  each step with sigma_next a 0-d tensor and returns the x to continue from (inpainting replaces
  the known pixels there).

Every sampler first converts the grid to Python floats and computes a step's coefficients on
them, so a step costs only the network call plus two to seven tensor operations (`torch.lerp`
does "x0 + c (x - x0)" in one pass); that is how these loops beat the per-step overhead of
diffusers' schedulers (benchmarks/diffusion_sampler_overhead.py).

`SAMPLERS` maps names to functions, `get_sampler(name)` looks one up and
`network_evaluations(name, num_steps)` counts its denoiser calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from genlab.core.errors import ConfigError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def _grid(x: torch.Tensor, sigmas: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    """Validate a sigma grid; return it as Python floats and as (N + 1, B) per-sample levels."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1:
        raise ConfigError("sigmas must be a 1-D tensor (num_steps + 1,), decreasing, ending in 0")
    if len(sigmas) < 2:
        raise ConfigError(
            f"need at least one step (sigmas with >= 2 entries), got {len(sigmas)} entries; "
            "steps must be >= 1"
        )
    values = sigmas.tolist()
    if not all(math.isfinite(s) for s in values) or values[-1] < 0:
        raise ConfigError(f"sigmas must be finite and >= 0, got {values}")
    if any(b >= a for a, b in zip(values[:-1], values[1:], strict=False)):
        raise ConfigError(f"sigmas must be strictly decreasing, got {values}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ConfigError(f"x must be a batch (B, ...), got shape {tuple(x.shape)}")
    # One (B,) view per level, built once: the denoiser gets a per-sample sigma for free.
    per_sample = sigmas.to(dtype=x.dtype, device=x.device)[:, None].expand(-1, x.shape[0])
    return values, per_sample


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _after(callback: Callback | None, i: int, x: torch.Tensor, sigmas: torch.Tensor):
    return x if callback is None else callback(i, x, sigmas[i + 1])


def _ancestral(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """Split a step sigma -> sigma_next into a deterministic move to sigma_down and fresh noise
    of std sigma_up (sigma_down^2 + sigma_up^2 = sigma_next^2). eta = 1 gives the DDPM posterior
    q(x_next | x, x0) (Ho et al. 2020, eq. 7), eta = 0 the DDIM ODE step."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
    up = min(up, sigma_next)
    return math.sqrt(sigma_next**2 - up**2), up


# ---------------------------------------------------------------------------------------------
# Ancestral and DDIM


def ddim(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) in VE scaling.

    x_next = x0 + sigma_down * (x - x0) / sigma + sigma_up * z, with sigma_up = eta *
    sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2): eta = 0 is the deterministic DDIM
    (the first-order exponential integrator of the probability-flow ODE), eta = 1 ancestral DDPM.
    Matches diffusers' DDIMScheduler (set_alpha_to_one, no clipping) step for step.
    """
    if eta < 0:
        raise ConfigError(f"eta must be >= 0, got {eta}")
    values, per_sample = _grid(x, sigmas)
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        x0 = denoise(x, per_sample[i])
        down, up = _ancestral(sigma, sigma_next, eta)
        x = torch.lerp(x0, x, down / sigma)
        if up > 0:
            x = x.add_(_noise(x, generator), alpha=up)
        x = _after(callback, i, x, sigmas)
    return x


def ddpm(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2): each step draws from the Gaussian
    posterior q(x_next | x, x0 = x0_hat) with its "fixed small" variance, i.e. DDIM with eta = 1.

    In VE scaling the posterior mean is x0 + (sigma_next / sigma)^2 (x - x0) and its variance
    sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2; with a grid of skipped timesteps this is
    diffusers' DDPMScheduler step (variance_type "fixed_small", no clipping).
    """
    return ddim(denoise, x, sigmas, eta=1.0, generator=generator, callback=callback)


# ---------------------------------------------------------------------------------------------
# Karras et al. 2022 (EDM): Euler and Heun on the probability-flow ODE, with optional churn


def _churn(
    x: torch.Tensor,
    sigma: float,
    num_steps: int,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, float]:
    """EDM Algorithm 2, lines 4-6: raise the noise level to sigma_hat = (1 + gamma) sigma by
    adding fresh noise (gamma = min(S_churn / N, sqrt(2) - 1) inside [S_tmin, S_tmax])."""
    gamma = min(s_churn / num_steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
    if gamma <= 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    scale = s_noise * math.sqrt(sigma_hat**2 - sigma**2)
    return x + scale * _noise(x, generator), sigma_hat


def euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma
    (Karras et al. 2022, Algorithm 2 without the second-order correction); s_churn > 0 adds
    EDM's stochastic churn. Matches diffusers' EulerDiscreteScheduler."""
    values, per_sample = _grid(x, sigmas)
    num_steps = len(values) - 1
    for i in range(num_steps):
        sigma_next = values[i + 1]
        x, sigma_hat = _churn(x, values[i], num_steps, s_churn, s_tmin, s_tmax, s_noise, generator)
        level = per_sample[i] if sigma_hat == values[i] else per_sample[i] * (sigma_hat / values[i])
        x0 = denoise(x, level)
        # x + (sigma_next - sigma_hat) (x - x0) / sigma_hat, written as one interpolation
        x = torch.lerp(x0, x, sigma_next / sigma_hat)
        x = _after(callback, i, x, sigmas)
    return x


def heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022, EDM
    Algorithm 2), with the last step (to sigma = 0) a plain Euler step, so N steps cost 2N - 1
    network evaluations. s_churn > 0 adds EDM's stochastic churn. Matches diffusers'
    HeunDiscreteScheduler step for step."""
    values, per_sample = _grid(x, sigmas)
    num_steps = len(values) - 1
    for i in range(num_steps):
        sigma_next = values[i + 1]
        x, sigma_hat = _churn(x, values[i], num_steps, s_churn, s_tmin, s_tmax, s_noise, generator)
        level = per_sample[i] if sigma_hat == values[i] else per_sample[i] * (sigma_hat / values[i])
        x0 = denoise(x, level)
        if sigma_next == 0:
            x = x0  # Euler to sigma = 0 lands on the denoised estimate
        else:
            dt = sigma_next - sigma_hat
            d = (x - x0).div_(sigma_hat)
            x_euler = torch.add(x, d, alpha=dt)
            d_next = (x_euler - denoise(x_euler, per_sample[i + 1])).div_(sigma_next)
            x = torch.add(x, d.add_(d_next), alpha=dt / 2)
        x = _after(callback, i, x, sigmas)
    return x


# ---------------------------------------------------------------------------------------------
# DPM-Solver++ (Lu et al. 2022, "DPM-Solver++"): exponential integrators in lambda = -log sigma


def dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the
    probability-flow ODE in data prediction, one network evaluation per step.

    The first step and the step to sigma = 0 are first order (DDIM); the others extrapolate the
    denoised estimate linearly in lambda = -log sigma from the previous step's. Matches
    diffusers' DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
    solver_type="midpoint", final_sigmas_type="zero").
    """
    return _dpmpp_2m(denoise, x, sigmas, generator, callback, sde=False)


def dpmpp_2m_sde(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", section 5 and appendix): the
    second-order multistep solver of the reverse diffusion SDE in data prediction, one network
    evaluation per step. Each step contracts x by (sigma_next / sigma)^2 toward the extrapolated
    denoised estimate and adds fresh noise of std sigma_next sqrt(1 - (sigma_next / sigma)^2),
    so it corrects part of the model's error as ancestral sampling does, where the ODE solvers
    carry it to the end.

    The first step and the step to sigma = 0 are first order; the others extrapolate the
    denoised estimate as `dpmpp_2m` (midpoint form). Matches diffusers'
    DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=2,
    solver_type="midpoint", final_sigmas_type="zero") given the same noise.
    """
    return _dpmpp_2m(denoise, x, sigmas, generator, callback, sde=True)


def _dpmpp_2m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator | None,
    callback: Callback | None,
    *,
    sde: bool,
) -> torch.Tensor:
    """The loop of `dpmpp_2m` (sde=False) and `dpmpp_2m_sde` (sde=True): the same multistep
    extrapolation of the denoised estimate; the ODE step keeps exp(-h) of x, the SDE step
    exp(-2h) plus fresh noise."""
    values, per_sample = _grid(x, sigmas)
    previous: torch.Tensor | None = None
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        x0 = denoise(x, per_sample[i])
        x0_d = x0
        if previous is not None and sigma_next > 0:
            h = math.log(sigma / sigma_next)
            r = math.log(values[i - 1] / sigma) / h
            # (1 + 1/(2r)) x0 - 1/(2r) x0_previous
            x0_d = torch.lerp(x0, previous, -1 / (2 * r))
        ratio = sigma_next / sigma  # exp(-h)
        if not sde:
            # (sigma_next / sigma) x - expm1(-h) x0_d
            x = torch.lerp(x0_d, x, ratio)
        elif sigma_next == 0:
            x = x0
        else:
            x = torch.lerp(x0_d, x, ratio**2)
            x = x.add_(_noise(x, generator), alpha=sigma_next * math.sqrt(1 - ratio**2))
        previous = x0
        x = _after(callback, i, x, sigmas)
    return x


def dpmpp_3m(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022, third-order multistep, data prediction).

    Orders ramp up 1, 2, 3 over the first steps; the step to sigma = 0 is first order and, with
    fewer than 15 steps, the one before it second order (diffusers' lower_order_final, which
    keeps few-step sampling stable). Matches diffusers' DPMSolverMultistepScheduler(
    algorithm_type="dpmsolver++", solver_order=3, final_sigmas_type="zero").
    """
    values, per_sample = _grid(x, sigmas)
    num_steps = len(values) - 1
    history: list[torch.Tensor] = []  # denoised estimates of the last steps, newest last
    for i in range(num_steps):
        sigma, sigma_next = values[i], values[i + 1]
        x0 = denoise(x, per_sample[i])
        history = (history + [x0])[-3:]
        order = min(len(history), 3)
        if sigma_next == 0:
            order = 1
        elif i == num_steps - 2 and num_steps < 15:
            order = min(order, 2)
        ratio = sigma_next / sigma
        if order == 1:
            x = torch.lerp(x0, x, ratio)
        elif order == 2:
            h = math.log(sigma / sigma_next)
            r0 = math.log(values[i - 1] / sigma) / h
            x = torch.lerp(torch.lerp(x0, history[-2], -1 / (2 * r0)), x, ratio)
        else:
            h = math.log(sigma / sigma_next)
            r0 = math.log(values[i - 1] / sigma) / h
            r1 = math.log(values[i - 2] / values[i - 1]) / h
            phi1 = math.expm1(-h)
            k0, k1, k2 = -phi1, phi1 / h + 1, -((phi1 + h) / h**2 - 0.5)
            # D1 = D1_0 + r0/(r0+r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r0+r1), with
            # D1_0 = (m0 - m1)/r0 and D1_1 = (m1 - m2)/r1, expanded into weights on m0, m1, m2.
            a, b, c = 1 / r0, 1 / r1, r0 / (r0 + r1)
            w0 = k0 + k1 * a * (1 + c) + k2 * a / (r0 + r1)
            w1 = -k1 * (a + c * (a + b)) - k2 * (a + b) / (r0 + r1)
            w2 = k1 * c * b + k2 * b / (r0 + r1)
            x = x * ratio + w0 * x0
            x = x.add_(history[-2], alpha=w1).add_(history[-3], alpha=w2)
        x = _after(callback, i, x, sigmas)
    return x


def dpmpp_2s(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1 with r = 1/2): a second-order singlestep
    solver; each step takes a DDIM half-step to sigma_mid = sqrt(sigma sigma_next) (the midpoint
    in lambda) and the full step with the denoised estimate there. The step to sigma = 0 is first
    order, so N steps cost 2N - 1 network evaluations."""
    values, per_sample = _grid(x, sigmas)
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        x0 = denoise(x, per_sample[i])
        if sigma_next == 0:
            x = x0
        else:
            sigma_mid = math.sqrt(sigma * sigma_next)
            x_mid = torch.lerp(x0, x, sigma_mid / sigma)
            x0_mid = denoise(x_mid, per_sample[i] * (sigma_mid / sigma))
            x = torch.lerp(x0_mid, x, sigma_next / sigma)
        x = _after(callback, i, x, sigmas)
    return x


# ---------------------------------------------------------------------------------------------
# Score SDE (Song et al. 2021, "Score-based generative modeling through SDEs")


def euler_maruyama(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Euler-Maruyama on the reverse-time SDE dx = -d[sigma^2] score dt + sqrt(d[sigma^2]) dw
    (Song et al. 2021, eq. 6, VE form; a VP model in VE scaling is the same process):

        x_next = x + (sigma^2 - sigma_next^2) score + sqrt(sigma^2 - sigma_next^2) z,

    with score = (x0_hat - x) / sigma^2 (Tweedie). The step to sigma = 0 returns the noise-free
    mean, x0_hat (the paper's "denoise at the last step")."""
    values, per_sample = _grid(x, sigmas)
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        x0 = denoise(x, per_sample[i])
        # x + (1 - sigma_next^2 / sigma^2) (x0 - x)
        x = torch.lerp(x0, x, (sigma_next / sigma) ** 2)
        if sigma_next > 0:
            x = x.add_(_noise(x, generator), alpha=math.sqrt(sigma**2 - sigma_next**2))
        x = _after(callback, i, x, sigmas)
    return x


def pc(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    snr: float = 0.16,
    corrector_steps: int = 1,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Algorithms 2 and 4, VE SDE).

    At each level, `corrector_steps` Langevin steps x += eps score + sqrt(2 eps) z, then the
    reverse-diffusion predictor (an Euler-Maruyama step, as `euler_maruyama`). The paper sets
    eps = 2 (snr ||z|| / ||score||)^2 with norms averaged over the batch; here eps = 2 (snr
    sigma)^2, the value that rule takes where noise dominates the score (||score||^2 ~ d /
    sigma^2, ||z||^2 ~ d). Per-sample norms would be unstable in low dimensions (a small score
    norm gives a huge step) and batch norms make a sample depend on its batch; this step is
    neither. N steps cost N (1 + corrector_steps) network evaluations.
    """
    if snr <= 0:
        raise ConfigError(f"snr must be > 0, got {snr}")
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, int):
        raise ConfigError(f"corrector_steps must be an integer >= 0, got {corrector_steps!r}")
    if corrector_steps < 0:
        raise ConfigError(f"corrector_steps must be >= 0, got {corrector_steps}")
    values, per_sample = _grid(x, sigmas)
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        step = 2 * (snr * sigma) ** 2
        for _ in range(corrector_steps):
            # x + step * (x0 - x) / sigma^2 + sqrt(2 step) z
            x = torch.lerp(x, denoise(x, per_sample[i]), step / sigma**2)
            x = x.add_(_noise(x, generator), alpha=math.sqrt(2 * step))
        x0 = denoise(x, per_sample[i])
        x = torch.lerp(x0, x, (sigma_next / sigma) ** 2)
        if sigma_next > 0:
            x = x.add_(_noise(x, generator), alpha=math.sqrt(sigma**2 - sigma_next**2))
        x = _after(callback, i, x, sigmas)
    return x


def ode(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """The probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Song et al. 2021, eq. 13
    in Karras et al.'s VE form) integrated with the classical fourth-order Runge-Kutta method on
    the sigma grid. The step to sigma = 0, where the right-hand side is singular, is an Euler
    step (it lands on x0_hat), so N steps cost 4N - 3 network evaluations."""
    values, per_sample = _grid(x, sigmas)

    def slope(x_: torch.Tensor, level: torch.Tensor, sigma: float) -> torch.Tensor:
        return (x_ - denoise(x_, level)).div_(sigma)

    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        if sigma_next == 0:
            x = denoise(x, per_sample[i])
        else:
            dt = sigma_next - sigma
            mid = (sigma + sigma_next) / 2
            level_mid = per_sample[i] * (mid / sigma)
            k1 = slope(x, per_sample[i], sigma)
            k2 = slope(torch.add(x, k1, alpha=dt / 2), level_mid, mid)
            k3 = slope(torch.add(x, k2, alpha=dt / 2), level_mid, mid)
            k4 = slope(torch.add(x, k3, alpha=dt), per_sample[i + 1], sigma_next)
            x = x + (dt / 6) * (k1 + 2 * (k2 + k3) + k4)
        x = _after(callback, i, x, sigmas)
    return x


# ---------------------------------------------------------------------------------------------
# Registry

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "dpmpp_2s": dpmpp_2s,
    "dpmpp_3m": dpmpp_3m,
    "euler": euler,
    "heun": heun,
    "euler_maruyama": euler_maruyama,
    "pc": pc,
    "ode": ode,
}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler registered under `name`; ConfigError listing the choices otherwise."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown sampler {name!r}; choose one of {', '.join(sorted(SAMPLERS))}"
        ) from None


def network_evaluations(name: str, num_steps: int, *, corrector_steps: int = 1) -> int:
    """Denoiser calls of sampler `name` over `num_steps` steps on a grid ending in sigma = 0
    (without churn, which costs nothing extra). `corrector_steps` applies to "pc"."""
    get_sampler(name)
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"steps must be an integer >= 1, got {num_steps!r}")
    if name in ("heun", "dpmpp_2s"):
        return 2 * num_steps - 1
    if name == "ode":
        return 4 * num_steps - 3
    if name == "pc":
        return num_steps * (1 + corrector_steps)
    return num_steps
