"""Noise schedules for diffusion models, all expressed as a noise level sigma.

genlab keeps data in "variance exploding" (VE) scaling, as in Karras et al. 2022 (EDM) and
k-diffusion: a noisy sample is `x_sigma = x0 + sigma * eps`. A discrete "variance preserving" (VP)
model of Ho et al. 2020 (DDPM) sees `x_vp = sqrt(a) * x0 + sqrt(1 - a) * eps` with `a` the cumulative
product of `1 - beta`; the two are the same process up to the scale `x_vp = sqrt(a) * x_sigma` with
`sigma = sqrt((1 - a) / a)`. So a model trained on a discrete VP schedule and a continuous EDM model
are sampled by the same samplers (samplers.py) given a decreasing grid of sigmas ending in 0.

This file holds:
- beta schedules for discrete VP training (`beta_schedule`: the ONE place that switches on a
  schedule name; linear as DDPM, cosine as Nichol & Dhariwal 2021, scaled_linear as Stable
  Diffusion), and `alphas_cumprod` / `training_sigmas` built on it;
- conversions sigma <-> alpha_cumprod, VE <-> VP scaling of x, sigma <-> continuous timestep t;
- sampling grids: the discrete timesteps of a training grid with diffusers' spacings
  ("leading", "trailing", "linspace"), Karras et al.'s rho-spaced sigmas, and the EDM range;
- EDM's training-time sigma distribution and network preconditioning.

All schedule tensors are float64: the coefficients of a sampler are computed once from them, so
the extra precision costs nothing per step and keeps samplers equal to their references to 1e-5.
"""

from __future__ import annotations

import math

import torch

from genlab.core.errors import ConfigError

BETA_SCHEDULES = ("linear", "cosine", "scaled_linear")
SPACINGS = ("leading", "trailing", "linspace")

# EDM (Karras et al. 2022, Table 1): the sigma range for sampling and the data standard deviation
# for preconditioning; log-normal training sigmas with these P_mean, P_std.
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_SIGMA_DATA = 0.5
EDM_P_MEAN = -1.2
EDM_P_STD = 1.2


def _check_steps(num_steps: int, what: str = "num_steps") -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {num_steps!r}; pass e.g. steps=20")


def beta_schedule(
    name: str,
    num_train_steps: int = 1000,
    *,
    beta_start: float | None = None,
    beta_end: float | None = None,
) -> torch.Tensor:
    """Betas of a discrete VP diffusion, float64 (T,).

    - "linear": Ho et al. 2020 (DDPM), `linspace(1e-4, 0.02, T)`;
    - "cosine": Nichol & Dhariwal 2021 ("Improved DDPM", eq. 17), alpha_bar(t) =
      cos^2((t/T + s)/(1 + s) * pi/2) with s = 0.008, betas clipped at 0.999
      (diffusers' "squaredcos_cap_v2");
    - "scaled_linear": Rombach et al. 2022 (latent diffusion), betas linear in sqrt from
      0.00085 to 0.012 by default.
    `beta_start` / `beta_end` override the linear and scaled_linear end points.
    """
    _check_steps(num_train_steps, "num_train_steps")
    if name == "linear":
        start = 1e-4 if beta_start is None else beta_start
        end = 0.02 if beta_end is None else beta_end
        # Ho et al.'s values are for T = 1000; keep them as given (as diffusers does) so the
        # schedule is reproducible, whatever T is.
        return torch.linspace(start, end, num_train_steps, dtype=torch.float64)
    if name == "scaled_linear":
        start = 0.00085 if beta_start is None else beta_start
        end = 0.012 if beta_end is None else beta_end
        return torch.linspace(start**0.5, end**0.5, num_train_steps, dtype=torch.float64) ** 2
    if name == "cosine":
        if beta_start is not None or beta_end is not None:
            raise ConfigError("beta_start/beta_end apply to linear schedules only, not 'cosine'")
        s = 0.008
        t = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
        alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ConfigError(f"unknown beta schedule {name!r}; choose one of {', '.join(BETA_SCHEDULES)}")


def alphas_cumprod(name: str, num_train_steps: int = 1000, **options: float) -> torch.Tensor:
    """Cumulative products of 1 - beta for `beta_schedule(name, ...)`, float64 (T,), decreasing."""
    return torch.cumprod(1 - beta_schedule(name, num_train_steps, **options), dim=0)


def sigma_from_alpha_cumprod(alpha_cumprod: torch.Tensor) -> torch.Tensor:
    """sigma = sqrt((1 - a) / a): the VE noise level equal to a VP level a."""
    return ((1 - alpha_cumprod) / alpha_cumprod).sqrt()


def alpha_cumprod_from_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """a = 1 / (1 + sigma^2), the inverse of `sigma_from_alpha_cumprod`."""
    return 1 / (1 + sigma**2)


def training_sigmas(name: str, num_train_steps: int = 1000, **options: float) -> torch.Tensor:
    """The noise levels of a discrete VP schedule, float64 (T,), increasing with the timestep."""
    return sigma_from_alpha_cumprod(alphas_cumprod(name, num_train_steps, **options))


def _per_sample(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a noise level (scalar or (B,)) against x (B, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim)) if sigma.ndim else sigma


def vp_from_ve(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """x_vp = x / sqrt(1 + sigma^2): the input a VP-trained network expects. sigma () or (B,)."""
    return x / (1 + _per_sample(sigma, x) ** 2).sqrt()


def ve_from_vp(x_vp: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """x = x_vp * sqrt(1 + sigma^2), the inverse of `vp_from_ve`. sigma () or (B,)."""
    return x_vp * (1 + _per_sample(sigma, x_vp) ** 2).sqrt()


def sigma_to_t(sigma: torch.Tensor, train_sigmas: torch.Tensor) -> torch.Tensor:
    """Continuous timestep of noise levels: linear interpolation of log sigma over the grid.

    Args:
        sigma: any shape; values beyond the grid are clamped to t = 0 or T - 1.
        train_sigmas: (T,) increasing, e.g. `training_sigmas("linear")`.
    Returns:
        t of sigma's shape and dtype; a sigma on the grid gives back its integer index, so a
        network trained on integer timesteps sees the same inputs (k-diffusion's DiscreteSchedule
        and diffusers' `_sigma_to_t` do the same).
    """
    log_grid = train_sigmas.to(torch.float64).log()
    log_sigma = sigma.to(torch.float64).clamp(min=1e-300).log()
    high = torch.searchsorted(log_grid, log_sigma).clamp(1, len(log_grid) - 1)
    low = high - 1
    w = ((log_sigma - log_grid[low]) / (log_grid[high] - log_grid[low])).clamp(0, 1)
    return (low + w).to(sigma.dtype)


def t_to_sigma(
    t: torch.Tensor, train_sigmas: torch.Tensor, *, interpolation: str = "log"
) -> torch.Tensor:
    """Noise level at continuous timesteps t in [0, T - 1].

    interpolation "log" interpolates log sigma (the exact inverse of `sigma_to_t`); "linear"
    interpolates sigma itself, as diffusers' Euler and Heun schedulers do for fractional
    timesteps. The two agree at integer t.
    """
    if interpolation not in ("log", "linear"):
        raise ConfigError(f"interpolation must be 'log' or 'linear', got {interpolation!r}")
    grid = train_sigmas.to(torch.float64)
    grid = grid.log() if interpolation == "log" else grid
    t64 = t.to(torch.float64).clamp(0, len(grid) - 1)
    low = t64.floor().long().clamp(max=len(grid) - 2)
    w = t64 - low
    value = grid[low] * (1 - w) + grid[low + 1] * w
    return (value.exp() if interpolation == "log" else value).to(t.dtype)


def discrete_timesteps(
    num_steps: int,
    num_train_steps: int = 1000,
    *,
    spacing: str = "leading",
    offset: int = 0,
    rounded: bool = True,
) -> torch.Tensor:
    """Timesteps to sample at, decreasing, float64 (num_steps,), with diffusers' spacings.

    - "leading" (DDIM paper): `arange(N) * (T // N)` reversed, plus `offset`;
    - "trailing" (Lin et al. 2024, "Common diffusion noise schedules are flawed"): from T - 1
      down in steps of T / N, so the first step starts at the last training level;
    - "linspace": `linspace(0, T - 1, N)` reversed.
    `rounded` rounds "linspace" to integers (DDPM/DDIM); diffusers' Euler and Heun keep them
    fractional (rounded=False). DPM-Solver's multistep scheduler takes N + 1 points and drops
    the last: `discrete_timesteps(N + 1, ...)[:-1]` for "leading" and "linspace".
    """
    _check_steps(num_steps)
    _check_steps(num_train_steps, "num_train_steps")
    if num_steps > num_train_steps:
        raise ConfigError(
            f"steps ({num_steps}) exceeds the {num_train_steps} training timesteps; use fewer steps"
        )
    if spacing == "leading":
        ratio = num_train_steps // num_steps
        t = (torch.arange(num_steps, dtype=torch.float64) * ratio).round() + offset
    elif spacing == "trailing":
        ratio = num_train_steps / num_steps
        t = (torch.arange(num_train_steps, 0, -ratio, dtype=torch.float64)).round() - 1
        return t
    elif spacing == "linspace":
        t = torch.linspace(0, num_train_steps - 1, num_steps, dtype=torch.float64)
        t = t.round() if rounded else t
    else:
        raise ConfigError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return t.flip(0)


def discrete_sigmas(
    num_steps: int,
    train_sigmas: torch.Tensor,
    *,
    spacing: str = "leading",
    offset: int = 0,
    rounded: bool = True,
) -> torch.Tensor:
    """Sampling grid from a discrete training grid: sigmas at `discrete_timesteps`, then 0.

    Returns float64 (num_steps + 1,), decreasing, last entry 0 (the clean data: alpha = 1, as
    diffusers' DDIM with set_alpha_to_one and DDPM's final step).
    """
    t = discrete_timesteps(
        num_steps, len(train_sigmas), spacing=spacing, offset=offset, rounded=rounded
    )
    sigmas = t_to_sigma(t, train_sigmas, interpolation="linear")
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(
    num_steps: int, sigma_min: float, sigma_max: float, *, rho: float = 7.0
) -> torch.Tensor:
    """Karras et al. 2022 (EDM, eq. 5): sigma_i = (max^(1/rho) + i/(N-1) (min^(1/rho) -
    max^(1/rho)))^rho for i < N, then 0. float64 (num_steps + 1,), decreasing.

    rho = 7 spends more steps at low noise, where detail is decided. With one step the grid is
    [sigma_max, 0].
    """
    _check_steps(num_steps)
    if not 0 < sigma_min < sigma_max:
        raise ConfigError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    inv_rho_min, inv_rho_max = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (inv_rho_max + ramp * (inv_rho_min - inv_rho_max)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def edm_sigmas(
    num_steps: int,
    *,
    sigma_min: float = EDM_SIGMA_MIN,
    sigma_max: float = EDM_SIGMA_MAX,
    rho: float = 7.0,
) -> torch.Tensor:
    """Karras sigmas over EDM's continuous range [0.002, 80] (num_steps + 1,), last entry 0."""
    return karras_sigmas(num_steps, sigma_min, sigma_max, rho=rho)


def edm_training_sigmas(
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    p_mean: float = EDM_P_MEAN,
    p_std: float = EDM_P_STD,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """EDM training noise levels: log sigma ~ N(P_mean, P_std^2), float32 (B,)."""
    z = torch.randn(batch_size, generator=generator, device=device)
    return (p_mean + p_std * z).exp()


def edm_preconditioning(
    sigma: torch.Tensor, sigma_data: float = EDM_SIGMA_DATA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM preconditioning (Karras et al. 2022, Table 1): D(x, sigma) = c_skip x + c_out
    F(c_in x, c_noise). sigma (B,); returns c_skip, c_out, c_in (B,) and c_noise = log(sigma)/4,
    and the loss weight is 1 / c_out^2."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1 / (s2 + d2).sqrt()
    return c_skip, c_out, c_in, sigma.log() / 4
