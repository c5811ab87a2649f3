"""Invertible transforms with log-determinants, composed into normalizing flows.

Every `Transform` maps data towards the base distribution in `forward` (the normalizing
direction) and back in `inverse`; both return the log |det| of their own Jacobian per sample, so

    log p(x) = log N(f(x); 0, I) + log |det df/dx|,     f = forward.

Flows are built by composition (zuko-style), not subclassing: a coupling layer and a masked
autoregressive layer each take a `Univariate` elementwise bijection, affine (RealNVP, MAF),
additive (NICE) or a rational-quadratic spline (Neural Spline Flows), and `Inverse` turns MAF
into IAF. Images (B, C, H, W) get couplings with checkerboard or channel masks and conv
conditioners, ActNorm, invertible 1x1 convolutions, squeezes and splits; `multiscale` composes
them into Real NVP's and Glow's multiscale architecture, which ends flat (B, C * H * W).
Dequantizers turn integer levels into continuous values (uniform, or a learned q(u | k)).

- Dinh, Krueger & Bengio, "NICE" (ICLR 2015 workshop): additive couplings.
- Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (ICLR 2017): couplings,
  checkerboard and channel masks, squeeze, multiscale factoring out.
- Germain et al., "MADE: Masked Autoencoder for Distribution Estimation" (ICML 2015).
- Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow" (NeurIPS 2017): MAF.
- Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (2016): IAF.
- Durkan et al., "Neural Spline Flows" (NeurIPS 2019): rational-quadratic splines.
- Kingma & Dhariwal, "Glow" (NeurIPS 2018): ActNorm with data-dependent initialization,
  invertible 1x1 convolutions, split with a learned prior.
- Theis, van den Oord & Bethge, "A note on the evaluation of generative models" (ICLR 2016):
  uniform dequantization; Ho et al., "Flow++" (ICML 2019): variational dequantization.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
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
        total = None
        for t in self.transforms:
            x, ladj = t(x, context)
            total = ladj if total is None else total + ladj  # (B,)
        return x, (x.new_zeros(x.shape[0]) if total is None else total)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = None
        for t in reversed(self.transforms):
            y, ladj = t.inverse(y, context)
            total = ladj if total is None else total + ladj  # (B,)
        return y, (y.new_zeros(y.shape[0]) if total is None else total)


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
        self.reverse = reverse  # a flip is cheaper than a gather, forward and backward

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = x.flip(1) if self.reverse else x[:, self.perm]
        return y, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y.flip(1) if self.reverse else y[:, self.inv_perm]
        return x, y.new_zeros(y.shape[0])


class ActNorm(Transform):
    """Per-feature (or per-channel) affine normalization, z = (x - loc) / exp(log_scale) (Glow).

    Acts on vectors (B, D) or images (B, C, H, W), where one loc and scale per channel serve
    every position, so log |det| = -H * W * sum(log_scale). On the first forward pass in
    training mode, loc and log_scale are set from the batch so the output has zero mean and
    unit variance per feature; `initialized` is saved with the weights.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def _shaped(self, x: Tensor) -> tuple[Tensor, Tensor, int]:
        """loc and log_scale broadcastable to x, and the positions each one serves."""
        if x.ndim < 2 or x.shape[1] != self.loc.shape[0]:
            raise DataError(
                f"ActNorm({self.loc.shape[0]}) expects (B, {self.loc.shape[0]}, ...), "
                f"got {tuple(x.shape)}"
            )
        view = (1, -1) + (1,) * (x.ndim - 2)
        return self.loc.view(view), self.log_scale.view(view), math.prod(x.shape[2:])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loc, log_scale, positions = self._shaped(x)
        if self.training and not bool(self.initialized) and x.shape[0] > 1:
            with torch.no_grad():
                per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, B * H * W)
                self.loc.copy_(per_channel.mean(1))
                self.log_scale.copy_(per_channel.std(1).clamp_min(1e-6).log())
                self.initialized.fill_(True)
        z = (x - loc) * torch.exp(-log_scale)  # (B, D) or (B, C, H, W)
        return z, (-positions * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loc, log_scale, positions = self._shaped(y)
        x = y * torch.exp(log_scale) + loc  # (B, D) or (B, C, H, W)
        return x, (positions * self.log_scale.sum()).expand(y.shape[0])


class Logit(Transform):
    """Logit of data in [0, 1] squeezed into [alpha, 1 - alpha] (Real NVP's pre-processing).

    Acts elementwise on any shape (B, ...). Values outside [0, 1] raise DataError rather than
    producing NaN.
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
        u = self.alpha + (1 - 2 * self.alpha) * x  # (B, D) or (B, C, H, W)
        y = torch.log(u) - torch.log1p(-u)
        ladj = (math.log(1 - 2 * self.alpha) - torch.log(u) - torch.log1p(-u)).flatten(1).sum(1)
        return y, ladj

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        u = torch.sigmoid(y)  # (B, D) or (B, C, H, W)
        x = (u - self.alpha) / (1 - 2 * self.alpha)
        ladj = (F.logsigmoid(y) + F.logsigmoid(-y) - math.log(1 - 2 * self.alpha)).flatten(1)
        return x, ladj.sum(1)


# ---- elementwise bijections ------------------------------------------------------------------


class Univariate(abc.ABC):
    """An elementwise bijection y = g(x; params) with `num_params` parameters per feature."""

    num_params: int

    @abc.abstractmethod
    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        """x (B, D), params (B, D, P) or (1, D, P) -> y (B, D), elementwise log |dy/dx| (B, D)."""


#: The vector flows' bound on a layer's log-scale: scales within (1e-3, 1e3), as zuko's.
VECTOR_LOG_SCALE_BOUND = math.log(1000.0)


class Affine(Univariate):
    """y = x * exp(log_scale) + shift, with the raw log-scale s soft-clipped to (-clamp, clamp).

    clip "tanh": log_scale = clamp * tanh(s / clamp), the image flows' choice (clamp 3): many
    stacked layers on thousands of dimensions stay well scaled.
    clip "rational": log_scale = s / (1 + |s| / clamp), the vector flows' choice (clamp ln 1000,
    the parametrization of zuko's MonotonicAffineTransform). Its slope decays like 1/s^2
    instead of exponentially, so a log-scale pushed far out still gets a gradient back: on
    the 8-Gaussian ring (mode std 0.02) the tanh clip at 3 left two of three MAF runs stuck
    above 3 nats after loss spikes (benchmarks/flows_vs_zuko.py; the git history of its
    results file keeps that run).
    """

    num_params = 2

    def __init__(self, clamp: float = 3.0, clip: str = "tanh") -> None:
        if clip not in ("tanh", "rational"):
            raise ConfigError(f"Affine clip={clip!r} is not one of 'tanh', 'rational'")
        if not clamp > 0:
            raise ConfigError(f"Affine clamp={clamp} must be above 0, e.g. 3")
        self.clamp = clamp
        self.clip = clip

    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raw_log_scale, shift = params.unbind(-1)  # (B, D) each
        # a bounded log-scale keeps exp(log_scale) finite, so one bad step cannot blow up
        if self.clip == "tanh":
            log_scale = self.clamp * torch.tanh(raw_log_scale / self.clamp)
        else:
            log_scale = raw_log_scale / (1 + raw_log_scale.abs() / self.clamp)
        if inverse:
            return (x - shift) * torch.exp(-log_scale), -log_scale
        return x * torch.exp(log_scale) + shift, log_scale


class RationalQuadratic(Univariate):
    """Monotone rational-quadratic spline on [-bound, bound], identity tails (Durkan et al. 2019).

    Parameters per feature: `bins` widths, `bins` heights and `bins - 1` interior derivatives
    (unconstrained); the boundary derivatives are 1 so the spline joins the linear tails smoothly.
    All-zero parameters give the identity.
    """

    MIN_SIZE = MIN_DERIVATIVE = 1e-3  # smallest bin width and height; smallest derivative

    def __init__(self, bins: int = 8, bound: float = 5.0) -> None:
        if bins < 2:
            raise ConfigError(f"spline bins={bins} must be 2 or more, e.g. 8")
        if not bound > 0:
            raise ConfigError(f"spline tail_bound={bound} must be above 0, e.g. 5")
        self.bins = bins
        self.bound = bound
        self.num_params = 3 * bins - 1

    def _knots(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Bin sizes (..., 2, K) and knots (..., 2, K + 1) on [-bound, bound], for the x
        (row 0) and y (row 1) axes at once, from raw widths and heights (..., 2, K)."""
        k = self.bins
        sizes = self.MIN_SIZE + (1 - self.MIN_SIZE * k) * torch.softmax(raw, dim=-1)
        cum = torch.cumsum(sizes, dim=-1)
        # dividing by the total (1 up to rounding) pins the last knot to exactly `bound`
        knots = F.pad(cum / cum[..., -1:], (1, 0)) * (2 * self.bound) - self.bound
        return knots[..., 1:] - knots[..., :-1], knots

    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        k, bound = self.bins, self.bound
        sizes, knots = self._knots(params[..., : 2 * k].unflatten(-1, (2, k)))  # (B, D, 2, K+1)
        # the offset makes zero parameters give derivative 1, so the spline starts as identity
        offset = math.log(math.expm1(1 - self.MIN_DERIVATIVE))
        inner = self.MIN_DERIVATIVE + F.softplus(params[..., 2 * k :] + offset)  # (B, D, K-1)
        derivs = F.pad(inner, (1, 1), value=1.0)  # (B, D, K+1)

        inside = (x >= -bound) & (x <= bound)  # (B, D)
        xc = x.clamp(-bound, bound)
        edges = knots[..., 1 if inverse else 0, 1:-1]  # (B, D, K-1) interior knots
        idx = (xc.unsqueeze(-1) >= edges).sum(-1, keepdim=True)  # (B, D, 1)
        # one gather for the six per-bin quantities: x_k, y_k, w_k, h_k, d_k, d_k+1
        table = torch.cat(
            [knots[..., :-1], sizes, torch.stack([derivs[..., :-1], derivs[..., 1:]], -2)], -2
        )  # (B, D, 6, K)
        # params may be (1, D, P), shared by the batch: the knots are then computed once
        table = table.expand(*idx.shape[:-1], 6, k)
        picked = table.gather(-1, idx.unsqueeze(-2).expand(*idx.shape[:-1], 6, 1))
        x_k, y_k, w_k, h_k, d_k, d_k1 = picked.squeeze(-1).unbind(-1)  # (B, D) each
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


class ElementwiseSpline(Transform):
    """A learned monotone rational-quadratic spline per feature, no conditioner: y_i = g_i(x_i).

    Each position of `shape` (e.g. an image's (C, H, W)) has its own spline on [-bound, bound]
    (identity outside); all-zero parameters, the initial state, give the identity. Placed
    right after an image flow's preprocessing it can shape each pixel's own marginal, which
    affine couplings only reach through other pixels: a background pixel of a dequantized
    image is uniform on its bin, and the nearest Gaussian to a uniform costs
    0.5 ln(2 pi e / 12) = 0.18 nats (0.25 bits) of that pixel's density.
    """

    def __init__(self, shape: tuple[int, ...], bins: int = 8, bound: float = 3.0) -> None:
        super().__init__()
        self.spline = RationalQuadratic(bins, bound)
        self.shape = tuple(shape)
        self.params = nn.Parameter(torch.zeros(*self.shape, self.spline.num_params))

    def _spline(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(
                f"ElementwiseSpline expects inputs of shape (B, {self.shape}), got {tuple(x.shape)}"
            )
        flat = x.flatten(1)  # (B, D)
        params = self.params.flatten(0, -2).unsqueeze(0)  # (1, D, P), broadcast over B
        y, ladj = self.spline(flat, params, inverse)
        return y.view_as(x), ladj.sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(x, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(y, inverse=True)


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
        raise ConfigError(
            f"coupling mask {kind!r} is not one of 'half', 'alternate' (checkerboard and "
            "channel masks are for images: ImageCoupling)"
        )
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
        # kept in the saved weights; forward uses the equivalent slices, cheaper than gathers
        self.register_buffer("identity_idx", torch.nonzero(m).squeeze(-1))
        self.register_buffer("transform_idx", torch.nonzero(~m).squeeze(-1))
        self.identity_slice, self.transform_slice = _as_slice(m), _as_slice(~m)
        self.univariate = univariate
        self.context_dim = context_dim
        n_id, n_tr = int(m.sum()), int((~m).sum())
        # PyTorch's default init, as zuko: on the 2-D toys of benchmarks/flows_vs_zuko.py a
        # near-identity start (last layer x 0.01, which the image conditioners keep) learned
        # slower, and each shallow layer here already starts well scaled (Affine's clamp
        # bounds the log-scale), so identity init buys no stability.
        self.conditioner = MLP(n_id + context_dim, hidden, n_tr * univariate.num_params, activation)

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        context = _check_context(context, x.shape[0], self.context_dim)
        x_a = x[:, self.identity_slice]  # (B, D_a)
        h = x_a if context is None else torch.cat([x_a, context], dim=-1)  # (B, D_a + C)
        params = self.conditioner(h).view(x.shape[0], -1, self.univariate.num_params)
        y_b, ladj = self.univariate(x[:, self.transform_slice], params, inverse)  # (B, D_b)
        y = torch.empty_like(x)
        y[:, self.identity_slice] = x_a
        y[:, self.transform_slice] = y_b
        return y, ladj.sum(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, inverse=True)


def _as_slice(mask: Tensor) -> slice:
    """The slice selecting the True entries of a coupling mask (a half, or every other)."""
    idx = torch.nonzero(mask).squeeze(-1).tolist()
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if idx != list(range(idx[0], idx[-1] + 1, step)):
        raise ValueError(f"mask {mask.tolist()} is not a slice")
    return slice(idx[0], idx[-1] + 1, step)


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
        self.net = nn.Sequential(*layers)  # default init, as the coupling conditioners
        self.context_proj = nn.Linear(context_dim, hidden[0]) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = _check_context(context, x.shape[0], self.context_dim)
        first, *rest = self.net  # iterating avoids building a new Sequential per call
        h = first(x)  # (B, H)
        if self.context_proj is not None:
            h = h + self.context_proj(context)
        for layer in rest:
            h = layer(h)  # (B, P*D) after the last
        return h.view(x.shape[0], self.num_params, self.dim).transpose(1, 2)  # (B, D, P)


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
    """Real NVP's affine coupling layer for vectors (rational log-scale clip, see `Affine`);
    options as `Coupling`."""
    return Coupling(dim, Affine(VECTOR_LOG_SCALE_BOUND, "rational"), hidden, **options)


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
    """MAF's affine autoregressive layer (rational log-scale clip, see `Affine`); options as
    `MaskedAutoregressive`."""
    return MaskedAutoregressive(dim, Affine(VECTOR_LOG_SCALE_BOUND, "rational"), hidden, **options)


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


# ---- image transforms: Real NVP's masks, Glow's steps, multiscale splits ----------------------


ImageMaskKind = Literal["checkerboard", "channel"]


def _check_image(x: Tensor, channels: int, where: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise DataError(f"{where} expects images (B, {channels}, H, W), got {tuple(x.shape)}")


def _check_context_shape(
    context: Tensor | None, batch: int, shape: tuple[int, ...]
) -> Tensor | None:
    """A context of shape (B, *shape): a vector (B, E) or a feature map (B, E, H, W)."""
    if not shape:
        return None
    expected = (batch, *shape)
    if context is None:
        raise DataError(f"this transform is conditional: pass context of shape {expected}")
    if tuple(context.shape) != expected:
        raise DataError(f"context has shape {tuple(context.shape)}; expected {expected}")
    return context


def checkerboard_mask(
    height: int, width: int, parity: bool = False, *, device: torch.device | None = None
) -> Tensor:
    """Boolean (1, 1, H, W) mask of the pixels a checkerboard coupling passes through.

    Pixels with i + j even pass through; `parity` swaps the two sets (Real NVP, Sec. 3.4).
    """
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    return (((i + j) % 2 == 0) != parity)[None, None]


class Additive(Univariate):
    """y = x + shift: NICE's volume-preserving coupling (Dinh et al. 2015; Glow's "additive")."""

    num_params = 1

    def __call__(self, x: Tensor, params: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        shift = params[..., 0]
        return (x - shift if inverse else x + shift), torch.zeros_like(x)


class ConvConditioner(nn.Module):
    """Glow's coupling network: conv3x3 - act - conv1x1 - act - conv3x3, last layer near zero.

    x (B, C_in, H, W) [, context] -> (B, C_out, H, W). A vector context (B, E) is projected and
    added to the first layer's output (a per-channel bias); a spatial context (B, E, H, W) is
    concatenated to the input channels. `hidden_channels=0` gives a single conv3x3, Glow's
    prior network of a split.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        context_shape: tuple[int, ...] = (),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if len(context_shape) not in (0, 1, 3):
            raise ConfigError(f"context_shape {context_shape}: use (), (E,) or (E, H, W)")
        spatial = context_shape[0] if len(context_shape) == 3 else 0
        width = hidden_channels or out_channels
        self.first = nn.Conv2d(in_channels + spatial, width, 3, padding=1)
        self.context_proj = nn.Linear(context_shape[0], width) if len(context_shape) == 1 else None
        layers: list[nn.Module] = []
        if hidden_channels:
            layers = [
                activation_layer(activation),
                nn.Conv2d(hidden_channels, hidden_channels, 1),
                activation_layer(activation),
                nn.Conv2d(hidden_channels, out_channels, 3, padding=1),
            ]
        self.rest = nn.Sequential(*layers)
        last = layers[-1] if layers else self.first
        with torch.no_grad():  # near the identity, while every parameter still gets a gradient
            last.weight.mul_(0.01)
            last.bias.mul_(0.01)
        # channels-last convolutions with few channels run 1.2-2x faster on CPU (measured)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if context is not None and context.ndim == 4:
            x = torch.cat([x, context], dim=1)  # (B, C_in + E, H, W)
        h = self.first(x.contiguous(memory_format=torch.channels_last))  # (B, hidden, H, W)
        if self.context_proj is not None:
            h = h + self.context_proj(context)[:, :, None, None]
        return self.rest(h).contiguous()  # (B, C_out, H, W)


class ImageCoupling(Transform):
    """Coupling layer on images with a convolutional conditioner (Real NVP, Glow).

    mask "checkerboard": pixels with i + j even (odd with `parity`) pass through and condition
    the others, every channel alike; "channel": the first half of the channels (the second
    with `parity`) passes through and conditions the other half, which needs an even channel
    count. `univariate` is `Affine()`, `Additive()` or `RationalQuadratic(...)`.

    Args:
        channels: C of the (B, C, H, W) input.
        univariate: the elementwise bijection.
        hidden_channels: width of the conditioner.
        mask: "checkerboard" or "channel".
        parity: swaps the pass-through and transformed sets.
        context_shape: () unconditional, (E,) a vector context (class embedding) or (E, H, W)
            a feature map (the variational dequantizer's view of the image).
        activation: the conditioner's activation.
    """

    def __init__(
        self,
        channels: int,
        univariate: Univariate,
        hidden_channels: int = 64,
        *,
        mask: ImageMaskKind = "channel",
        parity: bool = False,
        context_shape: tuple[int, ...] = (),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if mask == "channel":
            if channels < 2 or channels % 2:
                raise ConfigError(
                    f"a channel-mask coupling splits the channels into two equal halves, but "
                    f"the input has {channels} channels: use mask 'checkerboard', or squeeze "
                    "first (a squeeze gives 4C channels)"
                )
            n_in = n_out = channels // 2
        elif mask == "checkerboard":
            n_in = n_out = channels
        else:
            raise ConfigError(
                f"image coupling mask {mask!r} is not one of 'checkerboard', 'channel'"
            )
        self.channels, self.mask, self.parity = channels, mask, parity
        self.context_shape = tuple(context_shape)
        self.univariate = univariate
        self.conditioner = ConvConditioner(
            n_in,
            hidden_channels,
            n_out * univariate.num_params,
            context_shape=self.context_shape,
            activation=activation,
        )

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        _check_image(x, self.channels, "ImageCoupling")
        context = _check_context_shape(context, x.shape[0], self.context_shape)
        b, c, h, w = x.shape
        p = self.univariate.num_params
        if self.mask == "channel":
            half = c // 2
            x_a, x_b = (x[:, half:], x[:, :half]) if self.parity else (x[:, :half], x[:, half:])
            params = self.conditioner(x_a, context).view(b, p, half, h, w).movedim(1, -1)
            y_b, ladj = self.univariate(x_b, params, inverse)  # (B, C/2, H, W) each
            y = torch.cat([y_b, x_a] if self.parity else [x_a, y_b], dim=1)
            return y, ladj.flatten(1).sum(1)
        keep = checkerboard_mask(h, w, self.parity, device=x.device)  # (1, 1, H, W)
        params = self.conditioner(x * keep, context).view(b, p, c, h, w).movedim(1, -1)
        y_all, ladj = self.univariate(x, params, inverse)  # (B, C, H, W) each
        y = torch.where(keep, x, y_all)
        return y, torch.where(keep, 0.0, ladj).flatten(1).sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(y, context, inverse=True)


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
        if x.ndim == 2 and x.shape[1] == w.shape[0]:
            return x @ w.T  # (B, C)
        _check_image(x, w.shape[0], "InvertibleConv1x1")
        return F.conv2d(x, w[:, :, None, None])  # (B, C, H, W)

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


class Shift(Transform):
    """y = x + offset: Glow's centring of [0, 1] images, x - 0.5 (log |det| = 0)."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x + self.offset, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y - self.offset, y.new_zeros(y.shape[0])


class Flatten(Transform):
    """(B, *shape) -> (B, prod(shape)): where a multiscale flow meets its flat base."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(f"Flatten expects (B, {self.shape}), got {tuple(x.shape)}")
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if y.ndim != 2 or y.shape[1] != math.prod(self.shape):
            raise DataError(
                f"Flatten.inverse expects (B, {math.prod(self.shape)}), got {tuple(y.shape)}"
            )
        return y.view(y.shape[0], *self.shape), y.new_zeros(y.shape[0])


class Split(Transform):
    """Factor out half the channels under a learned conditional prior (Glow; Real NVP Sec. 3.6).

    x (B, C, H, W) is split into x1 (the first C - C//2 channels), which goes on through
    `inner` (the deeper scales, ending flat), and x2 (C//2 channels), which leaves the flow
    here with prior N(mu(x1, y), sigma(x1, y)^2) from a conv3x3 on x1. Writing the prior as the
    affine map eps = (x2 - mu) / sigma makes the split a transform like any other: the base is
    N(0, I) for every output, and log |det| = -sum log sigma, so log N(eps) + log |det| is
    exactly Glow's log p(x2 | x1). Sampling with eps ~ N(0, T^2) is Glow's temperature.

    Args:
        shape: (C, H, W) of the input.
        inner: the transform of x1, (B, C - C//2, H, W) -> (B, (C - C//2) * H * W).
        context_dim: size of a vector context (0: the prior depends on x1 only).

    forward returns (B, C * H * W): [eps flat, inner(x1)].
    """

    def __init__(self, shape: tuple[int, int, int], inner: Transform, *, context_dim: int = 0):
        super().__init__()
        c, h, w = shape
        if c < 2:
            raise ConfigError(f"a split needs 2 or more channels, got {c}: squeeze first")
        self.shape = (c, h, w)
        self.keep, self.factor = c - c // 2, c // 2
        self.context_dim = context_dim
        self.prior = ConvConditioner(
            self.keep, 0, 2 * self.factor, context_shape=(context_dim,) if context_dim else ()
        )
        self.univariate = Affine()
        self.inner = inner

    def _params(self, x1: Tensor, context: Tensor | None) -> Tensor:
        b, _, h, w = x1.shape
        return self.prior(x1, context).view(b, 2, self.factor, h, w).movedim(1, -1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _check_image(x, self.shape[0], "Split")
        context = _check_context(context, x.shape[0], self.context_dim)
        x1, x2 = x[:, : self.keep], x[:, self.keep :]
        eps, ladj = self.univariate(x2, self._params(x1, context), inverse=False)
        z1, ladj_inner = self.inner(x1, context)  # (B, keep * H * W)
        if z1.ndim != 2:
            raise ConfigError("the inner transform of a Split must end flat (add a Flatten)")
        return torch.cat([eps.flatten(1), z1], dim=1), ladj.flatten(1).sum(1) + ladj_inner

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        c, h, w = self.shape
        if y.ndim != 2 or y.shape[1] != c * h * w:
            raise DataError(f"Split.inverse expects (B, {c * h * w}), got {tuple(y.shape)}")
        context = _check_context(context, y.shape[0], self.context_dim)
        n = self.factor * h * w
        x1, ladj_inner = self.inner.inverse(y[:, n:], context)  # (B, keep, H, W)
        eps = y[:, :n].view(y.shape[0], self.factor, h, w)
        x2, ladj = self.univariate(eps, self._params(x1, context), inverse=True)
        return torch.cat([x1, x2], dim=1), ladj.flatten(1).sum(1) + ladj_inner


class ContextAffine(Transform):
    """z -> (z - mu(y)) / sigma(y) with mu, sigma linear in a context: a class-conditional base.

    Glow's class-conditional prior on the top latent (`ycond`), here over the whole flat
    latent (B, D); starts as the identity.
    """

    def __init__(self, dim: int, context_dim: int) -> None:
        super().__init__()
        if context_dim < 1:
            raise ConfigError("ContextAffine needs a context (context_dim >= 1)")
        self.dim, self.context_dim = dim, context_dim
        self.net = nn.Linear(context_dim, 2 * dim)
        with torch.no_grad():
            self.net.weight.mul_(0.01)
            self.net.bias.mul_(0.01)
        self.univariate = Affine()

    def _affine(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(f"ContextAffine expects (B, {self.dim}), got {tuple(x.shape)}")
        context = _check_context(context, x.shape[0], self.context_dim)
        params = self.net(context).view(x.shape[0], 2, self.dim).transpose(1, 2)  # (B, D, 2)
        y, ladj = self.univariate(x, params, inverse)
        return y, ladj.sum(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._affine(x, context, inverse=False)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._affine(y, context, inverse=True)


def multiscale(
    shape: tuple[int, int, int],
    num_scales: int,
    scale: Callable[[tuple[int, int, int], int, bool], tuple[list[Transform], tuple[int, ...]]],
    *,
    context_dim: int = 0,
) -> Transform:
    """A multiscale flow (Real NVP Sec. 3.6, Glow Fig. 2): each scale's transforms, then a
    split that factors out half the channels; the last scale ends flat.

    Args:
        shape: (C, H, W) of the input.
        num_scales: how many scales.
        scale: `scale(shape, index, is_last) -> (transforms, output shape)` builds one scale
            (e.g. a squeeze and K Glow steps).
        context_dim: size of the vector context the split priors see.

    Returns:
        A transform (B, C, H, W) -> (B, C * H * W).
    """
    layers, out_shape = scale(shape, 0, num_scales == 1)
    if num_scales == 1:
        return Compose(*layers, Flatten(out_shape))
    c, h, w = out_shape
    inner = multiscale((c - c // 2, h, w), num_scales - 1, _shifted(scale), context_dim=context_dim)
    return Compose(*layers, Split((c, h, w), inner, context_dim=context_dim))


def _shifted(scale):
    """The scale builder with indices counted from the next scale."""
    return lambda shape, index, last: scale(shape, index + 1, last)


# ---- dequantization: integer levels k -> continuous y = (k + u) / L ---------------------------


class UniformDequantization(nn.Module):
    """u ~ U[0, 1)^D, log q(u | k) = 0 (Theis et al. 2016; Real NVP; Glow).

    With y = (k + u) / L, log P(k) >= E_u[log p(y)] - D log L (Jensen), so the continuous
    density's likelihood gives a lower bound on the discrete one.
    """

    def forward(
        self, k: Tensor, levels: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """k (B, ...) integer levels as floats -> u (B, ...) in [0, 1), log q(u | k) (B,)."""
        where = generator.device if generator is not None else k.device
        u = torch.rand(k.shape, generator=generator, device=where, dtype=k.dtype).to(k.device)
        return u, k.new_zeros(k.shape[0])


class VariationalDequantization(nn.Module):
    """Variational dequantization (Ho et al., Flow++, ICML 2019, Sec. 3.1).

    u = sigmoid(g(eps; k)), eps ~ N(0, I), with g a flow of checkerboard affine couplings whose
    conditioners see a feature map of the image k. Then

        log q(u | k) = log N(eps) - log |det dg/deps| - sum log sigmoid'(g),

    and log P(k) >= E_q[log p((k + u) / L) - log q(u | k)] - D log L, a bound that q tightens
    by learning where in each cube the density's mass lies (uniform q is the special case).

    Args:
        shape: (C, H, W) of the images.
        hidden_channels: width of the image encoder and of the couplings' conditioners.
        num_layers: affine couplings in g (checkerboard masks of alternating parity).
        activation: the networks' activation.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        hidden_channels: int = 16,
        num_layers: int = 2,
        *,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.encoder = nn.Sequential(
            nn.Conv2d(c, hidden_channels, 3, padding=1),
            activation_layer(activation),
            nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
            activation_layer(activation),
        )
        self.flow = Compose(
            *[
                ImageCoupling(
                    c,
                    Affine(),
                    hidden_channels,
                    mask="checkerboard",
                    parity=i % 2 == 1,
                    context_shape=(hidden_channels, h, w),
                    activation=activation,
                )
                for i in range(num_layers)
            ]
        )

    def forward(
        self, k: Tensor, levels: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """k (B, C, H, W) integer levels as floats -> u (B, C, H, W) in (0, 1), log q (B,)."""
        where = generator.device if generator is not None else k.device
        eps = torch.randn(k.shape, generator=generator, device=where, dtype=k.dtype).to(k.device)
        features = self.encoder(k / max(levels - 1, 1) - 0.5)  # (B, hidden, H, W)
        g, ladj = self.flow(eps, features)
        log_normal = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)
        log_sigmoid_deriv = (F.logsigmoid(g) + F.logsigmoid(-g)).flatten(1).sum(1)
        return torch.sigmoid(g), log_normal - ladj - log_sigmoid_deriv
