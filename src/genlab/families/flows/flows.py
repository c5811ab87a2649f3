"""Normalizing flows: RealNVP, MAF, IAF and NSF for vectors, RealNVP (and Glow) for images.

A flow is an invertible map f from data x to z with base p(z) = N(0, I), so the likelihood is
exact (change of variables):

    log p(x | y) = log N(f(x; y); 0, I) + log |det df/dx|

and sampling draws z ~ N(0, temperature^2 I) and returns f^{-1}(z). The models differ only in
the transforms they compose (see transforms.py for the papers):

- `realnvp`: vectors: affine couplings with alternating masks, ActNorm and seeded permutations;
  images: Dinh et al.'s multiscale architecture (per scale three checkerboard couplings, a
  squeeze, three channel couplings, a split; four checkerboard couplings at the last scale).
- `maf`: masked affine autoregressive layers and reversals; fast density, sampling takes D passes.
- `iaf`: the same layers inverted; fast sampling, density takes D passes (still exact).
- `nsf`: rational-quadratic spline couplings or autoregressive layers (`kind`).
- `glow` (glow.py): squeeze, K x (ActNorm, 1x1 conv, affine coupling), split, per level.

`conditional: true` feeds a learned embedding of cond["label"] to every conditioner (p(x|y));
image flows also condition every split prior and add a class-dependent affine base.

Images and likelihood kinds. Quantized images (spec.discrete_levels = L, e.g. 256 for 8-bit;
the data hold k / (L - 1)) are dequantized, y = (k + u) / L with u in [0, 1)^D, uniform or
from a learned q(u | k) (`dequantization: variational`, Flow++). The flow is a density on
[0, 1)^D, and for the discrete image

    log P(k) >= E_q[log p(y) - log q(u | k)] - D log L,

so `log_likelihood` of quantized images returns this bound (one draw of u per image, or the
importance-weighted bound of `samples` draws), kind "lower_bound", in nats of the discrete
image: bits/dim = -nats / (D ln 2), with no further dequantization term (scale 1 in
genlab.metrics.likelihood). The continuous density itself is exact; for continuous data
(vectors, or images with discrete_levels None) `log_likelihood` returns it, kind "exact".
Image training minimises the bound in bits/dim (logged as "bpd"); samples are quantized back
onto the data's levels, k = floor(L y).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register
from genlab.families.flows import transforms as T

LOG_2PI = math.log(2 * math.pi)
Activation = Literal["silu", "relu", "gelu", "tanh"]
NSFKind = Literal["coupling", "autoregressive"]
PermutationKind = Literal["random", "reverse"]
Preprocess = Literal["logit", "shift"]
Dequantization = Literal["uniform", "variational"]
# A quantized value may be off its grid point k / (L - 1) by float32 rounding, far below this.
LEVEL_TOLERANCE = 1e-3
IMAGE_BATCH = 256  # images scored per forward pass by default


def _check_common(name: str, config: Any) -> None:
    """Validate the fields every vector flow config has; raise ConfigError naming the fix."""
    if config.num_layers < 1:
        raise ConfigError(f"{name}.num_layers={config.num_layers}: set it to 1 or more, e.g. 4")
    if not config.hidden or any(w < 1 for w in config.hidden):
        raise ConfigError(f"{name}.hidden={config.hidden}: give one or more positive widths")
    check_activation(name, config)
    if config.label_dim < 1:
        raise ConfigError(f"{name}.label_dim={config.label_dim}: set it to 1 or more, e.g. 8")


def check_activation(name: str, config: Any) -> None:
    if config.activation not in get_args(Activation):
        raise ConfigError(
            f"{name}.activation={config.activation!r} is not one of "
            f"{', '.join(map(repr, get_args(Activation)))}"
        )


def check_image_options(name: str, config: Any) -> None:
    """Validate the image fields shared by realnvp and glow; raise ConfigError naming the fix."""
    if config.hidden_channels < 1:
        raise ConfigError(f"{name}.hidden_channels={config.hidden_channels}: set it to 1 or more")
    if config.preprocess not in get_args(Preprocess):
        raise ConfigError(f"{name}.preprocess={config.preprocess!r} is not one of 'logit', 'shift'")
    if not 0.0 < config.logit_alpha < 0.5:
        raise ConfigError(
            f"{name}.logit_alpha={config.logit_alpha} must be in (0, 0.5), e.g. 0.05: the logit "
            "of a dequantized 0 would be -inf"
        )
    if config.dequantization not in get_args(Dequantization):
        raise ConfigError(
            f"{name}.dequantization={config.dequantization!r} is not one of 'uniform', "
            "'variational'"
        )
    if config.dequant_hidden_channels < 1 or config.dequant_layers < 1:
        raise ConfigError(
            f"{name}.dequant_hidden_channels and dequant_layers must be 1 or more, got "
            f"{config.dequant_hidden_channels} and {config.dequant_layers}"
        )
    if config.marginal_spline_bins == 1 or config.marginal_spline_bins < 0:
        raise ConfigError(
            f"{name}.marginal_spline_bins={config.marginal_spline_bins}: set it to 0 (no spline) "
            "or 2 or more, e.g. 16"
        )


def check_image_size(name: str, shape: tuple[int, ...], halvings: int, what: str) -> None:
    """ConfigError unless H and W of (C, H, W) can be halved `halvings` times."""
    _, h, w = shape
    factor = 2**halvings
    if h % factor or w % factor:
        raise ConfigError(
            f"{name}: {what} halve the image {halvings} times, so H and W must be multiples of "
            f"{factor}, but the images are {h} x {w}: use fewer levels/scales"
        )


@dataclass(frozen=True)
class RealNVPConfig:
    """Configuration of `RealNVP`.

    Vectors use the fields up to `permute`; images use `hidden_channels` onwards (and
    `actnorm`), with Dinh et al.'s multiscale architecture.

    Args:
        num_layers: affine coupling layers (parity alternates between layers). Vectors.
        hidden: widths of each coupling's conditioner MLP. Vectors.
        mask: "half" (first/second half) or "alternate" (even/odd features). Vectors.
        actnorm: an ActNorm (data-initialized) before every coupling; it stands in for the
            paper's batch normalization on images.
        permute: a seeded random permutation after every coupling. Vectors.
        activation: the conditioners' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
        hidden_channels: width of each image coupling's conv conditioner.
        num_scales: scales of the multiscale image flow (H and W must halve num_scales - 1
            times).
        couplings_per_stage: couplings per stage (the paper: 3 checkerboard, squeeze, 3
            channel per scale, and 3 + 1 checkerboard at the last scale).
        preprocess: "logit" (the paper's logit of alpha + (1 - 2 alpha) y) or "shift" (y - 0.5).
        logit_alpha: alpha of the logit.
        dequantization: "uniform" or "variational" (Flow++) for quantized images.
        dequant_hidden_channels: width of the variational dequantizer's networks.
        dequant_layers: couplings of the variational dequantizer.
        marginal_spline_bins: if above 0, a learned rational-quadratic spline per pixel with
            this many bins right after the preprocessing (`transforms.ElementwiseSpline`);
            0 (the default) leaves it out. Images.
    """

    num_layers: int = 6
    hidden: tuple[int, ...] = (128, 128)
    mask: T.MaskKind = "half"
    actnorm: bool = True
    permute: bool = True
    activation: Activation = "silu"
    conditional: bool = False
    label_dim: int = 8
    hidden_channels: int = 64
    num_scales: int = 2
    couplings_per_stage: int = 3
    preprocess: Preprocess = "logit"
    logit_alpha: float = 0.05
    dequantization: Dequantization = "uniform"
    dequant_hidden_channels: int = 16
    dequant_layers: int = 2
    marginal_spline_bins: int = 0

    def __post_init__(self) -> None:
        _check_common("realnvp", self)
        if self.mask not in get_args(T.MaskKind):
            raise ConfigError(
                f"realnvp.mask={self.mask!r} is not one of 'half', 'alternate' (the vector masks; "
                "images get checkerboard and channel masks by construction)"
            )
        check_image_options("realnvp", self)
        if self.num_scales < 1 or self.couplings_per_stage < 1:
            raise ConfigError(
                f"realnvp.num_scales={self.num_scales} and couplings_per_stage="
                f"{self.couplings_per_stage} must be 1 or more, e.g. 2 and 3"
            )


@dataclass(frozen=True)
class MAFConfig:
    """Configuration of `MAF` and `IAF`.

    Args:
        num_layers: masked affine autoregressive layers, with a reversal between layers.
        hidden: widths of each MADE.
        activation: the MADEs' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
    """

    num_layers: int = 5
    hidden: tuple[int, ...] = (128, 128)
    activation: Activation = "silu"
    conditional: bool = False
    label_dim: int = 8

    def __post_init__(self) -> None:
        _check_common("maf/iaf", self)


@dataclass(frozen=True)
class NSFConfig:
    """Configuration of `NSF`.

    Args:
        num_layers: spline layers.
        hidden: widths of each conditioner (MLP for couplings, MADE for autoregressive).
        kind: "coupling" (one pass both ways) or "autoregressive" (one pass for density, D for
            sampling).
        bins: spline bins K.
        tail_bound: the spline acts on [-tail_bound, tail_bound]; identity outside.
        permutation: between layers, "random" (seeded permutations, the paper's choice) or
            "reverse" (reversals, as MAF and zuko's NSF order their layers).
        activation: the conditioners' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
    """

    num_layers: int = 4
    hidden: tuple[int, ...] = (128, 128)
    kind: NSFKind = "coupling"
    bins: int = 8
    tail_bound: float = 5.0
    permutation: PermutationKind = "random"
    activation: Activation = "silu"
    conditional: bool = False
    label_dim: int = 8

    def __post_init__(self) -> None:
        _check_common("nsf", self)
        if self.permutation not in get_args(PermutationKind):
            raise ConfigError(
                f"nsf.permutation={self.permutation!r} is not one of 'random', 'reverse'"
            )
        if self.kind not in get_args(NSFKind):
            raise ConfigError(f"nsf.kind={self.kind!r} is not one of 'coupling', 'autoregressive'")
        if self.bins < 2:
            raise ConfigError(f"nsf.bins={self.bins}: set it to 2 or more, e.g. 8")
        if not (math.isfinite(self.tail_bound) and self.tail_bound > 0):
            raise ConfigError(f"nsf.tail_bound={self.tail_bound}: set it above 0, e.g. 5")


class FlowModel(NeuralModel):
    """Shared contract of the flows; subclasses only build their transform.

    Args:
        config: the model's config dataclass.
        spec: the data spec: points or table rows (D,) in data units, or images (C, H, W) in
            [0, 1] for the flows whose `modalities` include "image".
    """

    #: the data modalities the subclass's `build` handles
    modalities: tuple[str, ...] = ("points", "tabular")

    def __init__(self, config: Any, spec: DataSpec) -> None:
        super().__init__()
        self._check_spec(config, spec)
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        self.dim = spec.num_dims
        self.is_image = spec.modality == "image"
        context_dim = config.label_dim if config.conditional else 0
        self.label_embedding = (
            nn.Embedding(spec.num_classes, config.label_dim) if config.conditional else None
        )
        shape = tuple(spec.shape)
        if not self.is_image:
            if getattr(config, "marginal_spline_bins", 0):
                raise ConfigError(
                    f"{self.name}.marginal_spline_bins={config.marginal_spline_bins} is for "
                    f"images, but {spec.name or 'this data'} is {spec.modality}: leave it at 0"
                )
            self.levels = None
            self.dequantizer = None
            self.transform = self.build(config, shape, context_dim)
            return
        # images: (dequantize) -> preprocess -> multiscale flow -> (class-conditional base)
        self.levels = spec.discrete_levels
        self.dequantizer = None
        if self.levels is not None:
            self.dequantizer = (
                T.VariationalDequantization(
                    shape,
                    config.dequant_hidden_channels,
                    config.dequant_layers,
                    activation=config.activation,
                )
                if config.dequantization == "variational"
                else T.UniformDequantization()
            )
        if config.preprocess == "logit":
            preprocess: T.Transform = T.Logit(config.logit_alpha)
            edge = math.log((1 - config.logit_alpha) / config.logit_alpha)  # logit of 1 - alpha
        else:
            preprocess, edge = T.Shift(-0.5), 0.5
        marginal = (
            [T.ElementwiseSpline(shape, config.marginal_spline_bins, bound=edge + 0.05)]
            if config.marginal_spline_bins
            else []
        )
        top = [T.ContextAffine(self.dim, context_dim)] if context_dim else []
        self.transform = T.Compose(
            preprocess, *marginal, self.build(config, shape, context_dim), *top
        )

    @staticmethod
    @abc.abstractmethod
    def build(config: Any, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        """The flow's transform: data (B, D) -> base (B, D), or images (B, C, H, W) after
        preprocessing -> base (B, C * H * W)."""

    def _check_spec(self, config: Any, spec: DataSpec) -> None:
        data = spec.name or "this data"
        if spec.modality == "image" and "image" not in self.modalities:
            raise ConfigError(
                f"{self.name} models vectors, but {data} is images {spec.shape}: use glow or "
                "realnvp for images, or flatten the data"
            )
        if spec.modality == "image":
            if len(spec.shape) != 3:
                raise ConfigError(f"{self.name} models images (C, H, W), got shape {spec.shape}")
        elif spec.modality not in self.modalities or len(spec.shape) != 1:
            wanted = " or ".join(self.modalities)
            raise ConfigError(
                f"{self.name} models {wanted} data, but {data} is {spec.modality} with shape "
                f"{spec.shape}"
            )
        if config.conditional and not spec.num_classes:
            raise ConfigError(
                f"{self.name}.conditional=true needs labelled data, but {data} has no classes: "
                "set conditional: false or use a data set with labels"
            )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _context(self, cond: dict[str, Tensor] | None, num: int) -> Tensor | None:
        """The label embedding (B, E) of cond["label"]; None for an unconditional model."""
        if not self.config.conditional:
            return None  # an unconditional flow ignores labels the data may carry
        if not cond or "label" not in cond:
            raise DataError(
                f"this {self.name} is conditional: pass cond={{'label': int64 tensor ({num},)}}"
            )
        y = torch.as_tensor(cond["label"])
        if y.shape != (num,):
            raise DataError(f"cond['label'] has shape {tuple(y.shape)}; expected ({num},)")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise DataError(f"cond['label'] must hold integer classes, got dtype {y.dtype}")
        if num and (int(y.min()) < 0 or int(y.max()) >= self.spec.num_classes):
            raise DataError(
                f"cond['label'] has classes outside the trained 0..{self.spec.num_classes - 1}"
            )
        return self.label_embedding(y.to(self.device, torch.long))

    def _log_prob(self, x: Tensor, context: Tensor | None) -> Tensor:
        """log p(x) of the continuous density in nats (B,), by the change of variables."""
        z, ladj = self.transform(x, context)  # (B, D), (B,)
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1) + ladj

    def _check_x(self, x: Tensor) -> None:
        shape = tuple(self.spec.shape)
        if tuple(x.shape[1:]) != shape or x.ndim != len(shape) + 1:
            raise DataError(
                f"x has shape {tuple(x.shape)}; this {self.name} models (B, {', '.join(map(str, shape))})"
            )
        if not self.is_image or x.numel() == 0:
            return
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise DataError(
                f"images must be finite and in [0, 1], got values in [{float(x.min())}, "
                f"{float(x.max())}]: genlab's image data sets give [0, 1]"
            )
        if self.levels is not None:
            scaled = x.double() * (self.levels - 1)
            if float((scaled - scaled.round()).abs().max()) > LEVEL_TOLERANCE:
                raise DataError(
                    f"this {self.name} models images quantized to {self.levels} levels (values "
                    f"k / {self.levels - 1}), but x has values off that grid: the bound on the "
                    "discrete likelihood needs the quantized image"
                )

    def _log_bound(
        self, x: Tensor, context: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """One-draw log-likelihood in nats (B,): of the discrete image (a lower bound, through
        dequantization) for quantized images, else the exact continuous log density."""
        if self.levels is None:
            return self._log_prob(x, context)
        k = torch.round(x * (self.levels - 1))  # (B, C, H, W) integer levels
        u, log_q = self.dequantizer(k, self.levels, generator)
        y = (k + u) / self.levels  # (B, C, H, W) in [0, 1)
        return self._log_prob(y, context) - log_q - self.dim * math.log(self.levels)

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Mean negative log-likelihood of the batch: nats for vectors; bits per dimension of
        the (bound on the) likelihood for images. Logs "nll" in nats (and "bpd" for images)."""
        if key != "main":
            raise ConfigError(f"{self.name} has one loss key, 'main'; got {key!r}")
        self._check_x(batch.x)
        context = self._context(batch.cond, batch.x.shape[0])
        # float32 even under a bf16/fp16 autocast: log-determinants summed over many
        # dimensions lose the likelihood's precision in half precision
        with torch.autocast(batch.x.device.type, enabled=False):
            nll = -self._log_bound(batch.x.float(), context, None).mean()
        if not self.is_image:
            return LossOutput(nll, {"nll": float(nll.detach())})
        bpd = nll / (self.dim * math.log(2))
        return LossOutput(bpd, {"nll": float(nll.detach()), "bpd": float(bpd.detach())})

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw z ~ N(0, temperature^2 I) and return f^{-1}(z); float32 (N, *spec.shape).

        Images are clamped to [0, 1] and, for quantized data, put back on the data's levels
        (k = floor(L y) of the dequantized y, returned as k / (L - 1)).

        Args:
            num_samples: N.
            generator: the source of the base noise (drawn on its own device).
            cond: {"label": int64 (N,)} for a conditional model (required then).
            temperature: scales the base noise (for Glow, every level's prior); below 1
                trades diversity for typicality.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if not math.isfinite(temperature) or temperature < 0:
            raise ConfigError(f"{self.name} sample: temperature={temperature} must be >= 0")
        if cond and not self.config.conditional:
            raise ConfigError(
                f"this {self.name} is unconditional (conditional=false): sample without cond, "
                "or train with conditional: true to sample given labels"
            )
        was_training = self.training
        self.eval()
        try:
            device = self.device
            where = generator.device if generator is not None else device
            z = torch.randn((num_samples, self.dim), generator=generator, device=where)
            z = temperature * z.to(device)  # (N, D)
            x, _ = self.transform.inverse(z, self._context(cond, num_samples))
        finally:
            self.train(was_training)
        if not self.is_image:
            return x.float()
        y = x.clamp(0.0, 1.0)  # (N, C, H, W)
        if self.levels is not None:
            y = torch.floor(y * self.levels).clamp(0, self.levels - 1) / (self.levels - 1)
        return y.float()

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        samples: int = 1,
    ) -> LogLikelihood:
        """log p(x) (or log p(x|y)) per row in nats, float32 (B,).

        Continuous data: the exact log density, kind "exact". Quantized images: the
        dequantization bound on the discrete log-likelihood, kind "lower_bound" (see the
        module docstring); `details["bits_per_dim"]` holds -mean / (D ln 2).

        Args:
            x: (B, D) in the data's units, or images (B, C, H, W) in [0, 1].
            cond: {"label": int64 (B,)} for a conditional model; ignored by an unconditional one.
            batch_size: rows per forward pass (bounds memory only); default 65,536 rows, 256
                images.
            generator: the source of the dequantization noise (default: a fixed seed 0), so
                a figure is reproducible.
            samples: dequantization draws per image; above 1 the importance-weighted bound
                log mean_s exp(log p(y_s) - log q(u_s)) - D log L, which is tighter.
        """
        if batch_size is None:
            batch_size = IMAGE_BATCH if self.is_image else 65536
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"{self.name} log_likelihood: batch_size={batch_size!r} must be >= 1")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"{self.name} log_likelihood: samples={samples!r} must be >= 1")
        if samples > 1 and self.levels is None:
            raise ConfigError(
                f"{self.name} log_likelihood: samples={samples} averages over dequantization "
                "noise, which only quantized images have; the likelihood here is exact"
            )
        self._check_x(x)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        was_training = self.training
        self.eval()
        try:
            xs = x.to(self.device, torch.float32)
            context = self._context(cond, xs.shape[0])
            parts = []
            for i in range(0, xs.shape[0], batch_size):
                chunk = xs[i : i + batch_size]
                ctx = None if context is None else context[i : i + batch_size]
                draws = torch.stack(
                    [self._log_bound(chunk, ctx, generator) for _ in range(samples)]
                )
                parts.append(torch.logsumexp(draws, 0) - math.log(samples))  # (b,)
        finally:
            self.train(was_training)
        nats = torch.cat(parts) if parts else torch.empty(0)
        details: dict[str, Any] = {"model": self.name}
        kind = "exact"
        if self.is_image:
            details["bits_per_dim"] = (
                -float(nats.double().mean()) / (self.dim * math.log(2)) if len(nats) else None
            )
            if self.levels is not None:
                kind = "lower_bound"
                details.update(
                    dequantization=self.config.dequantization,
                    levels=self.levels,
                    dequantization_samples=samples,
                )
        return LogLikelihood(nats.to(x.device), kind, details)


def _options(config: Any, context_dim: int) -> dict[str, Any]:
    return {"context_dim": context_dim, "activation": config.activation}


@register("realnvp", RealNVPConfig, "Real NVP flow: affine couplings, ActNorm, permutations")
class RealNVP(FlowModel):
    """Real NVP (Dinh et al. 2017): [ActNorm, affine coupling, permutation] x L on vectors; on
    images the paper's multiscale flow of checkerboard and channel-mask couplings."""

    modalities = ("points", "tabular", "image")

    @staticmethod
    def build(config: RealNVPConfig, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        if len(shape) == 3:
            return _realnvp_images(config, shape, context_dim)
        (dim,) = shape
        layers: list[T.Transform] = []
        for i in range(config.num_layers):
            if config.actnorm:
                layers.append(T.ActNorm(dim))
            layers.append(
                T.affine_coupling(
                    dim,
                    config.hidden,
                    mask=config.mask,
                    parity=i % 2 == 1,
                    **_options(config, context_dim),
                )
            )
            if config.permute and i < config.num_layers - 1:
                layers.append(T.Permutation(dim, seed=i))
        return T.Compose(*layers)


def _realnvp_images(
    config: RealNVPConfig, shape: tuple[int, int, int], context_dim: int
) -> T.Transform:
    """Dinh et al. 2017, Sec. 3.6: per scale, checkerboard couplings, squeeze, channel
    couplings, split; the last scale one more checkerboard coupling and no squeeze."""
    check_image_size("realnvp", shape, config.num_scales - 1, f"num_scales={config.num_scales}")
    vector_context = (context_dim,) if context_dim else ()

    def couplings(channels: int, mask: str, count: int) -> list[T.Transform]:
        layers: list[T.Transform] = []
        for i in range(count):
            if config.actnorm:
                layers.append(T.ActNorm(channels))
            layers.append(
                T.ImageCoupling(
                    channels,
                    T.Affine(),
                    config.hidden_channels,
                    mask=mask,
                    parity=i % 2 == 1,
                    context_shape=vector_context,
                    activation=config.activation,
                )
            )
        return layers

    def scale(shape, index, last):
        c, h, w = shape
        k = config.couplings_per_stage
        if last:
            return couplings(c, "checkerboard", k + 1), shape
        layers = couplings(c, "checkerboard", k) + [T.Squeeze()]
        return layers + couplings(4 * c, "channel", k), (4 * c, h // 2, w // 2)

    return T.multiscale(shape, config.num_scales, scale, context_dim=context_dim)


def _autoregressive_stack(config: MAFConfig, dim: int, context_dim: int) -> T.Compose:
    layers: list[T.Transform] = []
    for i in range(config.num_layers):
        layers.append(
            T.masked_affine_autoregressive(dim, config.hidden, **_options(config, context_dim))
        )
        if i < config.num_layers - 1:
            layers.append(T.Permutation(dim, reverse=True))
    return T.Compose(*layers)


@register("maf", MAFConfig, "masked autoregressive flow: fast density, sequential sampling")
class MAF(FlowModel):
    """Masked Autoregressive Flow (Papamakarios et al. 2017): MADE layers and reversals."""

    @staticmethod
    def build(config: MAFConfig, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        return _autoregressive_stack(config, shape[0], context_dim)


@register("iaf", MAFConfig, "inverse autoregressive flow: fast sampling, sequential density")
class IAF(FlowModel):
    """Inverse Autoregressive Flow (Kingma et al. 2016): MAF's stack, inverted."""

    @staticmethod
    def build(config: MAFConfig, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        return T.Inverse(_autoregressive_stack(config, shape[0], context_dim))


@register("nsf", NSFConfig, "neural spline flow: rational-quadratic couplings or autoregressive")
class NSF(FlowModel):
    """Neural Spline Flow (Durkan et al. 2019): RQ-spline layers and seeded permutations."""

    @staticmethod
    def build(config: NSFConfig, shape: tuple[int, ...], context_dim: int) -> T.Transform:
        (dim,) = shape
        layers: list[T.Transform] = []
        spline = {"bins": config.bins, "tail_bound": config.tail_bound}
        for i in range(config.num_layers):
            if config.kind == "coupling":
                # a reversal already swaps the halves; alternating parity would undo it
                parity = i % 2 == 1 and config.permutation == "random"
                layer = T.spline_coupling(
                    dim, config.hidden, parity=parity, **spline, **_options(config, context_dim)
                )
            else:
                layer = T.masked_spline_autoregressive(
                    dim, config.hidden, **spline, **_options(config, context_dim)
                )
            layers.append(layer)
            if i < config.num_layers - 1:
                reverse = config.permutation == "reverse"
                layers.append(T.Permutation(dim, seed=i, reverse=reverse))
        return T.Compose(*layers)
