"""Differentiable augmentation for GANs trained on little data (DiffAugment).

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020): the
same random transforms are applied to real and generated images every time the discriminator
sees them, in both the discriminator's and the generator's step. Each transform is
differentiable in the image, so the generator's gradient flows through it, and the
discriminator never sees an un-augmented image, so the augmentation does not leak into the
samples. Three transforms, each a function of images (B, C, H, W) in the model's [-1, 1] range:

- `color`: random brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) around the pixel's channel
  mean) and contrast (x U(0.5, 1.5) around the image mean);
- `translation`: shift by up to `ratio` of the size in each direction, zero-padded;
- `cutout`: zero a square of `ratio` times the size at a random place.

Randomness comes from the global RNG, which the training loop seeds and checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.core.errors import ConfigError


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    """One U(low, high) draw per image, shaped (B, 1, 1, 1) to broadcast over x."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (high - low) + low


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast per image: (B, C, H, W) -> (B, C, H, W)."""
    x = x + _uniform(x, -0.5, 0.5)
    mean_c = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    x = (x - mean_c) * _uniform(x, 0.0, 2.0) + mean_c
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio * size pixels in x and y, filling with zeros."""
    b, _, h, w = x.shape
    pad_h, pad_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-pad_h, pad_h + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-pad_w, pad_w + 1, (b, 1, 1), device=x.device)
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))  # (B, C, H + 2 ph, W + 2 pw)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + pad_h - dy  # (B, H, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + pad_w - dx  # (B, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    # Advanced indexing puts the indexed axes first: (B, H, W, C).
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ratio * size per image, placed uniformly (may overlap the border)."""
    b, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (b, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + (1 - size_w % 2), (b, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)  # (B, C, H, W)


#: policy name -> transform; the only switch on augmentation names.
TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Transform names from a comma-separated policy such as "color,translation,cutout"."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ConfigError(
            f"diffaugment: unknown transform {', '.join(map(repr, unknown))}; use a "
            f"comma-separated list of {', '.join(TRANSFORMS)} (e.g. 'color,translation,cutout')"
        )
    return names


def diff_augment(x: Tensor, policy: tuple[str, ...]) -> Tensor:
    """Apply the transforms of `policy` in order: images (B, C, H, W) -> (B, C, H, W)."""
    for name in policy:
        x = TRANSFORMS[name](x)
    return x
