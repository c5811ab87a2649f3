"""Glow: a multiscale flow for images with invertible 1x1 convolutions.

Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (NeurIPS 2018).
Images (B, C, H, W) in [0, 1] are dequantized (uniformly, or variationally as in Flow++),
mapped to the real line (a logit, or the paper's centring y - 0.5), and then pass L levels;
each level is

    squeeze -> K x [ActNorm -> invertible 1x1 conv (LU) -> affine coupling] -> split

where the split factors out half the channels under a learned prior N(mu(z1), sigma(z1)) (a
conv3x3 of the kept half), and the last level ends without a split. Every step is a transform
of transforms.py, composed by `transforms.multiscale`; the model's contract (dequantization,
the discrete-likelihood bound and its bits/dim, temperature, quantized samples) is
`flows.FlowModel`'s, shared with the image Real NVP.

Likelihood. For quantized images (8-bit: L = 256, y = (k + u) / 256) `log_likelihood` returns
E_q[log p(y) - log q(u | k)] - D log L (one draw; `samples` for the importance-weighted bound),
a lower bound on the discrete log-likelihood, kind "lower_bound"; bits/dim = -nats / (D ln 2).
For continuous images (spec.discrete_levels None) it is the exact density, kind "exact".

Conditional Glow (`conditional: true`): a learned embedding of cond["label"] enters every
coupling's conditioner and every split prior, and a class-dependent affine base (Glow's `ycond`
prior) sits on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from genlab.core.errors import ConfigError
from genlab.core.registry import register
from genlab.families.flows import transforms as T
from genlab.families.flows.flows import (
    Activation,
    Dequantization,
    FlowModel,
    Preprocess,
    check_activation,
    check_image_options,
    check_image_size,
)

CouplingKind = Literal["affine", "additive"]


@dataclass(frozen=True)
class GlowConfig:
    """Configuration of `Glow` (the `model:` section of a run's YAML, field for field).

    Args:
        num_levels: L; each level squeezes, so H and W must be multiples of 2^L.
        steps_per_level: K steps of flow per level.
        hidden_channels: width of each coupling's conv conditioner (Glow: 512).
        coupling: "affine" (scale and shift) or "additive" (shift only, volume preserving).
        preprocess: "logit" (Real NVP's logit of alpha + (1 - 2 alpha) y) or "shift" (the
            Glow paper's y - 0.5). The default is the logit: on mnist5k it reached 2.49 test
            bits/dim after 4 CPU-minutes where the shift reached 3.81 (same model and steps).
        logit_alpha: alpha of the logit.
        dequantization: "uniform" or "variational" (Flow++) for quantized images.
        dequant_hidden_channels: width of the variational dequantizer's networks.
        dequant_layers: couplings of the variational dequantizer.
        marginal_spline_bins: if above 0, a learned rational-quadratic spline per pixel with
            this many bins right after the preprocessing (`transforms.ElementwiseSpline`);
            0 (the default, the paper's Glow) leaves it out. On mnist5k 16 bins took the
            benchmark Glow's test bits/dim from 1.428 to 1.228 in the same 45 CPU-minutes
            (benchmarks/flows_mnist5k.py).
        activation: the conditioners' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
    """

    num_levels: int = 2
    steps_per_level: int = 8
    hidden_channels: int = 64
    coupling: CouplingKind = "affine"
    preprocess: Preprocess = "logit"
    logit_alpha: float = 0.05
    dequantization: Dequantization = "uniform"
    dequant_hidden_channels: int = 16
    dequant_layers: int = 2
    marginal_spline_bins: int = 0
    activation: Activation = "relu"
    conditional: bool = False
    label_dim: int = 16

    def __post_init__(self) -> None:
        if self.num_levels < 1 or self.steps_per_level < 1:
            raise ConfigError(
                f"glow.num_levels={self.num_levels} and steps_per_level={self.steps_per_level} "
                "must be 1 or more, e.g. 2 and 8"
            )
        if self.coupling not in get_args(CouplingKind):
            raise ConfigError(f"glow.coupling={self.coupling!r} is not one of 'affine', 'additive'")
        if self.label_dim < 1:
            raise ConfigError(f"glow.label_dim={self.label_dim}: set it to 1 or more, e.g. 16")
        check_activation("glow", self)
        check_image_options("glow", self)


@register(
    "glow",
    GlowConfig,
    "Glow: multiscale image flow of ActNorm, invertible 1x1 convolutions and couplings",
)
class Glow(FlowModel):
    """Glow (Kingma & Dhariwal 2018) on images; see the module docstring."""

    modalities = ("image",)

    @staticmethod
    def build(config: GlowConfig, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        check_image_size("glow", shape, config.num_levels, f"num_levels={config.num_levels}")
        vector_context = (context_dim,) if context_dim else ()

        def level(shape, index, last):
            c, h, w = shape
            channels = 4 * c
            layers: list[T.Transform] = [T.Squeeze()]
            for k in range(config.steps_per_level):
                univariate = T.Affine() if config.coupling == "affine" else T.Additive()
                layers += [
                    T.ActNorm(channels),
                    T.InvertibleConv1x1(channels, seed=1000 * index + k),
                    T.ImageCoupling(
                        channels,
                        univariate,
                        config.hidden_channels,
                        mask="channel",
                        context_shape=vector_context,
                        activation=config.activation,
                    ),
                ]
            return layers, (channels, h // 2, w // 2)

        return T.multiscale(shape, config.num_levels, level, context_dim=context_dim)
