"""Invertible transforms with log-determinants, composed into normalizing flows.

Every `Transform` maps data towards the base distribution in `forward` (the normalizing
direction) and back in `inverse`; both return the log |det| of their own Jacobian per sample, so

    log p(x) = log N(f(x); 0, I) + log |det df/dx|,     f = forward.

Flows are built by composition (zuko-style), not subclassing: a coupling layer and a masked
autoregressive layer each take a `Univariate` elementwise bijection, affine (RealNVP, MAF) or a
rational-quadratic spline (Neural Spline Flows), and `Inverse` turns MAF into IAF.

- Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (ICLR 2017): couplings.
- Germain et al., "MADE: Masked Autoencoder for Distribution Estimation" (ICML 2015).
- Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow" (NeurIPS 2017): MAF.
- Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (2016): IAF.
- Durkan et al., "Neural Spline Flows" (NeurIPS 2019): rational-quadratic splines.
- Kingma & Dhariwal, "Glow" (NeurIPS 2018): ActNorm with data-dependent initialization.
"""

from __future__ import annotations

import abc
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.errors import ConfigError, DataError
from genlab.nn.mlp import MLP, activation_layer

MaskKind = Literal["half", "alternate"]


def _check_context(context: Tensor | None, batch: int, context_dim: int) -> Tensor | None:
    """The context (B, C) of a conditional transform; raises DataError on a wrong shape."""
    if context_dim == 0:
        return None
    if context is None:
        raise DataError(
            f"this transform is conditional: pass context of shape ({batch}, {context_dim})"
        )
    if context.shape != (batch, context_dim):
        raise DataError(
            f"context has shape {tuple(context.shape)}; expected ({batch}, {context_dim})"
        )
    return context


class Transform(nn.Module, abc.ABC):
    """An invertible map with log |det J|; forward is data -> base (normalizing direction)."""

    @abc.abstractmethod
    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, D) -> y (B, D), log |det dy/dx| (B,)."""

    @abc.abstractmethod
    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """y (B, D) -> x (B, D), log |det dx/dy| (B,)."""


class Compose(Transform):
    """Transforms applied in order in `forward` and in reverse order in `inverse`."""

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])  # (B,)
        for t in self.transforms:
            x, ladj = t(x, context)
            total = total + ladj
        return x, total

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])  # (B,)
        for t in reversed(self.transforms):
            y, ladj = t.inverse(y, context)
            total = total + ladj
        return y, total


class Inverse(Transform):
    """The inverse of a transform: swaps `forward` and `inverse` (MAF -> IAF)."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(y, context)


class Permutation(Transform):
    """A fixed permutation of the features: a seeded random one, or the reversal."""

    def __init__(self, dim: int, *, seed: int = 0, reverse: bool = False) -> None:
        super().__init__()
        if reverse:
            perm = torch.arange(dim - 1, -1, -1)
        else:
            perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y[:, self.inv_perm], y.new_zeros(y.shape[0])


class ActNorm(Transform):
    """Per-feature affine normalization, z = (x - loc) / exp(log_scale) (Glow, 2018).

    On the first forward pass in training mode, loc and log_scale are set from the batch so the
    output has zero mean and unit variance per feature; `initialized` is saved with the weights.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized) and x.shape[0] > 1:
            with torch.no_grad():
                self.loc.copy_(x.mean(0))
                self.log_scale.copy_(x.std(0).clamp_min(1e-6).log())
                self.initialized.fill_(True)
        z = (x - self.loc) * torch.exp(-self.log_scale)  # (B, D)
        return z, (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y * torch.exp(self.log_scale) + self.loc  # (B, D)
        return x, self.log_scale.sum().expand(y.shape[0])


class Logit(Transform):
    """Logit of data in [0, 1] squeezed into [alpha, 1 - alpha] (Real NVP's pre-processing).

    Values outside [0, 1] raise DataError rather than producing NaN.
    """

    def __init__(self, alpha: float = 1e-6) -> None:
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ConfigError(f"Logit alpha={alpha} must be in [0, 0.5)")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.numel() and (bool((x < 0).any()) or bool((x > 1).any()) or x.isnan().any()):
            raise DataError(
                f"Logit expects data in [0, 1], got values in [{float(x.min())}, {float(x.max())}]"
            )
        u = self.alpha + (1 - 2 * self.alpha) * x  # (B, D)
        y = torch.log(u) - torch.log1p(-u)
        ladj = (math.log(1 - 2 * self.alpha) - torch.log(u) - torch.log1p(-u)).sum(-1)
        return y, ladj

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u = torch.sigmoid(y)  # (B, D)
        x = (u - self.alpha) / (1 - 2 * self.alpha)
        ladj = (F.logsigmoid(y) + F.logsigmoid(-y) - math.log(1 - 2 * self.alpha)).sum(-1)
        return x, ladj


# ---- elementwise bijections ------------------------------------------------------------------


class Univariate(abc.ABC):
    """An elementwise bijection y = g(x; params) with `num_params` parameters per feature."""

    num_params: int

    @abc.abstractmethod
    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """x (B, D), params (B, D, P) -> y (B, D), elementwise log |dy/dx| (B, D)."""


class Affine(Univariate):
    """y = x * exp(log_scale) + shift, with log_scale soft-clamped to (-clamp, clamp)."""

    num_params = 2

    def __init__(self, clamp: float = 3.0) -> None:
        self.clamp = clamp

    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw_log_scale, shift = params.unbind(-1)  # (B, D) each
        # tanh keeps exp(log_scale) bounded, so one bad step cannot blow the flow up
        log_scale = self.clamp * torch.tanh(raw_log_scale / self.clamp)
        if inverse:
            return (x - shift) * torch.exp(-log_scale), -log_scale
        return x * torch.exp(log_scale) + shift, log_scale


class RationalQuadratic(Univariate):
    """Monotone rational-quadratic spline on [-bound, bound], identity tails (Durkan et al. 2019).

    Parameters per feature: `bins` widths, `bins` heights and `bins - 1` interior derivatives
    (unconstrained); the boundary derivatives are 1 so the spline joins the linear tails smoothly.
    All-zero parameters give the identity.
    """

    MIN_WIDTH = MIN_HEIGHT = MIN_DERIVATIVE = 1e-3

    def __init__(self, bins: int = 8, bound: float = 5.0) -> None:
        if bins < 2:
            raise ConfigError(f"spline bins={bins} must be 2 or more, e.g. 8")
        if not bound > 0:
            raise ConfigError(f"spline tail_bound={bound} must be above 0, e.g. 5")
        self.bins = bins
        self.bound = bound
        self.num_params = 3 * bins - 1

    def _knots(self, raw: Tensor, min_size: float) -> tuple[Tensor, Tensor]:
        """Bin sizes and knot positions (..., K), (..., K + 1) on [-bound, bound]."""
        k = self.bins
        sizes = min_size + (1 - min_size * k) * torch.softmax(raw, dim=-1)
        knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
        knots = 2 * self.bound * knots - self.bound
        # pin the end knots exactly, whatever the rounding of the cumulative sum
        knots = F.pad(knots[..., 1:-1], (1, 1), value=0.0)
        knots[..., 0], knots[..., -1] = -self.bound, self.bound
        return knots[..., 1:] - knots[..., :-1], knots

    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        k, bound = self.bins, self.bound
        widths, cum_w = self._knots(params[..., :k], self.MIN_WIDTH)  # (B, D, K), (B, D, K+1)
        heights, cum_h = self._knots(params[..., k : 2 * k], self.MIN_HEIGHT)
        # the offset makes zero parameters give derivative 1, so the spline starts as identity
        offset = math.log(math.expm1(1 - self.MIN_DERIVATIVE))
        inner = self.MIN_DERIVATIVE + F.softplus(params[..., 2 * k :] + offset)  # (B, D, K-1)
        derivs = F.pad(inner, (1, 1), value=1.0)  # (B, D, K+1)

        inside = (x >= -bound) & (x <= bound)  # (B, D)
        xc = x.clamp(-bound, bound)
        edges = cum_h if inverse else cum_w
        idx = (xc.unsqueeze(-1) >= edges[..., 1:-1]).sum(-1, keepdim=True)  # (B, D, 1)

        def at(t: Tensor) -> Tensor:
            return t.gather(-1, idx).squeeze(-1)  # (B, D)

        w_k, x_k, h_k, y_k = at(widths), at(cum_w), at(heights), at(cum_h)
        d_k, d_k1 = at(derivs), derivs[..., 1:].gather(-1, idx).squeeze(-1)
        delta = h_k / w_k
        if inverse:
            dy = xc - y_k
            a = dy * (d_k + d_k1 - 2 * delta) + h_k * (delta - d_k)
            b = h_k * d_k - dy * (d_k + d_k1 - 2 * delta)
            c = -delta * dy
            disc = (b.pow(2) - 4 * a * c).clamp_min(0)
            theta = (2 * c) / (-b - disc.sqrt())
            out = theta * w_k + x_k
        else:
            theta = (xc - x_k) / w_k
        t1m = theta * (1 - theta)
        denom = delta + (d_k + d_k1 - 2 * delta) * t1m
        deriv = delta.pow(2) * (d_k1 * theta.pow(2) + 2 * delta * t1m + d_k * (1 - theta).pow(2))
        ladj = torch.log(deriv) - 2 * torch.log(denom)  # log dy/dx of the forward spline
        if inverse:
            ladj = -ladj
        else:
            out = y_k + h_k * (delta * theta.pow(2) + d_k * t1m) / denom
        return torch.where(inside, out, x), torch.where(inside, ladj, torch.zeros_like(ladj))


# ---- coupling and autoregressive layers -----------------------------------------------------


def coupling_mask(dim: int, kind: MaskKind = "half", parity: bool = False) -> Tensor:
    """Boolean (D,) mask of the features a coupling layer passes through unchanged.

    "half": the first ceil(D/2) features; "alternate": the even-indexed ones. `parity`
    swaps the two sets, so consecutive layers transform every feature. Odd D is fine.
    """
    if dim < 2:
        raise ConfigError(
            f"a coupling layer needs 2 or more features, got {dim}: for 1-D data use an "
            "autoregressive flow (maf, iaf, or nsf with kind: autoregressive)"
        )
    if kind == "half":
        mask = torch.arange(dim) < (dim + 1) // 2
    elif kind == "alternate":
        mask = torch.arange(dim) % 2 == 0
    else:
        raise ConfigError(f"coupling mask {kind!r} is not one of 'half', 'alternate'")
    return ~mask if parity else mask


class Coupling(Transform):
    """Coupling layer: x_B -> g(x_B; params(x_A, context)), x_A unchanged (Real NVP, NSF).

    Args:
        dim: features D.
        univariate: the elementwise bijection (`Affine()` or `RationalQuadratic(...)`).
        hidden: widths of the conditioner MLP.
        context_dim: size of the context vector (0: unconditional).
        mask: "half" or "alternate" (see `coupling_mask`); parity swaps the halves.
    """

    def __init__(
        self,
        dim: int,
        univariate: Univariate,
        hidden: tuple[int, ...] = (64, 64),
        *,
        context_dim: int = 0,
        mask: MaskKind = "half",
        parity: bool = False,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        m = coupling_mask(dim, mask, parity)
        self.register_buffer("identity_idx", torch.nonzero(m).squeeze(-1))
        self.register_buffer("transform_idx", torch.nonzero(~m).squeeze(-1))
        self.univariate = univariate
        self.context_dim = context_dim
        n_id, n_tr = int(m.sum()), int((~m).sum())
        self.conditioner = MLP(n_id + context_dim, hidden, n_tr * univariate.num_params, activation)
        _shrink_last_layer(self.conditioner)

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        context = _check_context(context, x.shape[0], self.context_dim)
        x_a = x[:, self.identity_idx]  # (B, D_a)
        h = x_a if context is None else torch.cat([x_a, context], dim=-1)  # (B, D_a + C)
        params = self.conditioner(h).view(x.shape[0], -1, self.univariate.num_params)
        y_b, ladj = self.univariate(x[:, self.transform_idx], params, inverse)  # (B, D_b)
        y = x.clone()
        y[:, self.transform_idx] = y_b
        return y, ladj.sum(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, inverse=True)


def _shrink_last_layer(mlp: nn.Sequential, factor: float = 0.01) -> None:
    """Start near the identity while every parameter still receives a gradient."""
    last = mlp[-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder (Germain et al. 2015): output i depends only on inputs < i.

    x (B, D) [, context (B, C)] -> params (B, D, P). The context feeds the first hidden layer
    unmasked, since it does not depend on x.
    """

    def __init__(
        self,
        dim: int,
        num_params: int,
        hidden: tuple[int, ...] = (64, 64),
        *,
        context_dim: int = 0,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if not hidden or any(h < 1 for h in hidden):
            raise ConfigError(f"MADE hidden={hidden}: give one or more positive widths")
        self.dim, self.num_params, self.context_dim = dim, num_params, context_dim
        in_deg = torch.arange(1, dim + 1)  # (D,)
        low, span = min(1, dim - 1), max(1, dim - 1)
        degrees = [in_deg] + [torch.arange(h) % span + low for h in hidden]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:]):
            layers += [MaskedLinear(len(d_in), len(d_out), d_out[:, None] >= d_in[None, :])]
            layers.append(activation_layer(activation))
        out_deg = in_deg.repeat(num_params)  # (P*D,), param-major
        layers.append(
            MaskedLinear(
                len(degrees[-1]), dim * num_params, out_deg[:, None] > degrees[-1][None, :]
            )
        )
        self.net = nn.Sequential(*layers)
        _shrink_last_layer(self.net)
        self.context_proj = nn.Linear(context_dim, hidden[0]) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = _check_context(context, x.shape[0], self.context_dim)
        h = self.net[0](x)  # (B, H)
        if self.context_proj is not None:
            h = h + self.context_proj(context)
        out = self.net[1:](h)  # (B, P*D)
        return out.view(x.shape[0], self.num_params, self.dim).transpose(1, 2)  # (B, D, P)


class MaskedAutoregressive(Transform):
    """Autoregressive layer z_i = g(x_i; params(x_<i)) with a MADE conditioner (MAF, NSF).

    Forward (density) takes one pass; inverse (sampling) takes D sequential passes. Wrap in
    `Inverse` for IAF, where sampling is one pass and density is sequential.
    """

    def __init__(
        self,
        dim: int,
        univariate: Univariate,
        hidden: tuple[int, ...] = (64, 64),
        *,
        context_dim: int = 0,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        self.univariate = univariate
        self.made = MADE(
            dim, univariate.num_params, hidden, context_dim=context_dim, activation=activation
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ladj = self.univariate(x, self.made(x, context), inverse=False)  # (B, D) each
        return z, ladj.sum(-1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # after pass i the first i features are exact, so D passes recover all of x
        x = torch.zeros_like(y)
        ladj = y.new_zeros(y.shape)
        for _ in range(self.made.dim):
            x, ladj = self.univariate(y, self.made(x, context), inverse=True)
        return x, ladj.sum(-1)


def affine_coupling(dim: int, hidden: tuple[int, ...] = (64, 64), **options) -> Coupling:
    """Real NVP's affine coupling layer; options as `Coupling`."""
    return Coupling(dim, Affine(), hidden, **options)


def spline_coupling(
    dim: int,
    hidden: tuple[int, ...] = (64, 64),
    *,
    bins: int = 8,
    tail_bound: float = 5.0,
    **options,
) -> Coupling:
    """Neural Spline Flows' rational-quadratic coupling layer; options as `Coupling`."""
    return Coupling(dim, RationalQuadratic(bins, tail_bound), hidden, **options)


def masked_affine_autoregressive(
    dim: int, hidden: tuple[int, ...] = (64, 64), **options
) -> MaskedAutoregressive:
    """MAF's affine autoregressive layer; options as `MaskedAutoregressive`."""
    return MaskedAutoregressive(dim, Affine(), hidden, **options)


def masked_spline_autoregressive(
    dim: int,
    hidden: tuple[int, ...] = (64, 64),
    *,
    bins: int = 8,
    tail_bound: float = 5.0,
    **options,
) -> MaskedAutoregressive:
    """Neural Spline Flows' rational-quadratic autoregressive layer (NSF-AR)."""
    return MaskedAutoregressive(dim, RationalQuadratic(bins, tail_bound), hidden, **options)


# ---- image transforms (building blocks for Glow; no image flow is registered yet) -----------


class InvertibleConv1x1(Transform):
    """Invertible 1x1 convolution, LU-decomposed (Kingma & Dhariwal, Glow, 2018).

    W = P L (U + diag(sign * exp(log_s))) mixes the C channels at every position, so
    log |det| = H * W * sum(log_s). Acts on (B, C, H, W), or (B, C) as one position.
    """

    def __init__(self, channels: int, *, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(s.abs().log())

    def weight(self) -> Tensor:
        """The (C, C) mixing matrix."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def _mix(self, x: Tensor, w: Tensor) -> Tensor:
        if x.ndim == 2:
            return x @ w.T  # (B, C)
        return torch.einsum("oc,bchw->bohw", w, x)  # (B, C, H, W)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        positions = math.prod(x.shape[2:])
        ladj = (positions * self.log_s.sum()).expand(x.shape[0])
        return self._mix(x, self.weight()), ladj

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        positions = math.prod(y.shape[2:])
        ladj = (-positions * self.log_s.sum()).expand(y.shape[0])
        return self._mix(y, torch.linalg.inv(self.weight())), ladj


class Squeeze(Transform):
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2), volume preserving (Real NVP, Glow)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise DataError(f"Squeeze needs (B, C, H, W) with even H and W, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if y.ndim != 4 or y.shape[1] % 4:
            raise DataError(f"Squeeze.inverse needs (B, 4C, H, W), got {tuple(y.shape)}")
        b, c4, h, w = y.shape
        x = y.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * h, 2 * w), y.new_zeros(b)
