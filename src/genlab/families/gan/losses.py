"""GAN objectives and regularizers as small functions on discriminator outputs.

Each loss is a pair of functions of the discriminator's raw scores (logits or critic values),
shape (B,): `disc_*(real_scores, fake_scores)` for the discriminator and `gen_*(fake_scores)`
for the generator. `LOSSES` is the one table that maps a config name onto such a pair.

- non-saturating (Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014, Sec. 3): the
  discriminator minimises the binary cross-entropy -log D(x) - log(1 - D(G(z))); the generator
  minimises -log D(G(z)) instead of log(1 - D(G(z))), which saturates when D wins early.
  With D = sigmoid(s): -log sigmoid(s) = softplus(-s), -log(1 - sigmoid(s)) = softplus(s).
- hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization for
  GANs"): D minimises E[relu(1 - s_real)] + E[relu(1 + s_fake)], G minimises -E[s_fake].
- wasserstein (Arjovsky et al. 2017, "Wasserstein GAN"): the critic minimises
  E[s_fake] - E[s_real] and G minimises -E[s_fake]; the critic must be kept 1-Lipschitz, by the
  gradient penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs") or by
  spectral normalization.

Regularizers take the critic as a callable x -> scores (B,):

- `gradient_penalty`: E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = a x_real + (1 - a) x_fake,
  a ~ U(0, 1) per sample (WGAN-GP, Algorithm 1; the paper's weight is lambda = 10).
- `r1_penalty`: E[||grad_x D(x_real)||_2^2] (Mescheder et al. 2018, "Which Training Methods
  for GANs do actually Converge?"); the loss adds gamma / 2 times it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


def disc_non_saturating(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Binary cross-entropy of D on real (target 1) and fake (target 0) logits; a scalar."""
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def gen_non_saturating(fake_scores: Tensor) -> Tensor:
    """-log D(G(z)) = softplus(-s_fake), the non-saturating generator loss; a scalar."""
    return F.softplus(-fake_scores).mean()


def disc_hinge(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """E[relu(1 - s_real)] + E[relu(1 + s_fake)]; a scalar."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def gen_hinge(fake_scores: Tensor) -> Tensor:
    """-E[s_fake], the generator side of the hinge loss; a scalar."""
    return -fake_scores.mean()


def disc_wasserstein(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """E[s_fake] - E[s_real]: minus the critic's estimate of the Wasserstein-1 distance."""
    return fake_scores.mean() - real_scores.mean()


def gen_wasserstein(fake_scores: Tensor) -> Tensor:
    """-E[s_fake]; a scalar."""
    return -fake_scores.mean()


#: config name -> (discriminator loss, generator loss); the only switch on loss names.
LOSSES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "non_saturating": (disc_non_saturating, gen_non_saturating),
    "hinge": (disc_hinge, gen_hinge),
    "wasserstein": (disc_wasserstein, gen_wasserstein),
}


def _input_gradients(critic: Critic, x: Tensor) -> Tensor:
    """d sum(critic(x)) / dx with a graph, so a penalty on it trains the critic; (B, D)."""
    x = x.detach().requires_grad_(True)
    scores = critic(x)  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.flatten(1)  # (B, D)


def gradient_penalty(
    critic: Critic, real: Tensor, fake: Tensor, *, alpha: Tensor | None = None
) -> Tensor:
    """WGAN-GP penalty E[(||grad D(x_hat)||_2 - 1)^2] (Gulrajani et al. 2017, Algorithm 1).

    Args:
        critic: x (B, *shape) -> scores (B,).
        real: real samples (B, *shape).
        fake: generated samples (B, *shape); detached here, so the penalty trains the critic only.
        alpha: interpolation weights (B,) in [0, 1]; drawn from U(0, 1) with the global RNG
            (which the training loop seeds and checkpoints) when None.

    Returns:
        The penalty, a scalar; multiply by lambda (10 in the paper).
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    a = alpha.reshape(-1, *([1] * (real.dim() - 1)))  # (B, 1, ...)
    x_hat = a * real.detach() + (1.0 - a) * fake.detach()  # (B, *shape)
    norms = _input_gradients(critic, x_hat).norm(dim=1)  # (B,)
    return (norms - 1.0).pow(2).mean()


def r1_penalty(critic: Critic, real: Tensor) -> Tensor:
    """R1 penalty E[||grad_x D(x_real)||_2^2] (Mescheder et al. 2018); the loss adds gamma/2 x it.

    Args:
        critic: x (B, *shape) -> scores (B,).
        real: real samples (B, *shape).

    Returns:
        The penalty, a scalar.
    """
    return _input_gradients(critic, real).pow(2).sum(dim=1).mean()
