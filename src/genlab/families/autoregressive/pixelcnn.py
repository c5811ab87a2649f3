"""Gated PixelCNN: an exact autoregressive likelihood over the pixels of quantized images.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu, "Conditional Image
Generation with PixelCNN Decoders" (NeurIPS 2016), after van den Oord, Kalchbrenner &
Kavukcuoglu, "Pixel Recurrent Neural Networks" (ICML 2016). An image of C channels and
L levels per value is factorized in raster order, and within a pixel channel by channel:

    p(x) = prod_{i, j} prod_c p(x[c, i, j] | x[:, <(i, j)], x[<c, i, j] (, y))

Each conditional is a softmax over the L levels (a Bernoulli with one logit when L = 2, the
binarized-image case). Levels are `round(x * (L - 1))` of images in [0, 1]; the network sees
them rescaled to [-1, 1].

The network, `GatedPixelCNN`, has the paper's two stacks, which together have no blind spot:
- the **vertical stack** convolves with (k//2 + 1) x k kernels padded so that row i sees rows
  <= i; its pre-activations, shifted down one row, feed the horizontal stack, so pixel (i, j)
  receives only rows < i from it;
- the **horizontal stack** convolves with 1 x (k//2 + 1) kernels over columns <= j of row i.
  Its first layer is masked "A" (the centre tap excludes the pixel itself), later layers "B";
- gates are tanh(a) * sigmoid(b); the horizontal stack is residual after the first layer;
- with `conditional`, a learned per-layer embedding of cond["label"] is added to the
  pre-activations of both stacks (the paper's class-conditional model).

For C > 1 channels (RGB), every feature map of the horizontal stack belongs to one of C
channel groups (contiguous blocks); at the centre tap a feature of group g may read input
groups < g (mask A) or <= g (mask B), so the logits of channel c see the current pixel's
channels < c only. The vertical stack sees rows strictly above after the shift and needs no
channel mask.

Likelihood. `log_likelihood` is exact: the sum of the C * H * W log conditionals, in nats per
image, of the quantized image. Bits per dimension of that discrete likelihood is
`-nats / (C * H * W * ln 2)` (no dequantization term: the data are the L levels, so
`genlab.metrics.likelihood` needs scale 1); `LogLikelihood.details["bits_per_dim"]` holds it.

Sampling runs pixel by pixel (and channel by channel). It reuses the structure: the vertical
stack's contribution to row i depends on rows < i only, so it is computed once per row, and
for each pixel only the horizontal stack of that row runs, on the columns left of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.core.contract import Batch, DataSpec, LogLikelihood, LossOutput, NeuralModel
from genlab.core.errors import ConfigError, DataError
from genlab.core.registry import register

# A level value may be off its grid point by float32 rounding of k / (L - 1), far below this.
LEVEL_TOLERANCE = 1e-3
SAMPLE_CHUNK = 256  # images sampled per pass
LIKELIHOOD_CHUNK = 256  # images scored per forward pass


@dataclass(frozen=True)
class PixelCNNConfig:
    """Configuration of `PixelCNN` (the `model:` section of a run's YAML, field for field).

    Args:
        levels: values per channel, L. None takes the data's `spec.discrete_levels` (2 for
            binarized images, 256 for 8-bit, 17 for `digits`); a number must equal it. L = 2
            uses one Bernoulli logit per value, L > 2 a softmax over L levels.
        hidden_channels: feature maps of each stack (a multiple of the image's channels C).
        num_layers: gated layers after the first.
        kernel_size: k of the gated layers (odd, >= 3): vertical (k//2 + 1) x k, horizontal
            1 x (k//2 + 1).
        first_kernel_size: k of the first layer (odd, >= 3), which sees the image itself.
        output_channels: width of the 1 x 1 output layers (a multiple of C).
        conditional: model p(x | y) with y = cond["label"]; needs a data set with labels.
    """

    levels: int | None = None
    hidden_channels: int = 64
    num_layers: int = 7
    kernel_size: int = 3
    first_kernel_size: int = 7
    output_channels: int = 128
    conditional: bool = False

    def __post_init__(self) -> None:
        if self.levels is not None and self.levels < 2:
            raise ConfigError(
                f"pixelcnn.levels={self.levels}: set it to 2 or more (2 for binarized images, "
                "256 for 8-bit), or leave it unset to take the data's levels"
            )
        for key in ("hidden_channels", "output_channels"):
            if getattr(self, key) < 1:
                raise ConfigError(f"pixelcnn.{key}={getattr(self, key)}: set it to 1 or more")
        if self.num_layers < 0:
            raise ConfigError(f"pixelcnn.num_layers={self.num_layers}: set it to 0 or more")
        for key in ("kernel_size", "first_kernel_size"):
            k = getattr(self, key)
            if k < 3 or k % 2 == 0:
                raise ConfigError(f"pixelcnn.{key}={k}: use an odd size of 3 or more, e.g. 3")


def _check_spec(config: PixelCNNConfig, spec: DataSpec) -> int:
    """The number of levels L for this config and data; ConfigError when they cannot fit."""
    data = spec.name or "this data"
    if spec.modality != "image" or len(spec.shape) != 3:
        raise ConfigError(
            f"pixelcnn models images (C, H, W), but {data} is {spec.modality} with shape "
            f"{spec.shape}: use gpt or charrnn for text, wavenet for 1-D signals"
        )
    channels = spec.shape[0]
    levels = config.levels if config.levels is not None else spec.discrete_levels
    if levels is None:
        raise ConfigError(
            f"pixelcnn models quantized images, but {data} does not say how many levels its "
            "values take (spec.discrete_levels is None): set levels: 256 for 8-bit images, "
            "or load binarized data (binarize=true)"
        )
    if spec.discrete_levels is not None and levels != spec.discrete_levels:
        raise ConfigError(
            f"pixelcnn.levels={levels}, but {data} has {spec.discrete_levels} levels per value: "
            f"leave levels unset (or set levels: {spec.discrete_levels}), or load data with "
            + ("binarize=true" if levels == 2 else f"{levels} levels")
        )
    for key in ("hidden_channels", "output_channels"):
        if getattr(config, key) % channels:
            raise ConfigError(
                f"pixelcnn.{key}={getattr(config, key)} must be a multiple of the {channels} "
                f"image channels (one group of feature maps per channel), e.g. "
                f"{channels * max(1, getattr(config, key) // channels)}"
            )
    if config.conditional and not spec.num_classes:
        raise ConfigError(
            f"pixelcnn.conditional=true needs labelled data, but {data} has no classes: set "
            "conditional: false or use a data set with labels"
        )
    return levels


def channel_groups(num_features: int, num_channels: int) -> Tensor:
    """The channel group of each of `num_features` feature maps: C contiguous equal blocks."""
    return torch.arange(num_features) * num_channels // num_features


class MaskedConv2d(nn.Conv2d):
    """A convolution whose centre tap (the last one) respects the channel-group order.

    The centre tap is the kernel's bottom-right entry: callers pad so that it lands on the
    output's own pixel and every other tap on a pixel before it. There, output feature o may
    read input feature i only when group(i) < group(o) (mask "A") or <= (mask "B").

    Args:
        in_groups, out_groups: int64 (in,), (out,) channel group of each feature map.
        mask_type: "A" or "B".
        kernel_size: (kh, kw).
    """

    def __init__(
        self, in_groups: Tensor, out_groups: Tensor, mask_type: str, kernel_size: tuple[int, int]
    ) -> None:
        super().__init__(len(in_groups), len(out_groups), kernel_size)
        allowed = out_groups[:, None] > in_groups[None, :]
        if mask_type == "B":
            allowed = out_groups[:, None] >= in_groups[None, :]
        mask = torch.ones_like(self.weight)
        mask[:, :, -1, -1] = allowed.to(mask.dtype)
        # Recomputed from the config on load, so not saved with the weights.
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


def _gate(pre: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) of the two halves of the channels: (B, 2n, H, W) -> (B, n, H, W)."""
    a, b = pre.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _shift_down(x: Tensor) -> Tensor:
    """Move every row one down (a zero row on top): row i then holds row i - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


class GatedLayer(nn.Module):
    """One gated layer of both stacks (van den Oord et al. 2016, Figure 2).

    Args:
        in_groups: channel group of each input feature map (the image's channels for the
            first layer).
        hidden: feature maps n of each stack (a multiple of C).
        num_channels: the image's channels C.
        kernel_size: k (odd).
        mask_type: "A" for the first layer (the pixel may not see itself), else "B".
        num_classes: classes of the label embedding, or None for an unconditional model.
    """

    def __init__(
        self,
        in_groups: Tensor,
        hidden: int,
        num_channels: int,
        kernel_size: int,
        mask_type: str,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        self.k = kernel_size
        groups = channel_groups(hidden, num_channels)
        gate_groups = torch.cat([groups, groups])  # the tanh half, then the sigmoid half
        in_channels = len(in_groups)
        self.vertical = nn.Conv2d(in_channels, 2 * hidden, (kernel_size // 2 + 1, kernel_size))
        self.horizontal = MaskedConv2d(in_groups, gate_groups, mask_type, (1, kernel_size // 2 + 1))
        # Vertical features reach the horizontal stack only from rows above: no channel mask.
        self.link = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        # The first layer changes the width (C -> n), so only later layers are residual.
        self.residual = MaskedConv2d(groups, groups, "B", (1, 1)) if mask_type == "B" else None
        if num_classes:
            self.label_vertical = nn.Embedding(num_classes, 2 * hidden)
            self.label_horizontal = nn.Embedding(num_classes, 2 * hidden)

    def vertical_pre(self, v: Tensor, y: Tensor | None) -> Tensor:
        """Vertical pre-activations: (B, in, H, W) -> (B, 2n, H, W), row i seeing rows <= i."""
        k = self.k
        pre = self.vertical(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # (B, 2n, H, W)
        if y is not None:
            pre = pre + self.label_vertical(y)[:, :, None, None]
        return pre

    def horizontal_out(self, h: Tensor, link: Tensor, y: Tensor | None) -> Tensor:
        """Horizontal output from its input (B, in, H', W') and the link term (B, 2n, H', W')."""
        pre = self.horizontal(F.pad(h, (self.k // 2, 0, 0, 0))) + link  # (B, 2n, H', W')
        if y is not None:
            pre = pre + self.label_horizontal(y)[:, :, None, None]
        gated = _gate(pre)  # (B, n, H', W')
        return gated if self.residual is None else h + self.residual(gated)


class GatedPixelCNN(nn.Module):
    """The Gated PixelCNN network: inputs (B, C, H, W) in [-1, 1] -> logits (B, C, K, H, W).

    K is the number of logits per value: 1 (Bernoulli) for L = 2 levels, else L. The logits
    at (c, i, j) depend only on pixels before (i, j) in raster order and on channels < c of
    pixel (i, j) (tests/families/test_pixelcnn.py checks it with gradients).

    Usable on its own, e.g. as a prior over a grid of discrete codes.
    """

    def __init__(self, config: PixelCNNConfig, num_channels: int, levels: int, num_classes=None):
        super().__init__()
        self.num_channels = num_channels
        self.num_logits = 1 if levels == 2 else levels
        c, n, m = num_channels, config.hidden_channels, config.output_channels
        num_classes = num_classes if config.conditional else None
        layers = [GatedLayer(torch.arange(c), n, c, config.first_kernel_size, "A", num_classes)]
        for _ in range(config.num_layers):
            layers.append(
                GatedLayer(channel_groups(n, c), n, c, config.kernel_size, "B", num_classes)
            )
        self.layers = nn.ModuleList(layers)
        out_groups = torch.arange(c * self.num_logits) // self.num_logits
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(channel_groups(n, c), channel_groups(m, c), "B", (1, 1)),
            nn.ReLU(),
            MaskedConv2d(channel_groups(m, c), out_groups, "B", (1, 1)),
        )

    def _logits(self, h: Tensor) -> Tensor:
        out = self.head(h)  # (B, C*K, H', W')
        return out.unflatten(1, (self.num_channels, self.num_logits))  # (B, C, K, H', W')

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits of every value: x (B, C, H, W) in [-1, 1], y (B,) labels -> (B, C, K, H, W)."""
        v = h = x
        for layer in self.layers:
            pre = layer.vertical_pre(v, y)  # (B, 2n, H, W)
            h = layer.horizontal_out(h, layer.link(_shift_down(pre)), y)  # (B, n, H, W)
            v = _gate(pre)  # (B, n, H, W)
        return self._logits(h)

    def row_links(self, above: Tensor, y: Tensor | None) -> list[Tensor]:
        """The vertical stack's input to row i of every layer, from the rows above it.

        Args:
            above: (B, C, i, W) the rows 0..i-1 of the image in [-1, 1] (i may be 0).
            y: (B,) labels or None.

        Returns:
            One link term (B, 2n, 1, W) per layer: the shifted vertical pre-activation at row i.
        """
        links = []
        v = above
        for layer in self.layers:
            if v.shape[2] == 0:  # row 0: the shift puts a zero row there
                pre_last = v.new_zeros(v.shape[0], layer.link.in_channels, 1, v.shape[3])
            else:
                pre = layer.vertical_pre(v, y)  # (B, 2n, i, W)
                pre_last = pre[:, :, -1:]  # (B, 2n, 1, W)
                v = _gate(pre)
            links.append(layer.link(pre_last))
        return links

    def row_logits(self, row: Tensor, links: list[Tensor], y: Tensor | None) -> Tensor:
        """Logits of row i from its pixels (B, C, 1, w) and `row_links` cut to w columns.

        Only columns before the one predicted matter, so callers may pass the first w columns.
        Returns (B, C, K, 1, w).
        """
        h = row
        for layer, link in zip(self.layers, links):
            h = layer.horizontal_out(h, link[..., : row.shape[3]], y)  # (B, n, 1, w)
        return self._logits(h)


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the previous training mode after it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@register(
    "pixelcnn",
    PixelCNNConfig,
    "Gated PixelCNN: exact likelihood of binarized or L-level images, class-conditional option",
)
class PixelCNN(NeuralModel):
    """Gated PixelCNN (van den Oord et al. 2016) on quantized images.

    Args:
        config: the `PixelCNNConfig`.
        spec: an image spec (C, H, W) with `discrete_levels` (or config.levels) set.
    """

    def __init__(self, config: PixelCNNConfig, spec: DataSpec) -> None:
        super().__init__()
        self.levels = _check_spec(config, spec)
        self.config = config
        self.spec = spec
        self.cond_keys = ("label",) if config.conditional else ()
        self.network = GatedPixelCNN(config, spec.shape[0], self.levels, spec.num_classes)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- data in and out -------------------------------------------------------------------

    def to_levels(self, x: Tensor) -> Tensor:
        """Images float (B, C, H, W) in [0, 1] -> int64 levels round(x * (L - 1)).

        Raises DataError when x has the wrong shape, leaves [0, 1], or holds values between
        the L levels (e.g. grey pixels given to a binary model).
        """
        if tuple(x.shape[1:]) != tuple(self.spec.shape):
            raise DataError(
                f"x has sample shape {tuple(x.shape[1:])}, but this pixelcnn models "
                f"{self.spec.shape}"
            )
        if not x.dtype.is_floating_point:
            raise DataError(f"images must be float in [0, 1], got dtype {x.dtype}")
        if x.numel() == 0:
            return torch.zeros(x.shape, dtype=torch.long, device=x.device)
        scaled = x.double() * (self.levels - 1)
        levels = scaled.round()
        low, high = float(x.min()), float(x.max())
        if not (low >= 0.0 and high <= 1.0):
            raise DataError(
                f"images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}] "
                "(genlab's image sources give [0, 1])"
            )
        off = float((scaled - levels).abs().max())
        if off > LEVEL_TOLERANCE:
            what = (
                "binary (0 or 1)"
                if self.levels == 2
                else f"on the {self.levels} levels k/{self.levels - 1}"
            )
            fix = (
                "binarize them first (load with binarize=true: its test split is binarized "
                "once, train batches afresh; or torch.bernoulli(x))"
                if self.levels == 2
                else f"quantize them to {self.levels} levels first"
            )
            raise DataError(
                f"this pixelcnn models {self.levels} levels per value, but x holds values that "
                f"are not {what} (off by up to {off:.3g} levels): {fix}"
            )
        return levels.long()

    def _net_input(self, levels: Tensor) -> Tensor:
        """int64 levels -> the network's input in [-1, 1], in its parameters' dtype."""
        dtype = next(self.parameters()).dtype
        return levels.to(dtype) * (2.0 / (self.levels - 1)) - 1.0

    def _labels(self, cond: dict[str, Tensor] | None, num: int) -> Tensor | None:
        """cond["label"] checked, as int64 (B,) on the model's device; None if unconditional."""
        if not self.config.conditional:
            return None
        if not cond or "label" not in cond:
            raise DataError(
                "this pixelcnn is conditional (conditional=true): pass the classes as "
                "cond={'label': int64 tensor (B,)}, or train with conditional: false"
            )
        y = torch.as_tensor(cond["label"])
        if y.shape != (num,):
            raise DataError(f"cond['label'] has shape {tuple(y.shape)}; expected ({num},)")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise DataError(f"cond['label'] must hold integer classes, got dtype {y.dtype}")
        if num > 0 and (int(y.min()) < 0 or int(y.max()) >= self.spec.num_classes):
            raise DataError(
                f"cond['label'] holds classes outside the trained labels "
                f"0..{self.spec.num_classes - 1}"
            )
        return y.to(self.device, torch.long)

    def _log_probs(self, logits: Tensor, levels: Tensor) -> Tensor:
        """log p of each value: logits (B, C, K, ...) and levels (B, C, ...) -> (B, C, ...)."""
        if self.levels == 2:
            return -F.binary_cross_entropy_with_logits(
                logits[:, :, 0], levels.to(logits.dtype), reduction="none"
            )
        # At least float32 (autocast may give bf16); float64 stays float64.
        log_p = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), 2)
        return log_p.gather(2, levels.unsqueeze(2)).squeeze(2)

    # ---- the contract ----------------------------------------------------------------------

    def loss(self, batch: Batch, *, key: str = "main") -> LossOutput:
        """Negative log-likelihood in nats per value (dimension), batch mean.

        Logs: "nll" (nats per image) and "bits_per_dim".
        """
        if key != "main":
            raise ConfigError(f"pixelcnn has one loss key, 'main'; got {key!r}")
        levels = self.to_levels(batch.x).to(self.device)  # (B, C, H, W)
        y = self._labels(batch.cond, levels.shape[0])
        logits = self.network(self._net_input(levels), y)  # (B, C, K, H, W)
        log_p = self._log_probs(logits, levels)  # (B, C, H, W)
        per_dim = -log_p.float().mean()
        nll = per_dim.detach() * self.spec.num_dims
        logs = {"nll": float(nll), "bits_per_dim": float(per_dim.detach()) / math.log(2)}
        return LossOutput(per_dim, logs)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        *,
        cond: dict[str, Tensor] | None = None,
        batch_size: int = LIKELIHOOD_CHUNK,
    ) -> LogLikelihood:
        """Exact log p(x) (or log p(x | y)) of quantized images, in nats per image.

        Args:
            x: (B, C, H, W) in [0, 1] on the L-level grid (binary for L = 2).
            cond: {"label": int64 (B,)} for a conditional model; ignored otherwise.
            batch_size: images per forward pass (bounds memory only).

        Returns:
            LogLikelihood with nats float64 (B,) on x's device, kind "exact";
            details: levels, num_dims and bits_per_dim (of the batch mean).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"pixelcnn log_likelihood: batch_size={batch_size!r} must be >= 1")
        with _evaluating(self):
            levels = self.to_levels(x).to(self.device)  # (B, C, H, W)
            y = self._labels(cond, levels.shape[0])
            nats = []
            for start in range(0, levels.shape[0], batch_size):
                part = slice(start, start + batch_size)
                logits = self.network(self._net_input(levels[part]), None if y is None else y[part])
                nats.append(self._log_probs(logits, levels[part]).double().flatten(1).sum(1))
            values = torch.cat(nats) if nats else torch.empty(0, dtype=torch.float64)
        num_dims = self.spec.num_dims
        bits = -float(values.mean()) / (num_dims * math.log(2)) if len(values) else float("nan")
        details = {"levels": self.levels, "num_dims": num_dims, "bits_per_dim": bits}
        return LogLikelihood(values.to(x.device), "exact", details)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        cond: dict[str, Tensor] | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """Draw images pixel by pixel in raster order, channel by channel within a pixel.

        Args:
            num_samples: N.
            generator: the source of every draw (one uniform per value, drawn on the
                generator's device, so a CPU generator gives the same images on any device).
            cond: {"label": int64 (N,)} for a conditional model (required then).
            temperature: logits are divided by it; below 1 sharpens. <= 0 means greedy: the
                most likely level of each value (no randomness).

        Returns:
            float32 (N, C, H, W) in [0, 1]: levels / (L - 1).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
            raise ConfigError(f"num_samples must be a non-negative integer, got {num_samples!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ConfigError(f"pixelcnn sample: temperature={temperature!r} must be a number")
        if not math.isfinite(temperature):
            raise ConfigError(f"pixelcnn sample: temperature={temperature} must be finite")
        if cond and not self.config.conditional:
            raise ConfigError(
                "this pixelcnn is unconditional (conditional=false): sample without cond, or "
                "train with conditional: true to sample given labels"
            )
        c, h, w = self.spec.shape
        with _evaluating(self):
            device = self.device
            y_all = self._labels(cond, num_samples)
            levels = torch.zeros((num_samples, c, h, w), dtype=torch.long, device=device)
            draw_device = generator.device if generator is not None else device
            for start in range(0, num_samples, SAMPLE_CHUNK):
                part = slice(start, start + SAMPLE_CHUNK)
                chunk = levels[part]  # a view: filled in place
                y = None if y_all is None else y_all[part]
                n = chunk.shape[0]
                for i in range(h):
                    links = self.network.row_links(self._net_input(chunk[:, :, :i]), y)
                    for j in range(w):
                        for ch in range(c):
                            row = self._net_input(chunk[:, :, i : i + 1, : j + 1])  # (n, C, 1, j+1)
                            logits = self.network.row_logits(row, links, y)[:, ch, :, 0, j]
                            u = torch.rand(n, generator=generator, device=draw_device).to(device)
                            chunk[:, ch, i, j] = self._draw(logits.float(), u, temperature)
            return (levels.to(torch.float32) / (self.levels - 1)).contiguous()

    def _draw(self, logits: Tensor, u: Tensor, temperature: float) -> Tensor:
        """One level per row from logits (n, K) and uniforms u (n,) by the inverse CDF."""
        if self.levels == 2:
            if temperature <= 0:
                return (logits[:, 0] > 0).long()
            return (u < torch.sigmoid(logits[:, 0] / temperature)).long()
        if temperature <= 0:
            return logits.argmax(dim=1)
        cdf = torch.softmax(logits / temperature, dim=1).cumsum(dim=1)  # (n, L)
        return (cdf < u[:, None]).sum(dim=1).clamp(max=self.levels - 1)
