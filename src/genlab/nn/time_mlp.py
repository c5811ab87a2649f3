"""Noise-level embeddings and an MLP conditioned on them, for diffusion on points and table rows.

`sinusoidal_embedding` is the Transformer position encoding (Vaswani et al., "Attention Is All
You Need", NeurIPS 2017) applied to a scalar noise label, as DDPM (Ho et al., NeurIPS 2020)
embeds its timestep. `NoiseEmbedding` turns that encoding into a learned vector through a
two-layer MLP and adds an optional class embedding whose last row is the "null" class used for
classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022).
`TimeMLP` is a residual MLP that reads the embedding in every block, the usual network for
low-dimensional diffusion.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.core.errors import ConfigError

MAX_PERIOD = 10_000.0  # the longest wavelength of the sinusoids, as in DDPM and the Transformer


def sinusoidal_embedding(label: Tensor, dim: int, max_period: float = MAX_PERIOD) -> Tensor:
    """Sinusoidal features of a scalar per sample.

    Args:
        label: (B,) float noise labels (a DDPM timestep in [0, 1000), or any real number).
        dim: number of features (even).
        max_period: the longest wavelength; the frequencies run geometrically from 1 to
            1 / max_period.

    Returns:
        (B, dim) float32: [cos(label * f_k), sin(label * f_k)] for dim / 2 frequencies f_k.
    """
    if dim < 2 or dim % 2:
        raise ConfigError(f"sinusoidal embedding size must be even and >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=label.device, dtype=torch.float32) / half
    )  # (dim/2,)
    angles = label.float()[:, None] * freqs[None, :]  # (B, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)  # (B, dim)


class NoiseEmbedding(nn.Module):
    """Noise label (and class) -> embedding vector (B, embed_dim).

    Args:
        base_dim: size of the sinusoidal features.
        embed_dim: size of the output embedding.
        num_classes: number of real classes, or None for an unconditional network. A
            conditional network has num_classes + 1 class rows: row `num_classes` is the null
            class, the "no label" input of classifier-free guidance.
    """

    def __init__(self, base_dim: int, embed_dim: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.base_dim = base_dim
        self.mlp = nn.Sequential(
            nn.Linear(base_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.num_classes = num_classes
        self.class_embedding = (
            nn.Embedding(num_classes + 1, embed_dim) if num_classes is not None else None
        )

    def forward(self, label: Tensor, class_labels: Tensor | None = None) -> Tensor:
        emb = self.mlp(sinusoidal_embedding(label, self.base_dim))  # (B, E)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("a class-conditional network needs class labels (null = K)")
            emb = emb + self.class_embedding(class_labels)  # (B, E)
        return emb


class TimeMLP(nn.Module):
    """Residual MLP eps/x0/v-predictor for vectors: (x (B, D), noise label (B,)) -> (B, D).

    Each block is LayerNorm -> SiLU -> Linear, plus a projection of the noise embedding, ->
    SiLU -> Linear, added back to the stream (a pre-activation residual block as in the UNet).

    Args:
        dim: D, the data dimension.
        hidden: width of the residual stream.
        num_blocks: number of residual blocks.
        num_classes: None, or the number of classes for a class-conditional network (with a
            null class for classifier-free guidance).
        dropout: dropout inside each block.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 256,
        num_blocks: int = 3,
        num_classes: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or num_blocks < 1:
            raise ConfigError(
                f"TimeMLP needs dim, hidden and num_blocks >= 1, got {dim}, {hidden}, {num_blocks}"
            )
        self.embedding = NoiseEmbedding(min(hidden, 128) // 2 * 2, hidden, num_classes)
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([_ResidualBlock(hidden, dropout) for _ in range(num_blocks)])
        self.output = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, label: Tensor, class_labels: Tensor | None = None) -> Tensor:
        emb = self.embedding(label, class_labels)  # (B, H)
        h = self.input(x)  # (B, H)
        for block in self.blocks:
            h = block(h, emb)  # (B, H)
        return self.output(h)  # (B, D)


class _ResidualBlock(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        r = self.fc1(self.act(self.norm(h))) + self.emb(self.act(emb))  # (B, H)
        return h + self.fc2(self.dropout(self.act(r)))  # (B, H)
