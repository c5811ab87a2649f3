"""The UNet of DDPM: the image network of the diffusion family.

Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), after the
PixelCNN++ / Wide ResNet backbone: a UNet whose levels halve the resolution, built from
pre-activation residual blocks with GroupNorm (Wu & He 2018) that add a projection of the
noise-level embedding, with self-attention (Vaswani et al. 2017) at the low resolutions where it
is cheap, and skip connections concatenated into the upsampling path. As in the improved DDPM
(Nichol & Dhariwal 2021) and ADM (Dhariwal & Nichol 2021), a class embedding may be added to
the noise embedding; its extra null row serves classifier-free guidance.

Unlike DDPM, the output and residual convolutions keep PyTorch's default initialization
instead of zeros: a zero output layer gives every other layer a zero gradient on the first
step, which the genlab contract checks against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.errors import ConfigError
from genlab.nn.time_mlp import NoiseEmbedding


def _group_norm(channels: int) -> nn.GroupNorm:
    # 32 groups as in DDPM when the width allows, fewer for narrow networks.
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2)
    return nn.GroupNorm(groups, channels)


class ResidualBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, + embedding projection, GroupNorm -> SiLU -> dropout -> conv.

    x (B, C_in, H, W), emb (B, E) -> (B, C_out, H, W), with a 1x1 convolution on the skip path
    when the widths differ.
    """

    def __init__(self, c_in: int, c_out: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(embed_dim, c_out)
        self.norm2 = _group_norm(c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, C_out, H, W)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))  # (B, C_out, H, W)
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H * W positions, residual: (B, C, H, W) -> same."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ConfigError(
                f"attention over {channels} channels cannot split into {num_heads} heads: "
                "pick a head count that divides the width"
            )
        self.num_heads = num_heads
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, H*W, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)


class UNet(nn.Module):
    """DDPM-style UNet: (x (B, C, H, W), noise label (B,), class (B,) or None) -> (B, C_out, H, W).

    Args:
        in_channels: image channels C.
        out_channels: predicted channels (C for eps / x0 / v).
        channels: width of the first level.
        channel_mults: width multiplier per level; level i runs at resolution H / 2^i, so H and
            W must be divisible by 2^(levels - 1).
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_levels: levels (0 = full resolution) with self-attention after each block;
            the middle block always has one.
        num_heads: attention heads.
        dropout: dropout inside the residual blocks.
        num_classes: None (unconditional) or the number of classes; class `num_classes` is the
            null class for classifier-free guidance.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: tuple[int, ...] = (2,),
        num_heads: int = 4,
        dropout: float = 0.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if channels < 2 or not channel_mults or any(m < 1 for m in channel_mults):
            raise ConfigError(
                f"UNet widths: channels={channels} must be >= 2 and channel_mults={channel_mults} "
                "one or more positive integers, e.g. channels: 64, channel_mults: [1, 2, 2]"
            )
        if num_res_blocks < 1:
            raise ConfigError(f"UNet num_res_blocks={num_res_blocks}: set it to 1 or more")
        bad = [lvl for lvl in attention_levels if not 0 <= lvl < len(channel_mults)]
        if bad:
            raise ConfigError(
                f"UNet attention_levels {bad} do not exist: levels are 0..{len(channel_mults) - 1}"
            )
        self.num_levels = len(channel_mults)
        embed_dim = 4 * channels
        self.embedding = NoiseEmbedding(channels, embed_dim, num_classes)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)

        widths = [channels * m for m in channel_mults]
        self.down = nn.ModuleList()
        skip_widths = [channels]
        width = channels
        for level, w in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(
                    self._stage(width, w, embed_dim, dropout, level, attention_levels, num_heads)
                )
                width = w
                skip_widths.append(width)
            if level < self.num_levels - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skip_widths.append(width)
        self.mid1 = ResidualBlock(width, width, embed_dim, dropout)
        self.mid_attention = SelfAttention(width, num_heads)
        self.mid2 = ResidualBlock(width, width, embed_dim, dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            w = widths[level]
            for _ in range(num_res_blocks + 1):
                self.up.append(
                    self._stage(
                        width + skip_widths.pop(),
                        w,
                        embed_dim,
                        dropout,
                        level,
                        attention_levels,
                        num_heads,
                    )
                )
                width = w
            if level > 0:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2.0, mode="nearest"),
                        nn.Conv2d(width, width, 3, padding=1),
                    )
                )
        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    @staticmethod
    def _stage(c_in, c_out, embed_dim, dropout, level, attention_levels, num_heads) -> nn.Module:
        block = nn.ModuleDict({"res": ResidualBlock(c_in, c_out, embed_dim, dropout)})
        if level in attention_levels:
            block["attention"] = SelfAttention(c_out, num_heads)
        return block

    @staticmethod
    def _run_stage(stage: nn.ModuleDict, h: Tensor, emb: Tensor) -> Tensor:
        h = stage["res"](h, emb)
        return stage["attention"](h) if "attention" in stage else h

    def forward(self, x: Tensor, label: Tensor, class_labels: Tensor | None = None) -> Tensor:
        scale = 2 ** (self.num_levels - 1)
        if x.shape[-2] % scale or x.shape[-1] % scale:
            raise ConfigError(
                f"this UNet halves the resolution {self.num_levels - 1} times, so H and W must "
                f"be divisible by {scale}, but the input is {tuple(x.shape[-2:])}: use fewer "
                "channel_mults"
            )
        emb = self.embedding(label, class_labels)  # (B, E)
        h = self.conv_in(x)  # (B, C0, H, W)
        skips = [h]
        for module in self.down:
            if isinstance(module, nn.ModuleDict):
                h = self._run_stage(module, h, emb)
            else:
                h = module(h)  # (B, C, H/2, W/2)
            skips.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, emb)), emb)  # (B, C, h, w)
        for module in self.up:
            if isinstance(module, nn.ModuleDict):
                h = self._run_stage(module, torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = module(h)  # (B, C, 2h, 2w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out, H, W)
