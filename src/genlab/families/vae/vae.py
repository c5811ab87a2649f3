"""Variational autoencoder: ELBO or IWAE training, beta weighting, label conditioning.

Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014): an encoder
q(z|x) = N(mean, diag exp(log_var)) and a decoder p(x|z), with prior p(z) = N(0, I), trained on
the evidence lower bound

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))

through the reparameterization z = mean + std * eps, eps ~ N(0, I); the KL term is analytic.
The variants are config options, not subclasses:

- `beta` (Higgins et al., "beta-VAE", ICLR 2017) weights the KL term of the training loss.
- `kl_warmup_steps` (KL annealing; Bowman et al., "Generating Sentences from a Continuous
  Space", CoNLL 2016) raises that weight linearly from 0 to `beta` over the first N steps, so
  the decoder learns to use z before the KL term pulls q(z|x) onto the prior.
- `free_bits` (Kingma et al., "Improved Variational Inference with Inverse Autoregressive
  Flow", NeurIPS 2016) replaces the KL term by sum_g max(lambda, E_batch[KL_g]) over groups of
  `free_bits_group` latent dimensions: a group's first lambda nats of KL are free, so the
  optimizer has no incentive to collapse it onto the prior (posterior collapse).
- `iwae_k > 1` (Burda et al., "Importance Weighted Autoencoders", ICLR 2016) trains on

      IWAE_k(x) = E[log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)],   z_1..z_k ~ q(z|x),

  which is >= ELBO (= IWAE_1) and rises to log p(x) as k grows.
- `conditional` (Sohn et al., "Learning Structured Output Representation using Deep Conditional
  Generative Models", NeurIPS 2015) feeds a learned embedding of `cond["label"]` to the encoder
  and the decoder, so the model is p(x|y). The classes seen in training are counted, and
  sampling a class the model never saw is an error.

`log_likelihood` reports IWAE_k per data point, a lower bound on log p(x) in nats. Latent
interpolation and traversal plots are in plots.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.nn.mlp import MLP, activation_layer

LOG_2PI = math.log(2 * math.pi)
# Keeps exp(log_var) and the Gaussian decoder's std finite and away from zero.
LOG_VAR_RANGE = (-20.0, 10.0)
LOG_STD_RANGE = (-7.0, 5.0)
SAMPLE_CHUNK = 4096  # samples decoded per forward pass in `sample`

Architecture = Literal["mlp", "conv"]
DecoderKind = Literal["auto", "bernoulli", "gaussian"]
GaussianStd = Literal["learned", "fixed"]
Activation = Literal["silu", "relu", "gelu", "tanh"]


@dataclass(frozen=True)
class VAEConfig:
    """Configuration of `VAE` (the `model:` section of a run's YAML, field for field).

    Args:
        latent_dim: size of z.
        architecture: "mlp" (any continuous data) or "conv" (images: stride-2 convolutions that
            halve H and W once per `conv_channels` entry, mirrored by transposed convolutions).
        hidden: widths of the fully connected layers; for "conv" they sit between the conv
            features and z. The decoder uses them in reverse order.
        conv_channels: channels of the encoder's conv layers (architecture="conv" only).
        activation: "silu", "relu", "gelu" or "tanh".
        decoder: p(x|z): "bernoulli" (logits; scores values in [0, 1] by binary cross-entropy),
            "gaussian" (mean in the data's units, diagonal std), or "auto": bernoulli for
            images, gaussian for points and tables.
        gaussian_std: the Gaussian decoder's std: "learned" (one per dimension, independent of
            z, clamped to [exp(-7), exp(5)]) or "fixed" at `decoder_std`.
        decoder_std: the fixed std, or the initial value of the learned one (data units).
        beta: weight of the KL term in the training loss (beta-VAE); 1 is the ELBO.
        iwae_k: importance samples of the training bound; k > 1 trains on IWAE_k instead of
            the ELBO, and then beta must be 1 (a beta-weighted IWAE is not a bound).
        kl_warmup_steps: KL annealing: the KL weight after s completed training steps is
            beta * min(1, s / kl_warmup_steps) (0 at the first step); 0 turns it off.
        free_bits: lambda, the nats of KL per group that cost nothing (free bits); 0 turns it
            off. Applied to the batch-mean KL of each group, as in Kingma et al. 2016.
        free_bits_group: latent dimensions per free-bits group (1: per dimension); must
            divide latent_dim.
        conditional: model p(x|y) with y = cond["label"]; needs a data set with labels.
        label_dim: size of the learned label embedding (conditional only).
        dropout: dropout after every hidden activation of the fully connected layers.
    """

    latent_dim: int = 16
    architecture: Architecture = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    conv_channels: tuple[int, ...] = (32, 64)
    activation: Activation = "silu"
    decoder: DecoderKind = "auto"
    gaussian_std: GaussianStd = "learned"
    decoder_std: float = 1.0
    beta: float = 1.0
    iwae_k: int = 1
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    free_bits_group: int = 1
    conditional: bool = False
    label_dim: int = 16
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for key, kind in (
            ("architecture", Architecture),
            ("activation", Activation),
            ("decoder", DecoderKind),
            ("gaussian_std", GaussianStd),
        ):
            choices = get_args(kind)
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"vae.{key}={getattr(self, key)!r} is not one of "
                    f"{', '.join(map(repr, choices))}: pick one of those"
                )
        if self.latent_dim < 1:
            raise ConfigError(f"vae.latent_dim={self.latent_dim}: set it to 1 or more, e.g. 16")
        if any(w < 1 for w in self.hidden):
            raise ConfigError(f"vae.hidden={self.hidden}: every width must be 1 or more")
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            raise ConfigError(
                f"vae.conv_channels={self.conv_channels}: give one or more positive channel "
                "counts, e.g. [32, 64]"
            )
        if not self.decoder_std > 0:
            raise ConfigError(f"vae.decoder_std={self.decoder_std}: set it above 0, e.g. 1.0")
        if not self.beta >= 0:
            raise ConfigError(f"vae.beta={self.beta}: set it to 0 or more (1 is the ELBO)")
        if self.iwae_k < 1:
            raise ConfigError(f"vae.iwae_k={self.iwae_k}: set it to 1 (ELBO) or more (IWAE)")
        if self.iwae_k > 1 and self.beta != 1:
            raise ConfigError(
                f"vae.iwae_k={self.iwae_k} with vae.beta={self.beta}: the IWAE bound has no beta "
                "weight; set beta: 1 to train on IWAE, or iwae_k: 1 for a beta-VAE"
            )
        if self.kl_warmup_steps < 0:
            raise ConfigError(
                f"vae.kl_warmup_steps={self.kl_warmup_steps}: set it to 0 (off) or more, e.g. 5000"
            )
        if not (math.isfinite(self.free_bits) and self.free_bits >= 0):
            raise ConfigError(
                f"vae.free_bits={self.free_bits}: set it to 0 (off) or more, e.g. 0.5"
            )
        if self.free_bits_group < 1 or self.latent_dim % self.free_bits_group:
            raise ConfigError(
                f"vae.free_bits_group={self.free_bits_group} must be 1 or more and divide "
                f"latent_dim={self.latent_dim}: e.g. 1 (per dimension)"
            )
        if self.iwae_k > 1 and (self.kl_warmup_steps > 0 or self.free_bits > 0):
            raise ConfigError(
                f"vae.iwae_k={self.iwae_k} with kl_warmup_steps or free_bits: the IWAE bound has no "
                "separate KL term to anneal or clamp; set iwae_k: 1 to use them"
            )
        if self.label_dim < 1:
            raise ConfigError(f"vae.label_dim={self.label_dim}: set it to 1 or more, e.g. 16")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"vae.dropout={self.dropout}: set it in [0, 1), e.g. 0.1")


def _check_spec(config: VAEConfig, spec: DataSpec) -> None:
    """Raise ConfigError when the config cannot model data of this spec."""
    data = spec.name or "this data"
    if spec.modality in ("text", "sequence"):
        raise ConfigError(
            f"vae models continuous vectors and images, but {data} is {spec.modality} (token "
            "ids): use an autoregressive model such as gpt or charrnn"
        )
    if config.architecture == "conv":
        if spec.modality != "image" or len(spec.shape) != 3:
            raise ConfigError(
                f"vae.architecture='conv' needs images (C, H, W), but {data} is "
                f"{spec.modality} with shape {spec.shape}: set architecture: mlp"
            )
        scale = 2 ** len(config.conv_channels)
        _, h, w = spec.shape
        if h % scale or w % scale:
            raise ConfigError(
                f"vae.architecture='conv' halves H and W once per conv_channels entry, so with "
                f"{len(config.conv_channels)} entries they must be divisible by {scale}, but "
                f"{data} is {h}x{w}: use fewer conv_channels or set architecture: mlp"
            )
    if config.conditional and not spec.num_classes:
        raise ConfigError(
            f"vae.conditional=true needs labelled data, but {data} has no classes "
            "(spec.num_classes is None): set conditional: false or use a data set with labels"
        )
    if config.decoder == "bernoulli" and spec.modality != "image":
        low, high = spec.value_range or (-math.inf, math.inf)
        if low < 0 or high > 1:
            raise ConfigError(
                f"vae.decoder='bernoulli' scores values in [0, 1], but {data} has range "
                f"{spec.value_range}: set decoder: gaussian (or auto)"
            )


def _std_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, 1) elementwise."""
    return -0.5 * (z.pow(2) + LOG_2PI)


def _where(generator: torch.Generator | None, device: torch.device) -> torch.device:
    # Draw on the generator's own device, so a CPU generator gives the same draws on any device.
    return generator.device if generator is not None else device


def _randn(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Standard normal draws of `shape` from `generator`, on `device`."""
    return torch.randn(shape, generator=generator, device=_where(generator, device)).to(device)


def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform [0, 1) draws of `shape` from `generator`, on `device`."""
    return torch.rand(shape, generator=generator, device=_where(generator, device)).to(device)


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the previous training mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class Encoder(nn.Module):
    """q(z | x, y) = N(mean, diag exp(log_var)): x (B, *shape) -> mean, log_var, each (B, Z)."""

    def __init__(self, config: VAEConfig, spec: DataSpec, label_dim: int) -> None:
        super().__init__()
        if config.architecture == "conv":
            c, h, w = spec.shape
            layers: list[nn.Module] = []
            for c_in, c_out in zip((c, *config.conv_channels[:-1]), config.conv_channels):
                layers += [
                    nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                    activation_layer(config.activation),
                ]
            self.features = nn.Sequential(*layers, nn.Flatten())
            scale = 2 ** len(config.conv_channels)
            num_features = config.conv_channels[-1] * (h // scale) * (w // scale)
        else:
            self.features = nn.Flatten()
            num_features = spec.num_dims
        self.head = MLP(
            num_features + label_dim,
            config.hidden,
            2 * config.latent_dim,
            config.activation,
            config.dropout,
        )

    def forward(self, x: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.features(x)  # (B, F)
        if y is not None:
            h = torch.cat([h, y], dim=-1)  # (B, F + E)
        mean, log_var = self.head(h).chunk(2, dim=-1)  # (B, Z), (B, Z)
        return mean, log_var.clamp(*LOG_VAR_RANGE)


class Decoder(nn.Module):
    """p(x | z, y): z (B, Z) -> the decoder's parameter (B, *shape), logits or Gaussian mean."""

    def __init__(self, config: VAEConfig, spec: DataSpec, label_dim: int) -> None:
        super().__init__()
        in_dim = config.latent_dim + label_dim
        hidden = tuple(reversed(config.hidden))
        if config.architecture == "conv":
            c, h, w = spec.shape
            scale = 2 ** len(config.conv_channels)
            channels = tuple(reversed(config.conv_channels))  # e.g. (64, 32)
            grid = (channels[0], h // scale, w // scale)  # e.g. (64, 7, 7) for 28x28
            self.head = MLP(in_dim, hidden, math.prod(grid), config.activation, config.dropout)
            layers: list[nn.Module] = [activation_layer(config.activation), nn.Unflatten(1, grid)]
            for c_in, c_out in zip(channels, (*channels[1:], c)):
                layers += [
                    nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                    activation_layer(config.activation),
                ]
            self.body = nn.Sequential(*layers[:-1])  # no activation on the output
        else:
            self.head = MLP(in_dim, hidden, spec.num_dims, config.activation, config.dropout)
            self.body = nn.Unflatten(1, spec.shape)

    def forward(self, z: Tensor, y: Tensor | None) -> Tensor:
        if y is not None:
            z = torch.cat([z, y], dim=-1)  # (B, Z + E)
        return self.body(self.head(z))  # (B, *shape)


@register("vae", VAEConfig, "variational autoencoder: ELBO/IWAE, beta, conditional, MLP or conv")
class VAE(NeuralModel):
    """Variational autoencoder (Kingma & Welling 2014) with beta, IWAE and label conditioning.

    Args:
        config: the `VAEConfig`.
        spec: the data spec; images (C, H, W) in [0, 1], points and rows (D,) in data units.
    """

    def __init__(self, config: VAEConfig, spec: DataSpec) -> None:
        super().__init__()
        _check_spec(config, spec)
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        if config.decoder == "auto":
            self.decoder_kind = "bernoulli" if spec.modality == "image" else "gaussian"
        else:
            self.decoder_kind = config.decoder
        label_dim = config.label_dim if config.conditional else 0
        self.label_embedding = (
            nn.Embedding(spec.num_classes, config.label_dim) if config.conditional else None
        )
        self.encoder = Encoder(config, spec, label_dim)
        self.decoder = Decoder(config, spec, label_dim)
        if self.decoder_kind == "gaussian":
            log_std = torch.full(spec.shape, math.log(config.decoder_std))
            if config.gaussian_std == "learned":
                self.decoder_log_std = nn.Parameter(log_std)
            else:
                self.register_buffer("decoder_log_std", log_std)
        # Training steps completed, for KL annealing; saved so a resumed run goes on alike.
        # Only present when annealing is on, so models without it keep their saved format.
        if config.kl_warmup_steps > 0:
            self.register_buffer("kl_step", torch.zeros((), dtype=torch.long))
        # Examples per class seen by `loss` in training mode; sampling an unseen class is an
        # error. All zeros (an untrained model, or one saved before counting) checks nothing.
        if config.conditional:
            self.register_buffer("label_counts", torch.zeros(spec.num_classes, dtype=torch.long))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- building blocks -------------------------------------------------------------------

    def _embed_labels(self, cond: dict[str, Tensor] | None, num: int) -> Tensor | None:
        """The label embedding (B, E) of cond["label"]; None for an unconditional model."""
        if not self.config.conditional:
            return None
        if not cond or "label" not in cond:
            raise DataError(
                "this vae is conditional (conditional=true): pass the classes as "
                "cond={'label': int64 tensor (B,)}, or train with conditional: false"
            )
        y = torch.as_tensor(cond["label"])
        if y.shape != (num,):
            raise DataError(f"cond['label'] has shape {tuple(y.shape)}; expected ({num},)")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise DataError(f"cond['label'] must hold integer classes, got dtype {y.dtype}")
        if num > 0:
            num_classes = self.spec.num_classes
            low, high = int(y.min()), int(y.max())
            bad = high if high >= num_classes else low
            if low < 0 or high >= num_classes:
                raise DataError(f"class {bad} is outside the trained labels 0..{num_classes - 1}")
        return self.label_embedding(y.to(self.device, torch.long))

    def _log_px(self, x: Tensor, param: Tensor) -> Tensor:
        """log p(x|z) summed over dimensions: x (B, *shape), param (..., B, *shape) -> (..., B)."""
        if self.decoder_kind == "bernoulli":
            log_prob = -F.binary_cross_entropy_with_logits(
                param, x.expand_as(param), reduction="none"
            )
        else:
            log_std = self.decoder_log_std.clamp(*LOG_STD_RANGE)
            log_prob = -0.5 * ((x - param) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI
        return log_prob.flatten(start_dim=log_prob.dim() - len(self.spec.shape)).sum(-1)

    def _mean(self, param: Tensor) -> Tensor:
        """The decoder's mean in the data space from its parameter (logits or mean)."""
        if self.decoder_kind == "bernoulli":
            return torch.sigmoid(param)
        if self.spec.modality == "image":
            return param.clamp(0.0, 1.0)
        return param

    def _log_weights(
        self, x: Tensor, y: Tensor | None, mean: Tensor, log_var: Tensor, eps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """log p(x|z), log p(z) and log q(z|x) at z = mean + std * eps, each (K, B).

        x (B, *shape), y (B, E) or None, mean and log_var (B, Z), eps (K, B, Z).
        """
        k, b, _ = eps.shape
        z = mean + (0.5 * log_var).exp() * eps  # (K, B, Z)
        y_k = None if y is None else y.repeat(k, 1)  # (K*B, E), k-major like z below
        param = self.decoder(z.reshape(k * b, -1), y_k)  # (K*B, *shape)
        log_px = self._log_px(x, param.reshape(k, b, *self.spec.shape))  # (K, B)
        log_pz = _std_normal_log_prob(z).sum(-1)  # (K, B)
        log_qz = (_std_normal_log_prob(eps) - 0.5 * log_var).sum(-1)  # (K, B)
        return log_px, log_pz, log_qz

    # ---- public pieces ---------------------------------------------------------------------

    def encode(self, x: Tensor, *, cond: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """The posterior q(z|x): x (B, *shape) -> mean, log_var, each (B, Z)."""
        return self.encoder(x, self._embed_labels(cond, x.shape[0]))

    def decode(self, z: Tensor, *, cond: dict[str, Tensor] | None = None) -> Tensor:
        """The decoder's mean E[x|z] in the data space: z (B, Z) -> (B, *shape)."""
        return self._mean(self.decoder(z, self._embed_labels(cond, z.shape[0])))

    def decoder_log_prob(
        self, x: Tensor, z: Tensor, *, cond: dict[str, Tensor] | None = None
    ) -> Tensor:
        """log p(x|z) in nats: x (B, *shape), z (B, Z) -> (B,)."""
        return self._log_px(x, self.decoder(z, self._embed_labels(cond, z.shape[0])))

    def kl_weight(self) -> float:
        """The KL term's weight in the training loss now: beta, annealed when warming up."""
        if self.config.kl_warmup_steps == 0:
            return self.config.beta
        done = int(self.kl_step)
        return self.config.beta * min(1.0, done / self.config.kl_warmup_steps)

    def trained_classes(self) -> Tensor | None:
        """The classes seen in training (int64, sorted); None for an unconditional model or
        when nothing has been counted (every class is then allowed)."""
        if not self.config.conditional or int(self.label_counts.sum()) == 0:
            return None
        return torch.nonzero(self.label_counts.cpu()).flatten()

    def _check_trained_classes(self, cond: dict[str, Tensor] | None) -> None:
        """DataError when cond asks for a class that never appeared in training."""
        seen = self.trained_classes()
        if seen is None or not cond or "label" not in cond:
            return
        asked = torch.as_tensor(cond["label"]).cpu()
        if asked.numel() == 0 or asked.dtype.is_floating_point:
            return  # _embed_labels reports wrong dtypes and shapes
        known = torch.isin(asked, seen)
        if not bool(known.all()):
            missing = sorted({int(c) for c in asked[~known].unique()})
            raise DataError(
                f"this conditional vae never saw class{'es' if len(missing) > 1 else ''} "
                f"{', '.join(map(str, missing))} in training (it saw "
                f"{', '.join(map(str, seen.tolist()))}), so it has learned nothing about "
                f"{'them' if len(missing) > 1 else 'it'}: sample trained classes only, or train "
                "on data that has examples of every class you want to sample"
            )

    # ---- the contract ----------------------------------------------------------------------

    def after_step(self, step: int) -> None:
        """Record the completed step for KL annealing (a no-op without it)."""
        if self.config.kl_warmup_steps > 0:
            self.kl_step.fill_(step)

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Negative ELBO (beta-weighted KL) or, with iwae_k > 1, negative IWAE_k; batch mean.

        The reparameterization noise comes from the global RNG (`torch.randn`), which the
        training loop seeds and checkpoints: the documented exception to explicit generators.

        With KL annealing the KL weight is `kl_weight()`; with free bits the KL term is
        sum_g max(free_bits, batch-mean KL of group g).

        Logs (batch means, in nats): "elbo" (beta = 1 regardless of the config), "recon"
        (reconstruction loss -E_q[log p(x|z)]), "kl" (KL(q(z|x) || p(z))), "iwae" when
        iwae_k > 1, "kl_weight" when annealing and "kl_free_bits" (the clamped KL term) with
        free bits.
        """
        if key != "main":
            raise ConfigError(f"vae has one loss key, 'main'; got {key!r}")
        x = batch.x  # (B, *shape)
        y = self._embed_labels(batch.cond, x.shape[0])  # (B, E) or None
        if y is not None and self.training:
            with torch.no_grad():
                labels = batch.cond["label"].to(self.label_counts.device, torch.long)
                self.label_counts += torch.bincount(labels, minlength=self.spec.num_classes)
        mean, log_var = self.encoder(x, y)  # (B, Z), (B, Z)
        k = self.config.iwae_k
        eps = torch.randn((k, *mean.shape), device=mean.device, dtype=mean.dtype)  # (K, B, Z)
        log_px, log_pz, log_qz = self._log_weights(x, y, mean, log_var, eps)  # (K, B) each
        recon = -log_px.mean(0)  # (B,)
        kl_dims = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)  # (B, Z)
        kl = kl_dims.sum(-1)  # (B,)
        elbo = -(recon + kl)  # (B,)
        if k == 1:
            stats = {"elbo": elbo, "recon": recon, "kl": kl}
            if self.config.free_bits > 0:
                groups = kl_dims.mean(0).reshape(-1, self.config.free_bits_group).sum(-1)  # (G,)
                kl_term = groups.clamp(min=self.config.free_bits).sum()
                stats["kl_free_bits"] = kl_term
            else:
                kl_term = kl.mean()
            weight = self.kl_weight()
            loss = recon.mean() + weight * kl_term
            if self.config.kl_warmup_steps > 0:
                stats["kl_weight"] = kl.new_tensor(weight)
        else:
            iwae = torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k)  # (B,)
            loss = -iwae.mean()
            stats = {"elbo": elbo, "recon": recon, "kl": kl, "iwae": iwae}
        # One device-to-host copy for all logs.
        means = torch.stack([v.detach().mean() for v in stats.values()]).tolist()
        logs = dict(zip(stats, means))
        return LossOutput(loss, logs)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        decode: Literal["mean", "sample"] = "mean",
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw z ~ N(0, temperature^2 I) and decode it; float32 (N, *spec.shape).

        Args:
            num_samples: N.
            generator: the source of every random draw (z and, with decode="sample", x).
            cond: {"label": int64 (N,)} for a conditional model (required then; a class that
                never appeared in training is a DataError); an unconditional model takes none.
            decode: "mean" returns E[x|z] (Bernoulli probabilities for images, the Gaussian
                mean), "sample" draws x ~ p(x|z).
            temperature: scales the prior's std; below 1 trades diversity for typicality.

        Returns:
            Samples in the data set's space; images in [0, 1].
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if decode not in ("mean", "sample"):
            raise ConfigError(f"vae sample: decode={decode!r} is not one of 'mean', 'sample'")
        if not math.isfinite(temperature) or temperature < 0:
            raise ConfigError(f"vae sample: temperature={temperature} must be finite and >= 0")
        if cond and not self.config.conditional:
            raise ConfigError(
                "this vae is unconditional (conditional=false): sample without cond, or train "
                "with conditional: true to sample given labels"
            )
        self._check_trained_classes(cond)
        with _evaluating(self):
            device = self.device
            y = self._embed_labels(cond, num_samples)  # (N, E) or None
            z = temperature * _randn((num_samples, self.config.latent_dim), generator, device)
            chunks = []
            for start in range(0, num_samples, SAMPLE_CHUNK):
                part = slice(start, start + SAMPLE_CHUNK)
                param = self.decoder(z[part], None if y is None else y[part])  # (n, *shape)
                x = self._mean(param)
                if decode == "sample" and self.decoder_kind == "bernoulli":
                    x = (_rand(tuple(x.shape), generator, device) < x).to(x.dtype)
                elif decode == "sample":
                    std = self.decoder_log_std.clamp(*LOG_STD_RANGE).exp()
                    x = self._mean(param + std * _randn(tuple(param.shape), generator, device))
                chunks.append(x)
            if not chunks:
                return torch.empty((0, *self.spec.shape), device=device)
            return torch.cat(chunks).float()

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        k: int = 100,
        batch_size: int = 8192,
        generator: torch.Generator | None = None,
    ) -> LogLikelihood:
        """The IWAE_k lower bound on log p(x) per data point, in nats (Burda et al. 2016).

        k = 1 is a one-sample ELBO estimate. With the Bernoulli decoder on non-binary images the
        figure is the binary cross-entropy bound, not a density of continuous pixels.

        Args:
            x: (B, *spec.shape), in the data set's space.
            cond: {"label": int64 (B,)} for a conditional model (the bound is on log p(x|y));
                ignored by an unconditional one.
            k: importance samples per data point.
            batch_size: (data point, importance sample) pairs decoded per forward pass; bounds
                memory, and with it the draws' order (fix it too to reproduce a figure).
            generator: the source of the importance samples, for reproducible evaluation.

        Returns:
            LogLikelihood with nats float64 (B,) on x's device, kind "lower_bound".
        """
        for name, value in (("k", k), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"vae log_likelihood: {name}={value!r} must be an integer >= 1")
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"x has sample shape {tuple(x.shape[1:])}, but this vae models {self.spec.shape}"
            )
        with _evaluating(self):
            device = self.device
            xs = x.to(device, torch.float32)
            y = self._embed_labels(cond, xs.shape[0])  # (B, E) or None
            rows = max(1, batch_size // k)
            k_chunk = min(k, batch_size)
            nats = []
            for start in range(0, xs.shape[0], rows):
                xb = xs[start : start + rows]  # (b, *shape)
                yb = None if y is None else y[start : start + rows]
                mean, log_var = self.encoder(xb, yb)  # (b, Z), (b, Z)
                log_w = []
                for k_start in range(0, k, k_chunk):
                    shape = (min(k_chunk, k - k_start), *mean.shape)
                    eps = _randn(shape, generator, device)  # (k', b, Z)
                    log_px, log_pz, log_qz = self._log_weights(xb, yb, mean, log_var, eps)
                    log_w.append((log_px + log_pz - log_qz).double())  # (k', b)
                nats.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))  # (b,)
            values = torch.cat(nats) if nats else torch.empty(0, dtype=torch.float64)
        return LogLikelihood(
            values.to(x.device),
            "lower_bound",
            {"bound": "iwae", "k": k, "decoder": self.decoder_kind},
        )

    @torch.no_grad()
    def reconstruct(self, x: Tensor, *, cond: dict[str, Tensor] | None = None) -> Tensor:
        """Decoder mean at the posterior mean: x (B, *shape) -> (B, *shape), float32."""
        with _evaluating(self):
            xs = x.to(self.device, torch.float32)
            mean, _ = self.encode(xs, cond=cond)  # (B, Z)
            return self.decode(mean, cond=cond).float()

    def import_state(self, tensors: dict[str, Tensor]) -> None:
        """Load weights; a conditional model saved before class counting loads with no counts."""
        if self.config.conditional and "label_counts" not in tensors:
            tensors = {**tensors, "label_counts": torch.zeros_like(self.label_counts.cpu())}
        super().import_state(tensors)
