"""Latent-space pictures of a trained VAE: interpolations between inputs and latent traversals.

Both decode paths through z-space with the decoder mean E[x|z]:

- `interpolate(model, x_a, x_b)`: the posterior means z_a, z_b of two inputs joined by a
  straight line or, by default, spherical linear interpolation (slerp; White, "Sampling
  Generative Networks", 2016), which keeps intermediate points at the norm typical of the
  N(0, I) prior instead of cutting through its low-density centre.
- `traverse(model, x)`: one latent dimension varied over [-span, span] prior standard
  deviations around a starting code, the others held fixed (Higgins et al., "beta-VAE", ICLR
  2017, Fig. 1-2); by default the dimensions with the largest average KL, i.e. those the model
  actually uses.

`plot_interpolation` and `plot_traversal` write the result as a PNG: an image grid (one row per
pair or dimension) for images, decoded paths drawn over the data for 2-D points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from genlab.core.errors import ConfigError, DataError
from genlab.families.vae.vae import VAE

Path_ = Literal["slerp", "linear"]


def _as_batch(model: VAE, x: Tensor, name: str) -> Tensor:
    """x as (B, *spec.shape) float32 on the model's device; one unbatched input becomes B = 1."""
    shape = tuple(model.spec.shape)
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"{name} has shape {tuple(x.shape)}; expected {shape} or (B, *{shape})")
    return x.to(model.device, torch.float32)


def _check_steps(num_steps: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise ConfigError(f"num_steps={num_steps!r} must be an integer >= 2")


def slerp(z_a: Tensor, z_b: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation: z_a, z_b (B, Z), t (T,) in [0, 1] -> (B, T, Z).

    Interpolates the direction along the great circle and the norm linearly; falls back to a
    straight line where the two directions (nearly) coincide.
    """
    norm_a, norm_b = z_a.norm(dim=-1, keepdim=True), z_b.norm(dim=-1, keepdim=True)  # (B, 1)
    u_a, u_b = z_a / norm_a.clamp_min(1e-12), z_b / norm_b.clamp_min(1e-12)
    omega = torch.arccos((u_a * u_b).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # (B, 1)
    t = t.view(1, -1, 1)  # (1, T, 1)
    omega = omega.unsqueeze(1)  # (B, 1, 1)
    small = omega.abs() < 1e-4
    sin = torch.sin(omega).clamp_min(1e-12)
    w_a = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / sin)
    w_b = torch.where(small, t, torch.sin(t * omega) / sin)
    direction = w_a * u_a.unsqueeze(1) + w_b * u_b.unsqueeze(1)  # (B, T, Z)
    norm = (1 - t) * norm_a.unsqueeze(1) + t * norm_b.unsqueeze(1)  # (B, T, 1)
    return direction * norm


@torch.no_grad()
def interpolate(
    model: VAE,
    x_a: Tensor,
    x_b: Tensor,
    *,
    num_steps: int = 8,
    path: Path_ = "slerp",
    cond: dict[str, Tensor] | None = None,
) -> Tensor:
    """Decoded points on the latent path between the posterior means of x_a and x_b.

    Args:
        model: a trained `vae`.
        x_a, x_b: inputs (B, *spec.shape) or single inputs (*spec.shape).
        num_steps: points on each path, ends included (>= 2).
        path: "slerp" (default) or "linear" in z-space.
        cond: {"label": int64 (B,)} for a conditional model: the class used to encode and decode
            every point of pair i.

    Returns:
        float32 (B, num_steps, *spec.shape): decoder means; [:, 0] and [:, -1] reconstruct
        x_a and x_b.
    """
    _check_steps(num_steps)
    if path not in ("slerp", "linear"):
        raise ConfigError(f"path={path!r} is not one of 'slerp', 'linear'")
    a, b = _as_batch(model, x_a, "x_a"), _as_batch(model, x_b, "x_b")
    if a.shape[0] != b.shape[0]:
        raise DataError(f"x_a has {a.shape[0]} inputs and x_b {b.shape[0]}: pair them one to one")
    was_training = model.training
    model.eval()
    try:
        z_a, _ = model.encode(a, cond=cond)  # (B, Z)
        z_b, _ = model.encode(b, cond=cond)
        t = torch.linspace(0.0, 1.0, num_steps, device=z_a.device)
        if path == "slerp":
            z = slerp(z_a, z_b, t)  # (B, T, Z)
        else:
            z = z_a.unsqueeze(1) + t.view(1, -1, 1) * (z_b - z_a).unsqueeze(1)
        n = a.shape[0]
        flat_cond = (
            None
            if cond is None
            else {"label": torch.as_tensor(cond["label"]).repeat_interleave(num_steps)}
        )
        x = model.decode(z.reshape(n * num_steps, -1), cond=flat_cond)  # (B*T, *shape)
    finally:
        model.train(was_training)
    return x.reshape(n, num_steps, *model.spec.shape).float()


@torch.no_grad()
def active_dimensions(model: VAE, x: Tensor, *, cond: dict[str, Tensor] | None = None) -> Tensor:
    """Latent dimensions sorted by their average KL(q(z_j|x) || N(0, 1)) over x, largest first.

    Returns:
        (indices (Z,) int64, kl (Z,) float32 in nats, in the same order).
    """
    xs = _as_batch(model, x, "x")
    was_training = model.training
    model.eval()
    try:
        mean, log_var = model.encode(xs, cond=cond)
    finally:
        model.train(was_training)
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).mean(0)  # (Z,)
    order = torch.argsort(kl, descending=True)
    return order, kl[order].float()


@torch.no_grad()
def traverse(
    model: VAE,
    x: Tensor | None = None,
    *,
    dims: list[int] | None = None,
    num_dims: int = 8,
    span: float = 3.0,
    num_steps: int = 7,
    cond: dict[str, Tensor] | None = None,
) -> tuple[Tensor, list[int]]:
    """Decode z with one latent dimension swept over [-span, span] at a time.

    Args:
        model: a trained `vae`.
        x: inputs (B, *spec.shape) or one input: the sweep starts at the posterior mean of
            x[0], and `dims=None` ranks dimensions by their average KL over all of x. None starts
            at z = 0 and takes dimensions 0, 1, ... in order.
        dims: the latent dimensions to sweep; None picks the `num_dims` most used ones.
        num_dims: how many dimensions `dims=None` picks (at most latent_dim).
        span: the sweep covers z_j in [-span, span] (prior standard deviations).
        num_steps: values per sweep (>= 2).
        cond: {"label": int64 (1,)} for a conditional model: the class of every decoded point.

    Returns:
        (float32 (len(dims), num_steps, *spec.shape) decoder means, the swept dims).
    """
    _check_steps(num_steps)
    if not (math.isfinite(span) and span > 0):
        raise ConfigError(f"span={span} must be positive, e.g. 3.0")
    latent_dim = model.config.latent_dim
    if x is not None:
        xs = _as_batch(model, x, "x")
        start_cond = None if cond is None else {"label": torch.as_tensor(cond["label"])[:1]}
        was_training = model.training
        model.eval()
        try:
            z0, _ = model.encode(xs[:1], cond=start_cond)  # (1, Z)
        finally:
            model.train(was_training)
        if dims is None:
            rank_cond = (
                None
                if cond is None
                else {"label": torch.as_tensor(cond["label"])[:1].expand(xs.shape[0])}
            )
            order, _ = active_dimensions(model, xs, cond=rank_cond)
            dims = order[: min(num_dims, latent_dim)].tolist()
    else:
        z0 = torch.zeros(1, latent_dim, device=model.device)
        if dims is None:
            dims = list(range(min(num_dims, latent_dim)))
    dims = [int(d) for d in dims]
    if not dims or any(d < 0 or d >= latent_dim for d in dims):
        raise ConfigError(f"dims={dims}: give latent dimensions in 0..{latent_dim - 1}")
    values = torch.linspace(-span, span, num_steps, device=z0.device)
    z = z0.repeat(len(dims) * num_steps, 1).view(len(dims), num_steps, latent_dim).clone()
    for row, d in enumerate(dims):
        z[row, :, d] = values
    flat_cond = None
    if cond is not None:
        label = torch.as_tensor(cond["label"]).reshape(-1)[:1]
        flat_cond = {"label": label.expand(len(dims) * num_steps)}
    was_training = model.training
    model.eval()
    try:
        x_out = model.decode(z.reshape(-1, latent_dim), cond=flat_cond)
    finally:
        model.train(was_training)
    return x_out.reshape(len(dims), num_steps, *model.spec.shape).float(), dims


def _write_rows(model: VAE, rows: Tensor, out: Path, title: str, reference: Tensor | None) -> Path:
    """Write (R, T, *shape) as an image grid (images) or paths over the data (2-D points)."""
    from genlab.core.persist import _atomic_replace

    out = Path(out)
    if model.spec.modality == "image":
        from PIL import Image

        from genlab.data.writers import MIN_TILE_SIZE, image_grid

        r, t = rows.shape[:2]
        images = rows.reshape(r * t, *model.spec.shape)
        scale = max(1, math.ceil(MIN_TILE_SIZE / min(images.shape[2], images.shape[3])))
        grid = image_grid(images, nrow=t, scale=scale)
        picture = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
        _atomic_replace(out, lambda tmp: picture.save(tmp, format="PNG"))
        return out
    if model.spec.num_dims != 2:
        raise DataError(
            f"latent plots draw images or 2-D points; this vae models {model.spec.shape}: use "
            "interpolate / traverse for the tensors"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if reference is not None:
        ref = reference.detach().float().cpu().reshape(len(reference), -1).numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="lightgrey", label="data")
    for i, row in enumerate(rows.detach().float().cpu().reshape(rows.shape[0], rows.shape[1], 2)):
        ax.plot(row[:, 0], row[:, 1], "-o", ms=3, c=f"C{i % 10}", label=f"path {i}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    _atomic_replace(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return out


def plot_interpolation(
    model: VAE,
    x_a: Tensor,
    x_b: Tensor,
    out: str | Path,
    *,
    num_steps: int = 8,
    path: Path_ = "slerp",
    cond: dict[str, Tensor] | None = None,
    reference: Tensor | None = None,
) -> Path:
    """Write `interpolate(...)` to the PNG `out`: one row per pair (images), or each path drawn
    over `reference` data (2-D points). Returns the path written."""
    rows = interpolate(model, x_a, x_b, num_steps=num_steps, path=path, cond=cond)
    return _write_rows(model, rows, Path(out), f"latent interpolation ({path})", reference)


def plot_traversal(
    model: VAE,
    out: str | Path,
    x: Tensor | None = None,
    *,
    dims: list[int] | None = None,
    num_dims: int = 8,
    span: float = 3.0,
    num_steps: int = 7,
    cond: dict[str, Tensor] | None = None,
    reference: Tensor | None = None,
) -> Path:
    """Write `traverse(...)` to the PNG `out`: one row per latent dimension (images), or each
    sweep drawn over `reference` data (2-D points). Returns the path written."""
    rows, dims = traverse(
        model, x, dims=dims, num_dims=num_dims, span=span, num_steps=num_steps, cond=cond
    )
    title = f"latent traversal of dims {dims}, z in [-{span:g}, {span:g}]"
    return _write_rows(model, rows, Path(out), title, reference)
