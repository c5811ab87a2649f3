"""Energy-based model: a neural energy trained by contrastive divergence with SGLD negatives.

A network E_θ(x) -> R defines the unnormalized density p_θ(x) ∝ exp(-E_θ(x)). The gradient of
the negative log-likelihood is E_data[∇E_θ(x)] - E_model[∇E_θ(x)]; the model expectation is
estimated with short-run stochastic gradient Langevin dynamics (langevin.py) started from a
replay buffer of earlier negatives, 5% of them restarted from noise each update (Du & Mordatch,
"Implicit Generation and Generalization in Energy-Based Models", NeurIPS 2019; the short-run
view is Nijkamp et al., "Learning Non-Convergent Non-Persistent Short-Run MCMC Toward
Energy-Based Model", NeurIPS 2019). The loss handed to the one training loop is

    loss = mean E(x+) - mean E(x-.detach()) + α · mean(E(x+)² + E(x-)²) + γ · mean ||∇_x E(x+)||²

with the energy-magnitude regularizer α of Du & Mordatch and an optional gradient penalty γ;
`spectral_norm` divides every weight by its largest singular value (Miyato et al. 2018), the
other stabilizer Du & Mordatch use.

The replay buffer advances inside `loss` on the global RNG, which the training loop seeds and
checkpoints, and is saved with the weights (`export_state`), so a resumed run continues from
the same chains. It is kept out of the module's `state_dict` so that a weight EMA never
averages it.

An EBM has no normalized likelihood: `log_likelihood` raises `NoLikelihoodError`;
`energy(x)` (= `anomaly_score(x)`) gives the unnormalized -log density up to a constant, which
ranks inputs (higher energy = less typical) but is not comparable across models.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genlab.core.contract import (
    Batch,
    DataSpec,
    LogLikelihood,
    LossOutput,
    NeuralModel,
    NoLikelihoodError,
)
from genlab.core.errors import CheckpointError, ConfigError, DataError
from genlab.core.registry import register
from genlab.families.ebm.langevin import check_langevin_options, energy_and_grad, langevin
from genlab.nn.mlp import activation_layer

Architecture = Literal["auto", "mlp", "conv"]
Activation = Literal["silu", "relu", "gelu", "tanh"]
Init = Literal["noise", "buffer"]

BUFFER_KEY = "replay_buffer"  # the replay buffer's name in export_state
SCORE_CHUNK = 1024  # inputs per forward pass in `energy`
# Defaults of step_size / noise when the config leaves them None: Du & Mordatch's image
# settings (a cold, fast sampler), and plain Langevin sqrt(2 * step) for points and rows.
IMAGE_STEP_SIZE, IMAGE_NOISE, IMAGE_GRAD_CLIP = 10.0, 0.005, 0.03
VECTOR_STEP_SIZE = 0.01


@dataclass(frozen=True)
class EBMConfig:
    """Configuration of `EBM` (the `model:` section of a run's YAML, field for field).

    Args:
        architecture: "mlp" (any vector data), "conv" (images: one stride-2 4x4 convolution
            per `conv_channels` entry, then a linear read-out) or "auto": conv for images, mlp
            otherwise.
        hidden: widths of the MLP's hidden layers (mlp only).
        conv_channels: channels of the conv stages (conv only).
        activation: "silu" (swish, as Du & Mordatch), "relu", "gelu" or "tanh".
        spectral_norm: spectrally normalize every layer's weight.
        energy_reg: α, weight of the energy-magnitude regularizer E(x+)² + E(x-)².
        grad_penalty: γ, weight of the gradient penalty ||∇_x E(x+)||² on data (0 turns it off).
        sgld_steps: Langevin steps per training update (from the replay buffer).
        step_size: the Langevin gradient step; None picks 10 for images, 0.01 otherwise.
        noise: the std of the Langevin noise per step; None picks 0.005 for images and
            sqrt(2 * step_size) (the Langevin value, sampling exp(-E)) otherwise.
        sgld_grad_clip: clamp each component of ∇_x E to [-c, c] in every Langevin step (so a
            step of size 10 moves a pixel at most 10 c); None picks 0.03 for images and no
            clamp otherwise; 0 turns it off.
        buffer_size: negatives kept in the replay buffer.
        reinit_prob: share of each batch's chains restarted from noise instead of the buffer.
        init_std: std of the Gaussian noise that chains of non-image data start from (data
            units); images start from uniform noise in [0, 1].
    """

    architecture: Architecture = "auto"
    hidden: tuple[int, ...] = (256, 256)
    conv_channels: tuple[int, ...] = (32, 64, 64)
    activation: Activation = "silu"
    spectral_norm: bool = False
    energy_reg: float = 1.0
    grad_penalty: float = 0.0
    sgld_steps: int = 60
    step_size: float | None = None
    noise: float | None = None
    sgld_grad_clip: float | None = None
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    init_std: float = 1.0

    def __post_init__(self) -> None:
        for key, kind in (("architecture", Architecture), ("activation", Activation)):
            choices = get_args(kind)
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"ebm.{key}={getattr(self, key)!r} is not one of "
                    f"{', '.join(map(repr, choices))}: pick one of those"
                )
        if not self.hidden or any(w < 1 for w in self.hidden):
            raise ConfigError(f"ebm.hidden={self.hidden}: give one or more positive widths")
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            raise ConfigError(
                f"ebm.conv_channels={self.conv_channels}: give one or more positive channel "
                "counts, e.g. [32, 64, 64]"
            )
        for key in ("energy_reg", "grad_penalty"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"ebm.{key}={value}: set it to 0 or more")
        if self.sgld_steps < 1:
            raise ConfigError(f"ebm.sgld_steps={self.sgld_steps}: set it to 1 or more, e.g. 60")
        if self.step_size is not None and not (
            math.isfinite(self.step_size) and self.step_size > 0
        ):
            raise ConfigError(
                f"ebm.step_size={self.step_size}: the Langevin step must be positive, e.g. 10 "
                "for images or 0.01 for points (or leave it unset)"
            )
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"ebm.noise={self.noise}: set it to 0 or more (or leave it unset)")
        if self.sgld_grad_clip is not None and not (
            math.isfinite(self.sgld_grad_clip) and self.sgld_grad_clip >= 0
        ):
            raise ConfigError(
                f"ebm.sgld_grad_clip={self.sgld_grad_clip}: set it to 0 (off) or more, e.g. 0.03"
            )
        if self.buffer_size < 1:
            raise ConfigError(f"ebm.buffer_size={self.buffer_size}: set it to 1 or more")
        if not 0.0 <= self.reinit_prob <= 1.0:
            raise ConfigError(f"ebm.reinit_prob={self.reinit_prob}: set it in [0, 1], e.g. 0.05")
        if not (math.isfinite(self.init_std) and self.init_std > 0):
            raise ConfigError(f"ebm.init_std={self.init_std}: set it above 0, e.g. 1.0")


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(layer) if enabled else layer


class MLPEnergy(nn.Module):
    """E(x) for vectors: x (B, *shape) flattened -> (B,)."""

    def __init__(self, config: EBMConfig, spec: DataSpec) -> None:
        super().__init__()
        widths = (spec.num_dims, *config.hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(widths[:-1], widths[1:]):
            layers += [
                _maybe_sn(nn.Linear(d_in, d_out), config.spectral_norm),
                activation_layer(config.activation),
            ]
        layers.append(_maybe_sn(nn.Linear(widths[-1], 1), config.spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)  # (B,)


class ConvEnergy(nn.Module):
    """E(x) for images: x (B, C, H, W) in [0, 1] -> (B,), via stride-2 convolutions."""

    def __init__(self, config: EBMConfig, spec: DataSpec) -> None:
        super().__init__()
        c, h, w = spec.shape
        sn = config.spectral_norm
        layers: list[nn.Module] = []
        for c_in, c_out in zip((c, *config.conv_channels[:-1]), config.conv_channels):
            layers += [
                _maybe_sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), sn),
                activation_layer(config.activation),
            ]
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = _maybe_sn(nn.Linear(config.conv_channels[-1] * h * w, 1), sn)

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(2 * x - 1)  # (B, F), inputs centred to [-1, 1]
        return self.head(h).squeeze(-1)  # (B,)


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block (spectral norm stops its power iterations), then restored."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@register(
    "ebm",
    EBMConfig,
    "energy-based model: conv/MLP energy, contrastive divergence with SGLD and a replay buffer",
)
class EBM(NeuralModel):
    """Energy-based model trained with SGLD negatives from a replay buffer (Du & Mordatch 2019).

    Args:
        config: the `EBMConfig`.
        spec: the data spec: images (C, H, W) in [0, 1], or vectors (D,) in data units.
    """

    def __init__(self, config: EBMConfig, spec: DataSpec) -> None:
        super().__init__()
        if spec.modality == "text":
            raise ConfigError(
                f"ebm models images and vectors, but {spec.name or 'this data'} is text (token "
                "ids): use an autoregressive model such as gpt or charrnn"
            )
        is_image = spec.modality == "image" and len(spec.shape) == 3
        architecture = config.architecture
        if architecture == "auto":
            architecture = "conv" if is_image else "mlp"
        if architecture == "conv" and not is_image:
            raise ConfigError(
                f"ebm.architecture='conv' needs images (C, H, W), but {spec.name or 'this data'}"
                f" is {spec.modality} with shape {spec.shape}: set architecture: mlp"
            )
        if architecture == "conv":
            scale = 2 ** len(config.conv_channels)
            if min(spec.shape[1:]) < scale:
                raise ConfigError(
                    f"ebm.conv_channels={config.conv_channels} halves the image "
                    f"{len(config.conv_channels)} times, too often for {spec.shape[1:]}: "
                    "give fewer entries"
                )
        self.config = config
        self.spec = spec
        self.architecture = architecture
        self.is_image = is_image
        self.net = ConvEnergy(config, spec) if architecture == "conv" else MLPEnergy(config, spec)
        # Replay buffer (N, *shape), empty until the first update; see the module docstring.
        self.register_buffer("replay", torch.empty(0, *spec.shape), persistent=False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- energies --------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """E(x): x (B, *spec.shape) -> (B,), with gradients (for training and Langevin)."""
        return self.net(x)

    @torch.no_grad()
    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -log p(x) + const per input, float32 (B,) on x's device; no gradients.

        Lower is more typical of the training data. The constant (log Z) is unknown, so
        energies rank inputs of one model but are not log-likelihoods.
        """
        xs = self._check_x(x, "ebm energy")
        with _evaluating(self):
            parts = [self.net(xs[i : i + SCORE_CHUNK]) for i in range(0, xs.shape[0], SCORE_CHUNK)]
        out = torch.cat(parts) if parts else torch.empty(0, device=self.device)
        return out.float().to(x.device)

    def anomaly_score(self, x: Tensor) -> Tensor:
        """Anomaly score per input (B,): the energy, higher = less typical."""
        return self.energy(x)

    def _check_x(self, x: Tensor, where: str) -> Tensor:
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"{where}: x has sample shape {tuple(x.shape[1:])}, but this ebm models "
                f"{self.spec.shape}"
            )
        xs = x.to(self.device, torch.float32)
        if not bool(torch.isfinite(xs).all()):
            raise DataError(f"{where}: x holds NaN or infinite values")
        return xs

    # ---- Langevin --------------------------------------------------------------------------

    def langevin_settings(
        self, step_size: float | None = None, noise: float | None = None
    ) -> tuple[float, float | None]:
        """(step_size, noise) with None filled in from the config, then the modality default."""
        step = step_size if step_size is not None else self.config.step_size
        sigma = noise if noise is not None else self.config.noise
        if step is None:
            step = IMAGE_STEP_SIZE if self.is_image else VECTOR_STEP_SIZE
        if sigma is None and self.is_image:
            sigma = IMAGE_NOISE
        return step, sigma  # a None noise is sqrt(2 * step): Langevin proper

    def _grad_clip(self) -> float | None:
        clip = self.config.sgld_grad_clip
        if clip is None:
            return IMAGE_GRAD_CLIP if self.is_image else None
        return clip or None

    def _bounds(self) -> tuple[float, float] | None:
        return (0.0, 1.0) if self.spec.modality == "image" else None

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        """Chain starts (n, *shape): uniform [0, 1] for images, N(0, init_std²) otherwise."""
        device = generator.device if generator is not None else self.device
        shape = (n, *self.spec.shape)
        if self.spec.modality == "image":
            x = torch.rand(shape, generator=generator, device=device)
        else:
            x = self.config.init_std * torch.randn(shape, generator=generator, device=device)
        return x.to(self.device)

    @torch.no_grad()
    def _negatives(self, n: int) -> Tensor:
        """n negatives: replay-buffer chains (reinit_prob of them fresh noise) moved by SGLD.

        Draws use the global RNG (seeded and checkpointed by the training loop); the moved
        chains are written back to the buffer.
        """
        if self.replay.shape[0] == 0:
            self.replay = self._noise(self.config.buffer_size, None)
        rows = torch.randint(0, self.replay.shape[0], (n,), device=self.device)
        start = self.replay[rows]  # (n, *shape)
        fresh = torch.rand(n, device=self.device) < self.config.reinit_prob
        start = torch.where(
            fresh.view(-1, *([1] * len(self.spec.shape))), self._noise(n, None), start
        )
        step, sigma = self.langevin_settings()
        x_neg = langevin(
            self.net,
            start,
            step_size=step,
            noise=sigma,
            num_steps=self.config.sgld_steps,
            bounds=self._bounds(),
            grad_clip=self._grad_clip(),
        )
        self.replay[rows] = x_neg
        return x_neg

    # ---- the contract ----------------------------------------------------------------------

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Contrastive divergence with SGLD negatives, plus the energy and gradient penalties.

        Logs: "energy_data", "energy_negative" (batch means), "cd" (their difference; near 0
        when the sampler keeps up with the model) and, when grad_penalty > 0, "grad_penalty"
        (mean ||∇_x E(x+)||²).
        """
        if key != "main":
            raise ConfigError(f"ebm has one loss key, 'main'; got {key!r}")
        x_pos = self._check_x(batch.x, "ebm loss")  # (B, *shape)
        x_neg = self._negatives(x_pos.shape[0])  # (B, *shape), detached
        if self.config.grad_penalty > 0:
            x_pos = x_pos.detach().requires_grad_(True)
        e = self.net(torch.cat([x_pos, x_neg]))  # (2B,)
        e_pos, e_neg = e.chunk(2)
        cd = e_pos.mean() - e_neg.mean()
        loss = cd + self.config.energy_reg * (e_pos.pow(2) + e_neg.pow(2)).mean()
        stats = [e_pos.detach().mean(), e_neg.detach().mean(), cd.detach()]
        names = ["energy_data", "energy_negative", "cd"]
        if self.config.grad_penalty > 0:
            (grad,) = torch.autograd.grad(e_pos.sum(), x_pos, create_graph=True)
            penalty = grad.flatten(1).pow(2).sum(-1).mean()
            loss = loss + self.config.grad_penalty * penalty
            stats.append(penalty.detach())
            names.append("grad_penalty")
        return LossOutput(loss, dict(zip(names, torch.stack(stats).tolist())))

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        steps: int | None = None,
        step_size: float | None = None,
        noise: float | None = None,
        init: Init = "noise",
    ) -> Tensor:
        """Langevin dynamics on the energy; float32 (N, *spec.shape).

        Args:
            num_samples: N chains.
            generator: the source of every random draw (starts, buffer rows, noise).
            cond: not supported (the ebm is unconditional); must be None.
            steps: Langevin steps (default: the training's `sgld_steps`).
            step_size: the gradient step (default: the config's, see `EBMConfig`); must be
                positive.
            noise: the noise std per step (default: the config's); 0 is plain gradient descent
                on the energy.
            init: "noise" starts from noise (short-run MCMC, Nijkamp et al. 2019); "buffer"
                from rows of the trained model's replay buffer (Du & Mordatch 2019), which
                hold chains that ran through training and look best.

        Returns:
            Samples in the data set's space; images in [0, 1].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if cond:
            raise ConfigError("ebm is unconditional: sample without cond")
        if init not in get_args(Init):
            raise ConfigError(f"ebm sample: init={init!r} is not one of 'noise', 'buffer'")
        num_steps = self.config.sgld_steps if steps is None else steps
        step, sigma = self.langevin_settings(step_size, noise)
        check_langevin_options(step, sigma, num_steps)
        if init == "buffer":
            if self.replay.shape[0] == 0:
                raise ConfigError(
                    "ebm sample: init='buffer' needs a trained model's replay buffer, and this "
                    "one is empty: train first, or sample with init='noise'"
                )
            device = generator.device if generator is not None else self.device
            rows = torch.randint(
                0, self.replay.shape[0], (num_samples,), generator=generator, device=device
            )
            x = self.replay[rows.to(self.device)]
        else:
            x = self._noise(num_samples, generator)
        with _evaluating(self):
            x = langevin(
                self.net,
                x,
                step_size=step,
                noise=sigma,
                num_steps=num_steps,
                generator=generator,
                bounds=self._bounds(),
                grad_clip=self._grad_clip(),
            )
        return x.float()

    def log_likelihood(
        self, x: Tensor, *, cond: dict[str, Tensor] | None = None, **options
    ) -> LogLikelihood:
        """An EBM's density exp(-E(x)) / Z has an unknown normalizer Z: always raises.

        Raises:
            NoLikelihoodError: use `energy(x)` / `anomaly_score(x)` to rank inputs, or judge
                samples with FID, KID or precision/recall (`genlab eval`).
        """
        raise NoLikelihoodError(
            "ebm has no normalized likelihood (its partition function Z is intractable): use "
            "model.energy(x) or model.anomaly_score(x), the unnormalized -log p(x), to rank "
            "inputs, and sample metrics (FID, KID, precision/recall) to compare models"
        )

    def score(self, x: Tensor) -> Tensor:
        """The model's score ∇_x log p(x) = -∇_x E(x): (B, *shape)."""
        xs = self._check_x(x, "ebm score")
        with _evaluating(self):
            return -energy_and_grad(self.net, xs)[1].to(x.device)

    # ---- state -----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Tensor]:
        """The weights plus the replay buffer (when it has been filled)."""
        state = super().export_state()
        if self.replay.shape[0] > 0:
            state[BUFFER_KEY] = self.replay.detach().cpu().contiguous()
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        tensors = dict(tensors)
        replay = tensors.pop(BUFFER_KEY, None)
        super().import_state(tensors)
        if replay is not None:
            if tuple(replay.shape[1:]) != tuple(self.spec.shape):
                raise CheckpointError(
                    f"ebm: the saved replay buffer holds samples of shape "
                    f"{tuple(replay.shape[1:])}, but this model's data is {self.spec.shape}"
                )
            self.replay = replay.to(self.device, torch.float32)
