"""Langevin samplers for energy functions, as pure functions.

Stochastic gradient Langevin dynamics (Welling & Teh, "Bayesian Learning via Stochastic Gradient
Langevin Dynamics", ICML 2011) on an energy E(x), i.e. a density p(x) ∝ exp(-E(x)):

    x_{t+1} = x_t - step_size * ∇E(x_t) + noise * ε_t,      ε_t ~ N(0, I).

With noise = sqrt(2 * step_size) this is the unadjusted Langevin algorithm, whose stationary
distribution approaches p as step_size -> 0; `metropolis=True` adds the Metropolis-Hastings
correction of MALA (Roberts & Tweedie, "Exponential convergence of Langevin distributions and
their discrete approximations", Bernoulli 1996), which makes p exactly stationary for any step.

Energy-based models of images decouple the two (Du & Mordatch, "Implicit Generation and
Generalization in Energy-Based Models", NeurIPS 2019; Nijkamp et al., "Learning Non-Convergent
Non-Persistent Short-Run MCMC Toward Energy-Based Model", NeurIPS 2019): a large gradient step
(e.g. 10) with small noise (e.g. 0.005), run for a few dozen steps, which samples a much colder
distribution than exp(-E). Both are the same function with different arguments.

Every sampler here has the signature `(energy, x, *, step_size, noise, num_steps, generator,
...) -> x`: `energy` maps a batch (B, ...) to energies (B,).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.core.errors import ConfigError

EnergyFn = Callable[[Tensor], Tensor]


def check_langevin_options(step_size: float, noise: float | None, num_steps: int) -> None:
    """Raise ConfigError unless step_size > 0, noise >= 0 (or None) and num_steps >= 0."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise ConfigError(f"langevin: step_size must be a number, got {step_size!r}")
    if not (math.isfinite(step_size) and step_size > 0):
        raise ConfigError(
            f"langevin: step_size={step_size} must be positive and finite (the gradient step "
            "size); e.g. 0.01 for 2-D points, 10 with noise 0.005 for images"
        )
    if noise is not None and (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float))
        or not math.isfinite(noise)
        or noise < 0
    ):
        raise ConfigError(
            f"langevin: noise={noise!r} must be a finite number >= 0 (the std of the noise per "
            "step), or None for sqrt(2 * step_size)"
        )
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ConfigError(f"langevin: num_steps={num_steps!r} must be an integer >= 0")


def energy_and_grad(energy: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    """E(x) (B,) and ∇_x E(x) (B, ...), detached; gradients reach no parameter of `energy`."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy(x)  # (B,)
        (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    # Draw on the generator's device, so a CPU generator gives the same chain on any device.
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _rand(n: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(n, generator=generator, device=device, dtype=like.dtype).to(like.device)


def langevin(
    energy: EnergyFn,
    x: Tensor,
    *,
    step_size: float,
    noise: float | None = None,
    num_steps: int,
    generator: torch.Generator | None = None,
    bounds: tuple[float, float] | None = None,
    grad_clip: float | None = None,
    metropolis: bool = False,
) -> Tensor:
    """Run `num_steps` Langevin steps from `x` on `energy`; returns the final x (detached).

    Args:
        energy: maps x (B, ...) to E(x) (B,); differentiable in x. Its parameters get no
            gradient (only ∇_x is taken).
        x: the starting points (B, ...).
        step_size: the gradient step; must be positive.
        noise: the std of the Gaussian noise added per step; None means sqrt(2 * step_size),
            which targets exp(-E) itself.
        num_steps: the number of steps (0 returns x).
        generator: the source of every random draw.
        bounds: clamp x into [low, high] after every step (images: (0, 1)); the clamp is not
            part of the Metropolis correction, so do not combine the two.
        grad_clip: clamp every component of ∇E into [-grad_clip, grad_clip] before the step,
            which bounds how far one step moves a pixel (Du & Mordatch clip likewise); None or
            0 leaves gradients alone. Not compatible with `metropolis`.
        metropolis: accept or reject each proposal as MALA does, so that exp(-E) is exactly
            stationary; needs noise = sqrt(2 * step_size) (None).

    Returns:
        x after the last step, shape of the input, detached.
    """
    check_langevin_options(step_size, noise, num_steps)
    if metropolis and noise is not None and not math.isclose(noise, math.sqrt(2 * step_size)):
        raise ConfigError(
            "langevin: metropolis=True corrects the Langevin proposal of exp(-E), whose noise is "
            f"sqrt(2 * step_size) = {math.sqrt(2 * step_size):.4g}; pass noise=None"
        )
    if metropolis and (bounds is not None or grad_clip):
        raise ConfigError(
            "langevin: metropolis=True corrects the plain Langevin proposal; pass bounds=None "
            "and grad_clip=None"
        )
    if grad_clip is not None and not (math.isfinite(grad_clip) and grad_clip >= 0):
        raise ConfigError(f"langevin: grad_clip={grad_clip} must be >= 0 (or None)")
    sigma = math.sqrt(2 * step_size) if noise is None else float(noise)
    x = x.detach()
    if not metropolis:
        for _ in range(num_steps):
            _, grad = energy_and_grad(energy, x)
            if grad_clip:
                grad = grad.clamp(-grad_clip, grad_clip)
            x = x - step_size * grad + sigma * _randn_like(x, generator)
            if bounds is not None:
                x = x.clamp(*bounds)
        return x

    e, grad = energy_and_grad(energy, x)
    dims = tuple(range(1, x.dim()))
    for _ in range(num_steps):
        proposal = x - step_size * grad + sigma * _randn_like(x, generator)
        e_new, grad_new = energy_and_grad(energy, proposal)
        # log q(x | x') - log q(x' | x) for the Gaussian proposal of mean y - step * ∇E(y).
        forward = (proposal - x + step_size * grad).pow(2).sum(dims)
        backward = (x - proposal + step_size * grad_new).pow(2).sum(dims)
        log_accept = e - e_new + (forward - backward) / (4 * step_size)  # (B,)
        accept = _rand(x.shape[0], x, generator).log() < log_accept  # (B,)
        mask = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(mask, proposal, x)
        e = torch.where(accept, e_new, e)
        grad = torch.where(mask, grad_new, grad)
    return x
