"""Generative adversarial networks: one `gan` model with losses and architectures as options.

Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014): a generator G maps latent
noise z ~ N(0, I) to samples and a discriminator D scores real against generated samples; the
two are trained in turns. Here the turns are the two loss keys of the contract, "disc" and
"gen", so the one training loop drives a GAN like any other model, with the number of
discriminator steps per generator step (`train.steps_per_key.disc`) and the two learning rates
(`train.lr_per_key`, the two-time-scale update rule of Heusel et al. 2017) as train config.

The variants are options, not subclasses:

- `architecture`: "mlp" for points and table rows; "conv" for images, the DCGAN layout (Radford
  et al., "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016):
  G projects z to a small grid and doubles it with stride-2 transposed convolutions (batch norm,
  ReLU, tanh output); D halves it with stride-2 convolutions and LeakyReLU(0.2).
- `loss`: non-saturating, hinge or Wasserstein (losses.py), with the WGAN-GP gradient penalty
  (Gulrajani et al. 2017) and the R1 penalty (Mescheder et al. 2018) as weights.
- `spectral_norm`: every weight of D divided by its largest singular value, estimated by one
  power iteration per forward pass (Miyato et al., "Spectral Normalization for GANs", ICLR 2018).
- `conditional`: G concatenates a learned label embedding to z; D is the projection
  discriminator D(x, y) = psi(phi(x)) + embed(y) . phi(x) (Miyato & Koyama, "cGANs with
  Projection Discriminator", ICLR 2018).
- `diffaugment`: differentiable augmentation of every image D sees (augment.py).

Presets: `dcgan` (non-saturating, batch norm in both nets), `wgan_gp` (Wasserstein, gradient
penalty 10; train with 5 critic steps per generator step) and `sngan` (hinge + spectral norm).

A GAN has no likelihood: `log_likelihood` raises `NoLikelihoodError`; judge it by its samples
(FID, KID, precision/recall, mode coverage). `sample(truncation=t)` draws z from a normal
truncated to [-t, t] (Brock et al., "Large Scale GAN Training", ICLR 2019), trading diversity
for fidelity. `CollapseMonitor` (monitor.py) checks diversity during training every
`monitor_every` steps. The training loop's EMA of the weights (`train.ema_decay`) gives the
averaged generator of Yazici et al. 2019 ("The Unusual Effectiveness of Averaging in GAN
Training"); the saved model holds the averaged weights.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.families.gan.augment import diff_augment, parse_policy
from genlab.families.gan.losses import LOSSES, gradient_penalty, r1_penalty
from genlab.families.gan.monitor import CollapseMonitor

SAMPLE_CHUNK = 4096  # samples generated per forward pass in `sample`
LEAKY_SLOPE = 0.2  # DCGAN's LeakyReLU slope in D
# A fresh MLP generator's samples spread over twice the data's standard deviation, so that the
# outermost modes of the data lie inside the first samples' cloud.
INIT_SPREAD = 2.0

Architecture = Literal["auto", "mlp", "conv"]
LossName = Literal["non_saturating", "hinge", "wasserstein"]
GenNorm = Literal["auto", "none", "batch"]
DiscNorm = Literal["none", "batch", "layer"]


@dataclass(frozen=True)
class GANConfig:
    """Configuration of `GAN` (the `model:` section of a run's YAML, field for field).

    Args:
        latent_dim: size of z ~ N(0, I).
        architecture: "mlp" (points, table rows, any vector), "conv" (DCGAN-style, images whose
            H and W are multiples of 2 ** len(conv_channels)), or "auto": conv for images, mlp
            otherwise.
        hidden: widths of the hidden layers of both MLPs (G uses them, D the same widths).
        conv_channels: D's conv channels, e.g. (64, 128) halves 28x28 to 14x14 and 7x7; G
            mirrors them (128 channels at 7x7, then 64 at 14x14, then the image).
        gen_norm: normalization in G's hidden layers: "batch", "none", or "auto" (batch norm
            for conv, none for mlp).
        disc_norm: normalization in D's hidden layers: "none", "batch" or "layer" (layer norm;
            the one WGAN-GP recommends, since a gradient penalty needs per-sample gradients).
        loss: "non_saturating", "hinge" or "wasserstein" (losses.py).
        spectral_norm: spectrally normalize every weight of D (SNGAN).
        gradient_penalty: weight lambda of the WGAN-GP penalty (10 in the paper; 0 turns it off).
        r1_gamma: weight gamma of the R1 penalty gamma/2 E||grad D(x_real)||^2 (0: off).
        diffaugment: DiffAugment policy for images, comma-separated transforms from "color",
            "translation", "cutout" ("" turns it off).
        input_scale: points and table rows are standardized (mean and std of the first real
            batch) and multiplied by this inside the model, so both networks see data with
            standard deviation `input_scale` whatever its units; a larger value lets the
            networks' default initialization resolve finer detail. An MLP generator's first
            samples spread over twice the data's std (He init; see `_unit_variance_init`).
            Images ignore it (they are mapped from [0, 1] to [-1, 1]).
        pack: D judges `pack` samples at once, concatenated (PacGAN, Lin et al., "PacGAN: The
            Power of Two Samples in Generative Adversarial Networks", NeurIPS 2018): a generator
            that repeats itself is easier to spot in a pack, which penalizes mode collapse.
            Batches are cut to a multiple of `pack`. 1 turns it off; unconditional models only.
        conditional: model p(x|y) with y = cond["label"]; needs a data set with labels.
        label_dim: size of G's label embedding (conditional only).
        monitor_every: steps between collapse checks (0 turns monitoring off).
        monitor_samples: samples (and real rows) per collapse check; 2,500 is the toy protocol.
        collapse_drop: warn when a monitored figure falls below this share of its best value.
    """

    latent_dim: int = 64
    architecture: Architecture = "auto"
    hidden: tuple[int, ...] = (256, 256)
    conv_channels: tuple[int, ...] = (64, 128)
    gen_norm: GenNorm = "auto"
    disc_norm: DiscNorm = "none"
    loss: LossName = "non_saturating"
    spectral_norm: bool = False
    gradient_penalty: float = 0.0
    r1_gamma: float = 0.0
    diffaugment: str = ""
    input_scale: float = 1.0
    pack: int = 1
    conditional: bool = False
    label_dim: int = 32
    monitor_every: int = 0
    monitor_samples: int = 1000
    collapse_drop: float = 0.75

    def __post_init__(self) -> None:
        for key, kind in (
            ("architecture", Architecture),
            ("loss", LossName),
            ("gen_norm", GenNorm),
            ("disc_norm", DiscNorm),
        ):
            choices = get_args(kind)
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"gan.{key}={getattr(self, key)!r} is not one of "
                    f"{', '.join(map(repr, choices))}: pick one of those"
                )
        if self.latent_dim < 1:
            raise ConfigError(f"gan.latent_dim={self.latent_dim}: set it to 1 or more, e.g. 64")
        if not self.hidden or any(w < 1 for w in self.hidden):
            raise ConfigError(
                f"gan.hidden={self.hidden}: give one or more positive widths, e.g. [256, 256]"
            )
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            raise ConfigError(
                f"gan.conv_channels={self.conv_channels}: give one or more positive channel "
                "counts, e.g. [64, 128]"
            )
        for key in ("gradient_penalty", "r1_gamma"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"gan.{key}={value}: set it to 0 (off) or more")
        if not (math.isfinite(self.input_scale) and self.input_scale > 0):
            raise ConfigError(f"gan.input_scale={self.input_scale}: set it above 0, e.g. 4")
        if self.pack < 1:
            raise ConfigError(f"gan.pack={self.pack}: set it to 1 (off) or more, e.g. 2 or 4")
        if self.pack > 1 and self.conditional:
            raise ConfigError(
                "gan.pack > 1 with conditional=true: a pack mixes classes, so the projection "
                "discriminator has no single label to project; set pack: 1"
            )
        if self.label_dim < 1:
            raise ConfigError(f"gan.label_dim={self.label_dim}: set it to 1 or more, e.g. 32")
        if self.monitor_every < 0:
            raise ConfigError(f"gan.monitor_every={self.monitor_every}: 0 (off) or more steps")
        if self.monitor_samples < 10:
            raise ConfigError(f"gan.monitor_samples={self.monitor_samples}: set 10 or more")
        if not 0.0 < self.collapse_drop <= 1.0:
            raise ConfigError(f"gan.collapse_drop={self.collapse_drop}: set it in (0, 1]")
        parse_policy(self.diffaugment)
        if self.gradient_penalty > 0 and self.loss != "wasserstein":
            warnings.warn(
                f"gan.gradient_penalty={self.gradient_penalty} with loss={self.loss!r}: the "
                "gradient penalty keeps a Wasserstein critic 1-Lipschitz and is not derived for "
                "this loss; use loss: wasserstein, or r1_gamma to regularize this discriminator",
                UserWarning,
                stacklevel=3,
            )
        if self.gradient_penalty > 0 and self.disc_norm == "batch":
            warnings.warn(
                "gan.gradient_penalty with disc_norm='batch': batch norm mixes samples, so the "
                "per-sample gradient the penalty constrains is not the critic's; use "
                "disc_norm: layer or none (Gulrajani et al. 2017, Sec. 4)",
                UserWarning,
                stacklevel=3,
            )
        if self.loss == "wasserstein" and self.gradient_penalty == 0 and not self.spectral_norm:
            warnings.warn(
                "gan.loss='wasserstein' with neither gradient_penalty nor spectral_norm: the "
                "critic is unconstrained and its scores grow without bound; set "
                "gradient_penalty: 10 (WGAN-GP) or spectral_norm: true",
                UserWarning,
                stacklevel=3,
            )


def resolve_architecture(config: GANConfig, spec: DataSpec) -> str:
    if config.architecture != "auto":
        return config.architecture
    return "conv" if spec.modality == "image" else "mlp"


def _check_spec(config: GANConfig, spec: DataSpec) -> None:
    """Raise ConfigError when the config cannot model data of this spec."""
    data = spec.name or "this data"
    if spec.modality in ("text", "sequence"):
        raise ConfigError(
            f"gan models continuous vectors and images, but {data} is {spec.modality}: use an "
            "autoregressive model such as gpt or charrnn"
        )
    if resolve_architecture(config, spec) == "conv":
        if spec.modality != "image" or len(spec.shape) != 3:
            raise ConfigError(
                f"gan.architecture='conv' needs images (C, H, W), but {data} is "
                f"{spec.modality} with shape {spec.shape}: set architecture: mlp"
            )
        num_layers = len(config.conv_channels)
        scale = 2**num_layers
        _, h, w = spec.shape
        if h % scale or w % scale:
            # The multiples of `scale` on either side of each side length.
            sizes = sorted(
                {scale * max(1, s // scale) for s in (h, w)}
                | {scale * (s // scale + 1) for s in (h, w)}
            )
            fits = max(k for k in range(num_layers + 1) if h % 2**k == 0 and w % 2**k == 0)
            hint = (
                f"or give conv_channels {fits} entr{'y' if fits == 1 else 'ies'} (H and W are "
                f"multiples of {2**fits})"
                if fits
                else "or set architecture: mlp"
            )
            raise ConfigError(
                f"gan.architecture='conv' doubles the generator's grid once per conv_channels "
                f"entry, so with {num_layers} entries it produces images whose H and W are "
                f"multiples of {scale}, e.g. {', '.join(f'{s}x{s}' for s in sizes)}; {data} is "
                f"{h}x{w}: resize the images to such a size, {hint}"
            )
    if config.diffaugment and spec.modality != "image":
        raise ConfigError(
            f"gan.diffaugment={config.diffaugment!r} augments images, but {data} is "
            f"{spec.modality}: set diffaugment: ''"
        )
    if config.conditional and not spec.num_classes:
        raise ConfigError(
            f"gan.conditional=true needs labelled data, but {data} has no classes "
            "(spec.num_classes is None): set conditional: false or use a data set with labels"
        )


def _maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(layer) if enabled else layer


def _disc_norm(kind: str, width: int, conv: bool) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width)]
    if kind == "layer":
        return [nn.GroupNorm(1, width) if conv else nn.LayerNorm(width)]
    return []


def _unit_variance_init(layers: list[nn.Module], output_std: float) -> None:
    """He init of the ReLU layers and an output layer whose outputs start with `output_std`.

    PyTorch's default Linear init shrinks the signal about sixfold per ReLU layer, so a fresh
    MLP generator puts all its mass in a tiny blob, which the discriminator then pushes around
    as one piece: the start of mode collapse. With this init the first samples spread with
    about `output_std` (He et al. 2015's variance-preserving argument), and each sample is
    pulled towards the modes near it.
    """
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for layer in linears[:-1]:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    nn.init.normal_(linears[-1].weight, std=output_std * linears[-1].in_features ** -0.5)
    nn.init.zeros_(linears[-1].bias)


class Generator(nn.Module):
    """G: z (B, Z) and an optional label embedding (B, E) -> x in the model's space (B, *shape).

    The model's space is the data's units for vectors and [-1, 1] (tanh) for images.
    """

    def __init__(self, config: GANConfig, spec: DataSpec, architecture: str) -> None:
        super().__init__()
        self.shape = tuple(spec.shape)
        label_dim = config.label_dim if config.conditional else 0
        self.label_embedding = (
            nn.Embedding(spec.num_classes, config.label_dim) if config.conditional else None
        )
        in_dim = config.latent_dim + label_dim
        norm = config.gen_norm
        if norm == "auto":
            norm = "batch" if architecture == "conv" else "none"
        layers: list[nn.Module] = []
        if architecture == "conv":
            c, h, w = spec.shape
            scale = 2 ** len(config.conv_channels)
            channels = tuple(reversed(config.conv_channels))  # e.g. (128, 64)
            grid = (channels[0], h // scale, w // scale)  # e.g. (128, 7, 7) for 28x28
            layers += [nn.Linear(in_dim, math.prod(grid)), nn.Unflatten(1, grid)]
            for c_in, c_out in zip(channels, (*channels[1:], c)):
                if norm == "batch":
                    layers.append(nn.BatchNorm2d(c_in))
                layers += [
                    nn.ReLU(),
                    nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                ]
            layers.append(nn.Tanh())
        else:
            for d_in, d_out in zip((in_dim, *config.hidden[:-1]), config.hidden):
                layers.append(nn.Linear(d_in, d_out))
                if norm == "batch":
                    layers.append(nn.BatchNorm1d(d_out))
                layers.append(nn.ReLU())
            layers += [nn.Linear(config.hidden[-1], spec.num_dims), nn.Unflatten(1, self.shape)]
            _unit_variance_init(layers, INIT_SPREAD * config.input_scale)
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label_embedding is not None:
            z = torch.cat([z, self.label_embedding(y)], dim=-1)  # (B, Z + E)
        return self.net(z)  # (B, *shape)


class Discriminator(nn.Module):
    """D: x (B, *shape) in the model's space and optional labels (B,) -> scores (B,).

    With labels it is the projection discriminator psi(phi(x)) + embed(y) . phi(x).
    """

    def __init__(self, config: GANConfig, spec: DataSpec, architecture: str) -> None:
        super().__init__()
        sn = config.spectral_norm
        layers: list[nn.Module] = []
        if architecture == "conv":
            c, h, w = spec.shape
            c *= config.pack  # packed samples are stacked along the channels
            channels = config.conv_channels
            for i, (c_in, c_out) in enumerate(zip((c, *channels[:-1]), channels)):
                layers.append(_maybe_sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), sn))
                if i > 0:  # DCGAN: no normalization on the layer that sees the image
                    layers += _disc_norm(config.disc_norm, c_out, conv=True)
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            scale = 2 ** len(channels)
            layers.append(nn.Flatten())
            num_features = channels[-1] * (h // scale) * (w // scale)
        else:
            layers.append(nn.Flatten())
            for i, (d_in, d_out) in enumerate(
                zip((spec.num_dims * config.pack, *config.hidden[:-1]), config.hidden)
            ):
                layers.append(_maybe_sn(nn.Linear(d_in, d_out), sn))
                if i > 0:
                    layers += _disc_norm(config.disc_norm, d_out, conv=False)
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            num_features = config.hidden[-1]
        self.features = nn.Sequential(*layers)
        # The Wasserstein loss is blind to a constant shift of the scores, and under the hinge
        # loss the shift's gradient is the difference of the shares of real and fake samples
        # inside the margin (zero at the start and in balance), so those heads carry no bias.
        bias = config.loss == "non_saturating"
        self.head = _maybe_sn(nn.Linear(num_features, 1, bias=bias), sn)
        self.projection = (
            _maybe_sn(nn.Embedding(spec.num_classes, num_features), sn)
            if config.conditional
            else None
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        phi = self.features(x)  # (B, F)
        scores = self.head(phi).squeeze(-1)  # (B,)
        if self.projection is not None:
            scores = scores + (self.projection(y) * phi).sum(-1)  # (B,)
        return scores


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No gradient reaches `module`'s parameters inside the block; their flags are restored.

    The generator's loss runs D on fakes: the gradient must flow through D to G but must not
    land on D's parameters, which belong to the other loss key.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def truncated_normal(
    shape: tuple[int, ...],
    truncation: float | None,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """N(0, 1) draws, or draws truncated to [-t, t] by the inverse CDF (one uniform per value)."""
    where = generator.device if generator is not None else device
    if truncation is None:
        return torch.randn(shape, generator=generator, device=where).to(device)
    u = torch.rand(shape, generator=generator, device=where, dtype=torch.float64)
    low = torch.special.ndtr(torch.tensor(-truncation, dtype=torch.float64))
    p = low + u * (1.0 - 2.0 * low)  # uniform on [Phi(-t), Phi(t)]
    return torch.special.ndtri(p).clamp(-truncation, truncation).float().to(device)


@register(
    "gan",
    GANConfig,
    "generative adversarial network: non-saturating/hinge/WGAN-GP, SN, conditional, MLP or conv",
    presets={
        "dcgan": {"loss": "non_saturating", "disc_norm": "batch"},
        "wgan_gp": {"loss": "wasserstein", "gradient_penalty": 10.0, "disc_norm": "none"},
        "sngan": {"loss": "hinge", "spectral_norm": True, "disc_norm": "none"},
    },
)
class GAN(NeuralModel):
    """A generative adversarial network (Goodfellow et al. 2014) trained by the one loop.

    Loss keys: "disc" (the discriminator's loss on a real batch and detached fakes, plus its
    penalties) and "gen" (the generator's loss through a discriminator whose parameters receive
    no gradient). Train with `train.steps_per_key: {disc: k}` for k discriminator steps per
    generator step and `train.lr_per_key` for two learning rates.

    Args:
        config: the `GANConfig`.
        spec: the data spec; images (C, H, W) in [0, 1], points and rows (D,) in data units.
    """

    def __init__(self, config: GANConfig, spec: DataSpec) -> None:
        super().__init__()
        _check_spec(config, spec)
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        self.architecture = resolve_architecture(config, spec)
        self.is_image = spec.modality == "image"
        self.generator = Generator(config, spec, self.architecture)
        self.discriminator = Discriminator(config, spec, self.architecture)
        self.disc_loss_fn, self.gen_loss_fn = LOSSES[config.loss]
        self.augment_policy = parse_policy(config.diffaugment)
        self.monitor = CollapseMonitor(
            spec, config.monitor_every, config.monitor_samples, config.collapse_drop
        )
        if not self.is_image:
            # Points and rows are standardized inside with the mean and std of the first real
            # batch, so that one architecture fits data in any units. Not in state_dict: the
            # loop's EMA would average them from their initial zeros and ones; `export_state`
            # saves them instead.
            shape = tuple(spec.shape)
            self.register_buffer("data_mean", torch.zeros(shape), persistent=False)
            self.register_buffer("data_std", torch.ones(shape), persistent=False)
            self.register_buffer("data_stats_set", torch.tensor(False), persistent=False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- building blocks -------------------------------------------------------------------

    def _to_model(self, x: Tensor) -> Tensor:
        """Data space -> the networks' space: images [0, 1] -> [-1, 1], vectors standardized."""
        if self.is_image:
            return x * 2.0 - 1.0
        return (x - self.data_mean) / self.data_std * self.config.input_scale

    def _to_data(self, x: Tensor) -> Tensor:
        if self.is_image:
            return ((x + 1.0) / 2.0).clamp(0.0, 1.0)
        return x / self.config.input_scale * self.data_std + self.data_mean

    @torch.no_grad()
    def _set_data_stats(self, x: Tensor) -> None:
        """Fix the standardization from the first real batch (vectors only; once)."""
        if self.is_image or bool(self.data_stats_set) or x.shape[0] < 2:
            return
        std = x.float().std(dim=0)
        # A column that is constant in this batch (a rare category) keeps unit scale.
        self.data_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        self.data_mean.copy_(x.float().mean(dim=0))
        self.data_stats_set.fill_(True)

    def _augment(self, x: Tensor) -> Tensor:
        return diff_augment(x, self.augment_policy) if self.augment_policy else x

    def _pack(self, x: Tensor) -> Tensor:
        """(B, C, ...) -> (B // pack, pack * C, ...): consecutive samples side by side (PacGAN)."""
        pack = self.config.pack
        if pack == 1:
            return x
        if x.shape[0] < pack:
            raise DataError(
                f"gan.pack={pack} needs batches of at least {pack} samples, got {x.shape[0]}: "
                "raise train.batch_size"
            )
        num = x.shape[0] // pack
        return x[: num * pack].reshape(num, pack * x.shape[1], *x.shape[2:])

    def _labels(self, cond: dict[str, Tensor] | None, num: int) -> Tensor | None:
        """cond["label"] checked, as int64 (B,) on the model's device; None if unconditional."""
        if not self.config.conditional:
            return None
        if not cond or "label" not in cond:
            raise DataError(
                "this gan is conditional (conditional=true): pass the classes as "
                "cond={'label': int64 tensor (B,)}, or train with conditional: false"
            )
        y = torch.as_tensor(cond["label"])
        if y.shape != (num,):
            raise DataError(f"cond['label'] has shape {tuple(y.shape)}; expected ({num},)")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise DataError(f"cond['label'] must hold integer classes, got dtype {y.dtype}")
        if num > 0 and (int(y.min()) < 0 or int(y.max()) >= self.spec.num_classes):
            bad = int(y.max()) if int(y.max()) >= self.spec.num_classes else int(y.min())
            raise DataError(
                f"class {bad} is outside the trained labels 0..{self.spec.num_classes - 1}"
            )
        return y.to(self.device, torch.long)

    # ---- the contract ----------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"disc": D's parameters, "gen": G's}; D first, so each outer step trains D, then G."""
        return {
            "disc": list(self.discriminator.parameters()),
            "gen": list(self.generator.parameters()),
        }

    def loss(self, batch: Batch, *, key: str = "gen") -> LossOutput:
        """The discriminator's ("disc") or the generator's ("gen") loss on one batch.

        The latent draws and the gradient penalty's interpolation weights come from the global
        RNG, which the training loop seeds and checkpoints (the documented exception to explicit
        generators). The "gen" loss uses the batch only for its size and labels.

        Logs: "loss"; for "disc" also the mean scores "real_score" and "fake_score" and the
        penalties "gp" and "r1" when on; for "gen" also the newest collapse-monitor figures.
        """
        if key not in ("disc", "gen"):
            raise ConfigError(f"gan has the loss keys 'disc' and 'gen'; got {key!r}")
        num = batch.x.shape[0]
        y = self._labels(batch.cond, num)  # (B,) or None
        z = torch.randn(num, self.config.latent_dim, device=batch.x.device)  # (B, Z)
        if self.training:
            self._set_data_stats(batch.x)
        if key == "disc":
            self.monitor.remember(batch.x)
            real = self._to_model(batch.x)  # (B, *shape)
            with torch.no_grad():
                fake = self.generator(z, y)  # (B, *shape), no graph into G

            def critic(x: Tensor) -> Tensor:
                return self.discriminator(x, y)

            # Scores (B / pack,); the penalties act on packed inputs, which D sees.
            real_scores = critic(self._pack(self._augment(real)))
            fake_scores = critic(self._pack(self._augment(fake)))
            real, fake = self._pack(real), self._pack(fake)
            loss = self.disc_loss_fn(real_scores, fake_scores)
            stats = {"real_score": real_scores.mean(), "fake_score": fake_scores.mean()}
            if self.config.gradient_penalty > 0:
                gp = gradient_penalty(critic, real, fake)
                loss = loss + self.config.gradient_penalty * gp
                stats["gp"] = gp
            if self.config.r1_gamma > 0:
                r1 = r1_penalty(critic, real)
                loss = loss + 0.5 * self.config.r1_gamma * r1
                stats["r1"] = r1
            stats["loss"] = loss
            means = torch.stack([v.detach().float() for v in stats.values()]).tolist()
            return LossOutput(loss, dict(zip(stats, means)))
        fake = self.generator(z, y)  # (B, *shape)
        with frozen(self.discriminator):
            fake_scores = self.discriminator(self._pack(self._augment(fake)), y)  # (B/pack,)
        loss = self.gen_loss_fn(fake_scores)
        logs = {"loss": float(loss.detach()), **self.monitor.latest}
        return LossOutput(loss, logs)

    def after_step(self, step: int) -> None:
        """Run the collapse monitor every `monitor_every` steps (fixed-seed samples)."""
        if not self.monitor.due(step):
            return

        def draw(n: int, generator: torch.Generator) -> Tensor:
            cond = None
            if self.config.conditional:
                cond = {"label": torch.arange(n) % self.spec.num_classes}
            return self.sample(n, generator=generator, cond=cond)

        self.monitor.check(step, draw)

    def _latents(
        self, num: int, truncation: float | None, generator: torch.Generator | None
    ) -> Tensor:
        return truncated_normal((num, self.config.latent_dim), truncation, generator, self.device)

    def _generate(self, z: Tensor, y: Tensor | None) -> Tensor:
        """G in eval mode on latents (N, Z), in chunks; float32 (N, *shape) in the data space."""
        with _evaluating(self):
            chunks = [
                self._to_data(
                    self.generator(
                        z[s : s + SAMPLE_CHUNK], None if y is None else y[s : s + SAMPLE_CHUNK]
                    )
                )
                for s in range(0, z.shape[0], SAMPLE_CHUNK)
            ]
        if not chunks:
            return torch.empty((0, *self.spec.shape), device=self.device)
        return torch.cat(chunks).float()

    @staticmethod
    def _check_truncation(truncation: float | None) -> None:
        if truncation is None:
            return
        if isinstance(truncation, bool) or not isinstance(truncation, (int, float)):
            raise ConfigError(
                f"gan sample: truncation must be a number or None, got {truncation!r}"
            )
        if not (math.isfinite(truncation) and truncation > 0):
            raise ConfigError(
                f"gan sample: truncation={truncation} must be a positive number of standard "
                "deviations (e.g. 1.0), or None for no truncation"
            )

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """Generate samples G(z), z ~ N(0, I); float32 (N, *spec.shape) in the data space.

        Args:
            num_samples: N.
            generator: the source of z, for reproducible samples.
            cond: {"label": int64 (N,)} for a conditional model (required then); an
                unconditional model takes none.
            truncation: draw each latent value from N(0, 1) truncated to [-t, t] (the
                truncation trick of Brock et al. 2019); smaller t trades diversity for
                fidelity. None draws from the full normal.

        Returns:
            Samples in the data set's space; images in [0, 1].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        self._check_truncation(truncation)
        if cond and not self.config.conditional:
            raise ConfigError(
                "this gan is unconditional (conditional=false): sample without cond, or train "
                "with conditional: true to sample given labels"
            )
        y = self._labels(cond, num_samples)
        return self._generate(self._latents(num_samples, truncation, generator), y)

    def log_likelihood(
        self, x: Tensor, *, cond: dict[str, Tensor] | None = None, **options
    ) -> LogLikelihood:
        """A GAN defines no density, so there is no likelihood: always raises."""
        raise NoLikelihoodError(
            "a GAN defines samples but no density, so it has no likelihood to report: judge it "
            "by its samples instead (genlab eval --metrics fid,kid,prdc on images, "
            "prdc,mmd,c2st,modes on points), or train a likelihood model (flows, vae, diffusion)"
        )

    # ---- latent interpolation --------------------------------------------------------------

    @torch.no_grad()
    def interpolate(
        self,
        num_paths: int = 4,
        num_steps: int = 8,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        spherical: bool = True,
        truncation: float | None = None,
    ) -> Tensor:
        """Samples along latent paths between pairs of draws; float32 (P, S, *spec.shape).

        Args:
            num_paths: P paths, each between two latent draws z0, z1.
            num_steps: S points per path, t = 0, 1/(S-1), ..., 1.
            generator: the source of the end points.
            cond: {"label": int64 (P,)}, one class per path (conditional models).
            spherical: slerp along the great circle (White 2016, "Sampling Generative
                Networks"), which keeps the norm typical of a Gaussian draw; False: straight lines.
            truncation: as in `sample`, for the end points.
        """
        if num_paths < 1 or num_steps < 2:
            raise ConfigError("interpolate: need num_paths >= 1 and num_steps >= 2")
        self._check_truncation(truncation)
        y = self._labels(cond, num_paths)
        z0 = self._latents(num_paths, truncation, generator)  # (P, Z)
        z1 = self._latents(num_paths, truncation, generator)  # (P, Z)
        t = torch.linspace(0.0, 1.0, num_steps, device=z0.device).view(1, -1, 1)  # (1, S, 1)
        a, b = z0.unsqueeze(1), z1.unsqueeze(1)  # (P, 1, Z)
        if spherical:
            cos = torch.nn.functional.cosine_similarity(z0, z1, dim=-1).clamp(-1.0, 1.0)
            omega = torch.acos(cos).view(-1, 1, 1)  # (P, 1, 1)
            sin = torch.sin(omega)
            linear = sin.abs() < 1e-6  # (nearly) parallel end points: fall back to lerp
            w0 = torch.where(linear, 1.0 - t, torch.sin((1.0 - t) * omega) / sin)
            w1 = torch.where(linear, t, torch.sin(t * omega) / sin)
            z = w0 * a + w1 * b  # (P, S, Z)
        else:
            z = (1.0 - t) * a + t * b  # (P, S, Z)
        y_path = None if y is None else y.repeat_interleave(num_steps)  # (P*S,)
        x = self._generate(z.reshape(num_paths * num_steps, -1), y_path)
        return x.reshape(num_paths, num_steps, *self.spec.shape)

    # ---- saving the generator alone --------------------------------------------------------

    _STATS = ("data_mean", "data_std", "data_stats_set")

    def export_state(self) -> dict[str, Tensor]:
        """The state_dict plus the data standardization (vectors)."""
        state = super().export_state()
        if not self.is_image:
            state.update({k: getattr(self, k).detach().cpu().clone() for k in self._STATS})
        return state

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore a full state, or a generator-only state written by `save_generator`.

        A state without the standardization (the loop's EMA weights) keeps the current one.
        """
        tensors = dict(tensors)
        for k in self._STATS:
            value = tensors.pop(k, None)
            if value is not None and not self.is_image:
                getattr(self, k).copy_(value)
        gen_keys = {f"generator.{k}" for k in self.generator.state_dict()}
        if set(tensors) == gen_keys:
            prefix = len("generator.")
            self.generator.load_state_dict({k[prefix:]: v for k, v in tensors.items()})
            return
        super().import_state(tensors)

    def save_generator(self, directory: str | Path) -> Path:
        """Write a model folder holding only the generator's weights (for sampling).

        `genlab.load(directory)` rebuilds the model from its config and data spec, without the
        training data; the discriminator stays at its initial weights (train again from a
        full checkpoint, not from this folder).
        """
        import json

        from genlab.core.persist import (
            MODEL_JSON,
            WEIGHTS_FILE,
            atomic_save_tensors,
            atomic_write_text,
            model_description,
        )

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        tensors.update({k: v for k, v in self.export_state().items() if k in self._STATS})
        atomic_save_tensors(directory / WEIGHTS_FILE, tensors, {"model": self.name})
        description = {**model_description(self), "weights": "generator_only"}
        atomic_write_text(directory / MODEL_JSON, json.dumps(description, indent=2))
        return directory


def write_interpolation(
    model: GAN,
    path: str | Path,
    *,
    num_paths: int = 8,
    num_steps: int = 10,
    seed: int = 0,
    cond: dict[str, Tensor] | None = None,
    spherical: bool = True,
) -> Path:
    """Plot latent interpolations to a PNG: one row per path for images; for 2-D points, the
    paths drawn over a cloud of samples (colour runs from t = 0 to t = 1).

    Args:
        model: a GAN.
        path: the .png file to write.
        num_paths, num_steps, spherical: as in `GAN.interpolate`.
        seed: seeds the end points (and the background cloud).
        cond: {"label": int64 (num_paths,)} for conditional models.

    Returns:
        The path written.
    """
    from genlab.core.persist import _atomic_replace

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DataError(f"write_interpolation writes a .png, got {path}")
    g = torch.Generator().manual_seed(seed)
    paths = model.interpolate(num_paths, num_steps, generator=g, cond=cond, spherical=spherical)
    paths = paths.cpu()
    if model.spec.modality == "image":
        from PIL import Image

        from genlab.data.writers import image_grid

        grid = image_grid(paths.flatten(0, 1), nrow=num_steps, scale=max(1, 28 // paths.shape[-1]))
        picture = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
        _atomic_replace(path, lambda tmp: picture.save(tmp, format="PNG"))
        return path
    if tuple(model.spec.shape) != (2,):
        raise DataError(
            f"write_interpolation draws images and 2-D points; this model makes "
            f"{model.spec.modality} of shape {model.spec.shape}: use model.interpolate(...)"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cloud_cond = None
    if model.config.conditional:
        cloud_cond = {"label": torch.arange(2000) % model.spec.num_classes}
    cloud = model.sample(2000, generator=g, cond=cloud_cond).cpu().numpy()
    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(cloud[:, 0], cloud[:, 1], s=2, c="lightgrey", label="samples")
    t = torch.linspace(0, 1, num_steps).numpy()
    for p in paths.numpy():
        ax.plot(p[:, 0], p[:, 1], c="black", lw=0.5, alpha=0.6)
        points = ax.scatter(p[:, 0], p[:, 1], c=t, cmap="viridis", s=12, zorder=3)
    fig.colorbar(points, ax=ax, label="t")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"latent interpolation ({'slerp' if spherical else 'lerp'})")
    fig.tight_layout()
    _atomic_replace(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return path
