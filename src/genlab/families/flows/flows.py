"""Normalizing flows on vectors: RealNVP, MAF, IAF and NSF, each a composition of transforms.

A flow is an invertible map f from data x to z with base p(z) = N(0, I), so the likelihood is
exact (change of variables):

    log p(x | y) = log N(f(x; y); 0, I) + log |det df/dx|

and sampling draws z ~ N(0, temperature^2 I) and returns f^{-1}(z). The models differ only in
the transforms they compose (see transforms.py for the papers):

- `realnvp`: affine couplings with alternating masks, ActNorm and seeded permutations.
- `maf`: masked affine autoregressive layers and reversals; fast density, sampling takes D passes.
- `iaf`: the same layers inverted; fast sampling, density takes D passes (still exact).
- `nsf`: rational-quadratic spline couplings or autoregressive layers (`kind`).

`conditional: true` feeds a learned embedding of cond["label"] to every conditioner (p(x|y)).
Vectors only (points, tables); the image flow (glow) is not implemented yet.
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


def _check_common(name: str, config: Any) -> None:
    """Validate the fields every flow config has; raise ConfigError naming the fix."""
    if config.num_layers < 1:
        raise ConfigError(f"{name}.num_layers={config.num_layers}: set it to 1 or more, e.g. 4")
    if not config.hidden or any(w < 1 for w in config.hidden):
        raise ConfigError(f"{name}.hidden={config.hidden}: give one or more positive widths")
    if config.activation not in get_args(Activation):
        raise ConfigError(
            f"{name}.activation={config.activation!r} is not one of "
            f"{', '.join(map(repr, get_args(Activation)))}"
        )
    if config.label_dim < 1:
        raise ConfigError(f"{name}.label_dim={config.label_dim}: set it to 1 or more, e.g. 8")


@dataclass(frozen=True)
class RealNVPConfig:
    """Configuration of `RealNVP`.

    Args:
        num_layers: affine coupling layers (parity alternates between layers).
        hidden: widths of each coupling's conditioner MLP.
        mask: "half" (first/second half) or "alternate" (even/odd features).
        actnorm: an ActNorm (data-initialized) before every coupling.
        permute: a seeded random permutation after every coupling.
        activation: the conditioners' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
    """

    num_layers: int = 6
    hidden: tuple[int, ...] = (128, 128)
    mask: T.MaskKind = "half"
    actnorm: bool = True
    permute: bool = True
    activation: Activation = "silu"
    conditional: bool = False
    label_dim: int = 8

    def __post_init__(self) -> None:
        _check_common("realnvp", self)
        if self.mask not in get_args(T.MaskKind):
            raise ConfigError(f"realnvp.mask={self.mask!r} is not one of 'half', 'alternate'")


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
        activation: the conditioners' activation.
        conditional: model p(x|y) with y = cond["label"].
        label_dim: size of the learned label embedding (conditional only).
    """

    num_layers: int = 4
    hidden: tuple[int, ...] = (128, 128)
    kind: NSFKind = "coupling"
    bins: int = 8
    tail_bound: float = 5.0
    activation: Activation = "silu"
    conditional: bool = False
    label_dim: int = 8

    def __post_init__(self) -> None:
        _check_common("nsf", self)
        if self.kind not in get_args(NSFKind):
            raise ConfigError(f"nsf.kind={self.kind!r} is not one of 'coupling', 'autoregressive'")
        if self.bins < 2:
            raise ConfigError(f"nsf.bins={self.bins}: set it to 2 or more, e.g. 8")
        if not (math.isfinite(self.tail_bound) and self.tail_bound > 0):
            raise ConfigError(f"nsf.tail_bound={self.tail_bound}: set it above 0, e.g. 5")


class FlowModel(NeuralModel):
    """Shared contract of the vector flows; subclasses only build their transform.

    Args:
        config: the model's config dataclass.
        spec: the data spec; points or table rows (D,) in data units.
    """

    def __init__(self, config: Any, spec: DataSpec) -> None:
        super().__init__()
        self._check_spec(config, spec)
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        self.dim = spec.num_dims
        context_dim = config.label_dim if config.conditional else 0
        self.label_embedding = (
            nn.Embedding(spec.num_classes, config.label_dim) if config.conditional else None
        )
        self.transform = self.build(config, self.dim, context_dim)

    @staticmethod
    @abc.abstractmethod
    def build(config: Any, dim: int, context_dim: int) -> T.Transform:
        """The flow's transform, data (B, D) -> base (B, D)."""

    def _check_spec(self, config: Any, spec: DataSpec) -> None:
        data = spec.name or "this data"
        if spec.modality == "image":
            raise ConfigError(
                f"{self.name} models vectors, but {data} is images {spec.shape}: the image flow "
                "(glow) is not implemented yet; use vae for images, or flatten the data"
            )
        if spec.modality not in ("points", "tabular") or len(spec.shape) != 1:
            raise ConfigError(
                f"{self.name} models continuous vectors (points or tabular, shape (D,)), but "
                f"{data} is {spec.modality} with shape {spec.shape}"
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
        """log p(x) in nats (B,) by the change of variables."""
        z, ladj = self.transform(x, context)  # (B, D), (B,)
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1) + ladj

    def _check_x(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(
                f"x has shape {tuple(x.shape)}; this {self.name} models (B, {self.dim})"
            )

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Mean negative log-likelihood of the batch in nats; logs "nll"."""
        if key != "main":
            raise ConfigError(f"{self.name} has one loss key, 'main'; got {key!r}")
        self._check_x(batch.x)
        nll = -self._log_prob(batch.x, self._context(batch.cond, batch.x.shape[0])).mean()
        return LossOutput(nll, {"nll": float(nll.detach())})

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw z ~ N(0, temperature^2 I) and return f^{-1}(z); float32 (N, D).

        Args:
            num_samples: N.
            generator: the source of the base noise (drawn on its own device).
            cond: {"label": int64 (N,)} for a conditional model (required then).
            temperature: scales the base noise; below 1 trades diversity for typicality.
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
        return x.float()

    @torch.no_grad()
    def log_likelihood(
        self, x: Tensor, *, cond: dict[str, Tensor] | None = None, batch_size: int = 65536
    ) -> LogLikelihood:
        """Exact log p(x) (or log p(x|y)) per row in nats, float32 (B,), kind "exact".

        Args:
            x: (B, D) in the data's units.
            cond: {"label": int64 (B,)} for a conditional model; ignored by an unconditional one.
            batch_size: rows per forward pass (bounds memory only).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"{self.name} log_likelihood: batch_size={batch_size!r} must be >= 1")
        self._check_x(x)
        was_training = self.training
        self.eval()
        try:
            xs = x.to(self.device, torch.float32)
            context = self._context(cond, xs.shape[0])
            parts = [
                self._log_prob(
                    xs[i : i + batch_size], None if context is None else context[i : i + batch_size]
                )
                for i in range(0, xs.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        nats = torch.cat(parts) if parts else torch.empty(0)
        return LogLikelihood(nats.to(x.device), "exact", {"model": self.name})


def _options(config: Any, context_dim: int) -> dict[str, Any]:
    return {"context_dim": context_dim, "activation": config.activation}


@register("realnvp", RealNVPConfig, "Real NVP flow: affine couplings, ActNorm, permutations")
class RealNVP(FlowModel):
    """Real NVP (Dinh et al. 2017) on vectors: [ActNorm, affine coupling, permutation] x L."""

    @staticmethod
    def build(config: RealNVPConfig, dim: int, context_dim: int) -> T.Transform:
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
    def build(config: MAFConfig, dim: int, context_dim: int) -> T.Transform:
        return _autoregressive_stack(config, dim, context_dim)


@register("iaf", MAFConfig, "inverse autoregressive flow: fast sampling, sequential density")
class IAF(FlowModel):
    """Inverse Autoregressive Flow (Kingma et al. 2016): MAF's stack, inverted."""

    @staticmethod
    def build(config: MAFConfig, dim: int, context_dim: int) -> T.Transform:
        return T.Inverse(_autoregressive_stack(config, dim, context_dim))


@register("nsf", NSFConfig, "neural spline flow: rational-quadratic couplings or autoregressive")
class NSF(FlowModel):
    """Neural Spline Flow (Durkan et al. 2019): RQ-spline layers and seeded permutations."""

    @staticmethod
    def build(config: NSFConfig, dim: int, context_dim: int) -> T.Transform:
        layers: list[T.Transform] = []
        spline = {"bins": config.bins, "tail_bound": config.tail_bound}
        for i in range(config.num_layers):
            if config.kind == "coupling":
                layer = T.spline_coupling(
                    dim, config.hidden, parity=i % 2 == 1, **spline, **_options(config, context_dim)
                )
            else:
                layer = T.masked_spline_autoregressive(
                    dim, config.hidden, **spline, **_options(config, context_dim)
                )
            layers.append(layer)
            if i < config.num_layers - 1:
                layers.append(T.Permutation(dim, seed=i))
        return T.Compose(*layers)
