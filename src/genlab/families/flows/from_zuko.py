"""Carry a zuko MAF or RealNVP's weights into the genlab flow of the same architecture.

For users moving a trained zuko flow to genlab, and for like-for-like comparisons
(benchmarks/flows_vs_zuko.py starts both libraries from the same weights). zuko is not
imported: the flow passed in is read through its modules.

The architectures that correspond (the same function, weight for weight):

- zuko `MAF(D, transforms=K, hidden_features=H)` = genlab `maf` with `num_layers=K`,
  `hidden=H`, `activation="relu"`: zuko alternates its autoregressive order (ascending,
  descending), genlab reverses the features between layers instead; the MADE masks are
  copied too, so both also train alike (the same connections receive gradients).
- zuko `RealNVP(D, transforms=K, hidden_features=H)` = genlab `realnvp` with `num_layers=K`,
  `hidden=H`, `activation="relu"`, `mask="alternate"`, `actnorm=False`, `permute=False`.

Both use the affine transform with zuko's soft log-scale bound s / (1 + |s| / ln 1000); zuko
packs each feature's (shift, log-scale) pair together, genlab puts the log-scale first.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.core.errors import ConfigError
from genlab.families.flows import transforms as T


@torch.no_grad()
def load_zuko_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy the zuko flow `theirs` (a `zuko.flows.MAF` or `RealNVP`) into the genlab model
    `ours` in place; raise ConfigError when the two architectures do not correspond."""
    kind = type(theirs).__name__
    layers = list(getattr(getattr(theirs, "transform", None), "transforms", []))
    if kind == "MAF":
        name, ours_layers = "maf", [m for m in ours.modules() if isinstance(m, T.MADE)]
        copy = _copy_made
    elif kind == "RealNVP":
        name, ours_layers = "realnvp", [m for m in ours.modules() if isinstance(m, T.Coupling)]
        copy = _copy_coupling
        if any(isinstance(m, (T.ActNorm, T.Permutation)) for m in ours.modules()):
            raise ConfigError(
                "zuko's RealNVP has no ActNorm or permutations: create the genlab realnvp "
                "with actnorm=False, permute=False (and mask='alternate')"
            )
    else:
        raise ConfigError(f"load_zuko_weights takes a zuko MAF or RealNVP, not {kind}")
    if getattr(ours, "name", None) != name:
        raise ConfigError(
            f"a zuko {kind} loads into a genlab {name!r} model, not {getattr(ours, 'name', ours)!r}"
        )
    if len(layers) != len(ours_layers) or not layers:
        raise ConfigError(
            f"the zuko {kind} has {len(layers)} transforms and the genlab model "
            f"{len(ours_layers)} matching layers: create it with num_layers={len(layers)} "
            "(see genlab.families.flows.from_zuko for the corresponding options)"
        )
    for i, (z_layer, layer) in enumerate(zip(layers, ours_layers, strict=True)):
        _check_layer(kind, z_layer, layer)
        copy(z_layer, layer, reverse=i % 2 == 1)


def _leaf_kinds(module: nn.Module) -> set[str]:
    """The class names of a network's weightless leaf modules (its activations, norms)."""
    return {
        type(m).__name__
        for m in module.modules()
        if not list(m.children()) and not isinstance(getattr(m, "weight", None), torch.Tensor)
    }


def _check_layer(kind: str, z_layer: nn.Module, layer: nn.Module) -> None:
    """Refuse what the copy would silently get wrong: another univariate transform, context,
    activations other than ReLU, normalization or residual blocks in zuko's network."""
    hyper = getattr(z_layer, "hyper", None)
    univariate = getattr(z_layer, "univariate", None)
    shapes = tuple(tuple(s) for s in getattr(z_layer, "shapes", ()))
    if hyper is None or getattr(univariate, "__name__", None) != "MonotonicAffineTransform":
        raise ConfigError(
            f"this zuko {kind} does not use zuko's default affine transform "
            "(MonotonicAffineTransform, default slope) on more than one feature: only that "
            "one maps onto genlab's affine layers"
        )
    if shapes != ((), ()):
        raise ConfigError(f"zuko's affine parameters have shapes {shapes}, expected ((), ())")
    theirs, ours = _leaf_kinds(hyper), _leaf_kinds(layer)
    bad = [type(m).__name__ for m in hyper.modules() if "Residual" in type(m).__name__]
    if theirs != {"ReLU"} or ours != {"ReLU"} or bad:
        raise ConfigError(
            f"the zuko {kind} network has {sorted(theirs | set(bad))} and genlab's "
            f"{sorted(ours)}: both must be plain ReLU networks (zuko's default; genlab "
            "activation='relu')"
        )
    first = _linears(hyper)[0].weight.shape[1]
    expected = layer.dim if isinstance(layer, T.MADE) else len(layer.identity_idx)
    has_context = getattr(layer, "context_proj", None) is not None or getattr(
        layer, "context_dim", 0
    )
    if first != expected or has_context:
        raise ConfigError(
            f"load_zuko_weights maps unconditional flows only (the zuko {kind}'s first layer "
            f"takes {first} inputs where genlab's features give {expected})"
        )


def _linears(module: nn.Module) -> list[nn.Module]:
    """The layers with a weight, in order (zuko's `Linear` is not an `nn.Linear`)."""
    return [m for m in module.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)]


def _copy_linear(ours: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    if ours.weight.shape != weight.shape:
        raise ConfigError(
            f"a zuko layer of shape {tuple(weight.shape)} meets a genlab layer of shape "
            f"{tuple(ours.weight.shape)}: give both the same hidden widths and features"
        )
    ours.weight.copy_(weight)
    ours.bias.copy_(bias)


def _copy_made(z_layer: nn.Module, made: T.MADE, reverse: bool) -> None:
    """A zuko MaskedAutoregressiveTransform into a genlab MADE; `reverse`: genlab feeds this
    layer its features reversed where zuko's order is descending."""
    dim = made.dim
    if made.num_params != 2:
        raise ConfigError("load_zuko_weights maps affine MAF layers only")
    perm = list(reversed(range(dim))) if reverse else list(range(dim))
    z_lin, g_lin = _linears(z_layer.hyper), _linears(made.net)
    if len(z_lin) != len(g_lin):
        raise ConfigError(
            f"the zuko MAF has {len(z_lin) - 1} hidden layers and genlab's {len(g_lin) - 1}: "
            "give both the same hidden widths"
        )
    # zuko's hidden units follow its own degree assignment: keep them and their masks,
    # permute the inputs (first layer) and the outputs (last layer) into genlab's layout
    rows = [perm[f] * 2 + q for q in (1, 0) for f in range(dim)]  # genlab is param-major
    for n, (z_l, g_l) in enumerate(zip(z_lin, g_lin, strict=True)):
        weight, mask = z_l.weight, z_l.mask.to(g_l.mask.dtype)
        if n == 0:
            weight, mask = weight[:, perm], mask[:, perm]
        if n == len(z_lin) - 1:
            weight, mask, bias = weight[rows], mask[rows], z_l.bias[rows]
        else:
            bias = z_l.bias
        _copy_linear(g_l, weight, bias)
        g_l.mask.copy_(mask)


def _copy_coupling(z_layer: nn.Module, coupling: T.Coupling, reverse: bool) -> None:
    """A zuko GeneralCouplingTransform into a genlab Coupling (same mask required)."""
    del reverse  # both alternate their masks themselves
    expected = torch.nonzero(z_layer.mask).squeeze(-1).tolist()
    if coupling.identity_idx.tolist() != expected:
        raise ConfigError(
            "the coupling masks differ: create the genlab realnvp with mask='alternate', "
            "actnorm=False, permute=False"
        )
    z_lin, g_lin = _linears(z_layer.hyper), _linears(coupling.conditioner)
    if len(z_lin) != len(g_lin):
        raise ConfigError("give the zuko and genlab Real NVP the same hidden widths")
    for z_l, g_l in zip(z_lin[:-1], g_lin[:-1], strict=True):
        _copy_linear(g_l, z_l.weight, z_l.bias)
    n_tr = len(coupling.transform_idx)
    rows = [f * 2 + q for f in range(n_tr) for q in (1, 0)]  # feature-major in both
    _copy_linear(g_lin[-1], z_lin[-1].weight[rows], z_lin[-1].bias[rows])
